"""Sampling a server under load with py-spy, and reading the samples.

``profile_server`` runs the load in the background, samples the server
process with ``py-spy record --format raw --threads`` (collapsed stacks, one
line per distinct stack with its count), saves them under
``bench/results/profiles/`` (open them in https://www.speedscope.app or feed
them to flamegraph.pl) and summarizes them as tables: how busy each thread
was, which layer of the stack the main thread spends its time in, and the
functions with the most inclusive and self time.

py-spy is optional (``pip install py-spy``); without it this prints a note.
It only sees Python frames: time in C (orjson, sqlite3, the kernel) is
charged to the Python line that called it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ._loadgen import LoadResult
from ._procs import Server
from ._report import BENCH_DIR, Table

PROFILE_DIR = BENCH_DIR / "results" / "profiles"
RATE_HZ = 100

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_THREAD = re.compile(r"^thread \((?P<tid>\w+)\): (?P<name>.*)$")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

#: Leaf frames are charged to the first layer whose path marker they contain.
LAYERS = (
    ("tippen_rt (ours)", ("tippen_rt/",)),
    ("quart + werkzeug", ("quart/", "quart_trio/", "werkzeug/", "flask/")),
    ("hypercorn + h11", ("hypercorn/", "h11/", "wsproto/", "h2/")),
    ("trio runtime", ("trio/",)),
    ("sqlite3 / stdlib", ("sqlite3/", "<frozen", "contextlib", "enum", "dataclasses", "logging")),
)


def _py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


def profile_server(
    server: Server, seconds: float, load: Callable[[], LoadResult]
) -> tuple[list[Table], LoadResult]:
    """Sample ``server`` for ``seconds`` while ``load()`` (a bit longer) runs."""
    box: list[LoadResult] = []
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            box.append(load())
        except BaseException as exc:  # reported after join
            errors.append(exc)

    py_spy = _py_spy()
    loader = threading.Thread(target=drive, name="profile-load")
    loader.start()
    tables: list[Table] = []
    out = PROFILE_DIR / f"{server.name}-{time.strftime('%Y%m%d-%H%M%S')}.collapsed.txt"
    if py_spy is None:
        note = Table("profile", ["note"])
        note.add("py-spy not found: `.venv/bin/pip install py-spy` to profile")
        tables.append(note)
    else:
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        time.sleep(1.0)  # let the load reach steady state
        proc = subprocess.run(
            [
                py_spy,
                "record",
                "-p",
                str(server.pid),
                "-d",
                str(max(1, round(seconds))),
                "-r",
                str(RATE_HZ),
                "--threads",
                "--format",
                "raw",
                "-o",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            note = Table("profile", ["note"])
            note.add(f"py-spy failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
            tables.append(note)
        else:
            tables += summarize(
                out.read_text(), seconds, RATE_HZ, str(out.relative_to(BENCH_DIR.parent))
            )
    loader.join()
    if errors:
        raise errors[0]
    return tables, box[0]


def _frame(text: str) -> tuple[str, str, str]:
    m = _FRAME.match(text)
    if not m:
        return text, "", ""
    return m["func"], m["file"], m["line"] or ""


def _layer(path: str) -> str:
    for name, markers in LAYERS:
        if any(mark in path for mark in markers):
            return name
    return "other"


def summarize(raw: str, seconds: float, rate_hz: int, source: str = "") -> list[Table]:
    """Tables from py-spy's raw (collapsed) output with ``--threads``."""
    per_thread: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    main_total = 0
    for line in raw.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        count = int(m["count"])
        frames = m["stack"].split(";")
        tm = _THREAD.match(frames[0])
        thread = tm["name"] if tm else "?"
        # Worker threads are numbered; one row for all of a kind.
        thread = re.sub(r"\d+$", "N", thread)
        per_thread[thread] += count
        frames = frames[1:] if tm else frames
        if not frames:
            continue
        seen: set[str] = set()
        for f in frames:
            func, path, _ = _frame(f)
            key = f"{func} ({_short(path)})"
            if key not in seen:
                seen.add(key)
                inclusive[f"[{thread}] {key}"] += count
        func, path, lineno = _frame(frames[-1])
        self_time[f"[{thread}] {func} ({_short(path)}:{lineno})"] += count
        if thread == "MainThread":
            main_total += count
            layers[_layer(path)] += count

    possible = seconds * rate_hz
    title_src = f" [{source}]" if source else ""
    t_threads = Table(
        f"profile: busy samples per thread ({seconds:g} s at {rate_hz} Hz){title_src}",
        ["thread", "samples", "busy % of wall time"],
    )
    for thread, n in per_thread.most_common():
        t_threads.add(thread, n, 100 * n / possible)

    t_layers = Table(
        "profile: MainThread busy samples by layer of the innermost Python frame",
        ["layer", "samples", "% of MainThread busy"],
    )
    for name, n in layers.most_common():
        t_layers.add(name, n, 100 * n / main_total if main_total else 0.0)

    total = sum(per_thread.values()) or 1
    t_incl = Table(
        "profile: top functions by inclusive samples (% of all busy samples)",
        ["function", "samples", "%"],
    )
    for key, n in inclusive.most_common(60):
        if _boring(key):
            continue
        t_incl.add(key, n, 100 * n / total)
        if len(t_incl.rows) >= 30:
            break
    t_self = Table(
        "profile: top lines by self samples (% of all busy samples)",
        ["line", "samples", "%"],
    )
    for key, n in self_time.most_common(20):
        t_self.add(key, n, 100 * n / total)
    return [t_threads, t_layers, t_incl, t_self]


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path


def _boring(key: str) -> bool:
    """Frames every sample passes through (module start-up, the trio run loop)."""
    return any(
        s in key
        for s in (
            "_run_module_as_main",
            "_run_code",
            "<module>",
            "(tippen_rt/cli.py)",
            "unrolled_run",
            "run (trio/_core/_run.py)",
            "(tippen_rt/__main__.py)",
            "Thread._bootstrap",
            "Thread.run",
            "Thread._bootstrap_inner",
        )
    )
