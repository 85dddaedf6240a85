"""Run the real service as a subprocess on a free port on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_LISTENING = re.compile(r"tippen-rt listening on (http://[^\s\",]+)")


@dataclass
class ServerProcess:
    """A running ``tippen-rt serve``; ``url`` is its base URL."""

    proc: subprocess.Popen[str]
    url: str
    db_path: Path
    output: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        """``kill -9``: no chance to clean up."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        """Everything the process printed so far."""
        return "".join(self.output)

    def wait_for_log(self, text: str, timeout_s: float = 30.0) -> None:
        """Wait until the process has printed ``text``; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError(f"server never printed {text!r}:\n{self.log()}")
            time.sleep(0.02)

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return int(self.url.rsplit(":", 1)[1])


def start_server(
    db_path: Path,
    *extra_args: str,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    port: int = 0,
    time_shift_s: float = 0.0,
    command: Sequence[str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """Start ``tippen-rt serve`` on ``port`` (0: any free one) and wait until it listens.

    ``time_shift_s``: the process's wall clock reads that many seconds ahead
    (see ``shifted_clock.py``), as if it started after that much downtime.
    ``command``: what runs ``tippen-rt`` (default: this Python, ``-m tippen_rt``),
    e.g. the ``tippen-rt`` script of another virtualenv, started in ``cwd``.
    """
    launcher = (
        ["-m", "tippen_rt"]
        if time_shift_s == 0
        else [str(Path(__file__).with_name("shifted_clock.py")), repr(float(time_shift_s))]
    )
    cmd = [
        *(command or [sys.executable, *launcher]),
        "--db",
        str(db_path),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra_args,
    ]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=cwd
    )
    output: list[str] = []
    found = threading.Event()
    url_box: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            match = _LISTENING.search(line)
            if match and not found.is_set():
                url_box.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not found.wait(0.05):
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError("server did not start:\n" + "".join(output))
    if not url_box:
        proc.wait(timeout=5)
        raise RuntimeError(f"server exited with {proc.returncode}:\n" + "".join(output))
    return ServerProcess(proc=proc, url=url_box[0], db_path=db_path, output=output)


@contextmanager
def running_server(db_path: Path, *extra_args: str, **kw: object) -> Iterator[ServerProcess]:
    """``start_server`` that always stops the process."""
    server = start_server(db_path, *extra_args, **kw)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.kill()
