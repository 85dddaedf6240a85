"""Server subprocesses for benchmarks: start, wait until listening, measure, stop.

Each server prints a line with its URL once it accepts connections
(``tippen-rt listening on http://127.0.0.1:PORT``); we start it on port 0 on
127.0.0.1, read that line, and keep the rest of its output for the report if
it dies.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_URL = re.compile(r"listening on (http://\S+?)(?:,|\s|$)")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Server:
    """A running server subprocess and its base URL."""

    name: str
    proc: subprocess.Popen[str]
    url: str
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process (all threads) so far; Linux only."""
        return _cpu_seconds(Path(f"/proc/{self.pid}/stat"))

    def main_thread_cpu_seconds(self) -> float | None:
        """CPU time of the main thread alone (the event loop's, in our servers)."""
        return _cpu_seconds(Path(f"/proc/{self.pid}/task/{self.pid}/stat"))

    def children_cpu_seconds(self) -> float:
        """CPU time so far of the server's live child processes (the SQLite writer
        process); 0 without any.  Linux only."""
        total = 0.0
        for pid in self.children():
            total += _cpu_seconds(Path(f"/proc/{pid}/stat")) or 0.0
        return total

    def children(self) -> list[int]:
        """Process ids of the server's live children."""
        pids: list[int] = []
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
        return pids

    def rss_mib(self) -> float | None:
        """Resident memory of the process, MiB; Linux only."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        """Send ``sig``, wait for exit (``kill -9`` after ``timeout_s``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=10)

    def log(self) -> str:
        """Everything the process printed so far."""
        return "".join(self.output)


def _cpu_seconds(stat_path: Path) -> float | None:
    try:
        stat = stat_path.read_text()
    except OSError:
        return None
    # Fields after the ")" that closes the command name; utime, stime are 14, 15.
    after = stat.rsplit(")", 1)[1].split()
    return (int(after[11]) + int(after[12])) / _CLK_TCK


def start_server(
    name: str,
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 30.0,
) -> Server:
    """Run ``cmd`` and wait for its ``listening on URL`` line."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=full_env,
        cwd=cwd,
    )
    output: list[str] = []
    url_box: list[str] = []
    found = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if len(output) < 5000:  # bounded: a chatty server must not eat memory
                output.append(line)
            match = _URL.search(line)
            if match and not found.is_set():
                url_box.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=pump, name=f"{name}-output", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not found.wait(0.05):
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"{name} did not start in {timeout_s} s:\n" + "".join(output))
    if not url_box:
        proc.wait(timeout=5)
        raise RuntimeError(f"{name} exited with {proc.returncode}:\n" + "".join(output))
    return Server(name=name, proc=proc, url=url_box[0], output=output)


def run_cli(db: Path, *args: str) -> str:
    """``tippen-rt --db DB ARGS...`` in this interpreter; its stdout, or
    RuntimeError with everything it printed."""
    proc = subprocess.run(
        [sys.executable, "-m", "tippen_rt", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tippen-rt {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout
