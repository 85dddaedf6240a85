"""What every benchmark hands back, how it is printed, and where it is recorded.

A benchmark returns a :class:`Report`: its parameters, its figures (flat,
JSON-able, units in the names) and the tables a human reads.  The runner
prints the tables and appends one JSON line per report to
``bench/results/results.jsonl`` together with the git commit and the machine,
so two runs can be compared line by line.  ``deps`` records the version of
every package installed where the benchmark ran and the digest of the lock
file (``requirements-dev.txt``) that ``make`` installs from, so a figure can be
reproduced with the dependencies it was measured with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results" / "results.jsonl"
LOCK_FILE = REPO_DIR / "requirements-dev.txt"
#: Set by ``python -m bench --at REV``: the service's src/ is that commit, exported.
SRC_REV_ENV = "TIPPEN_BENCH_SRC_REV"


@dataclass
class Table:
    """A titled table of rows; cells are printed with ``str`` (floats rounded)."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        """Append one row."""
        self.rows.append(cells)

    def render(self) -> str:
        """The table as fixed-width text."""
        cells = [[_cell(c) for c in row] for row in self.rows]
        widths = [len(c) for c in self.columns]
        for row in cells:
            for i, c in enumerate(row):
                widths[i] = max(widths[i], len(c))

        def line(values: Sequence[str]) -> str:
            # First column left-aligned (labels), the others right-aligned (numbers).
            parts = [
                v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(values)
            ]
            return "  ".join(parts).rstrip()

        rule = "  ".join("-" * w for w in widths)
        out = [self.title, line(list(self.columns)), rule]
        out += [line(row) for row in cells]
        return "\n".join(out)


@dataclass
class Report:
    """The outcome of one benchmark."""

    bench: str
    params: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        """Tables, then notes, as printed at the end of the benchmark."""
        parts = [t.render() for t in self.tables]
        if self.notes:
            parts.append("\n".join(f"note: {n}" for n in self.notes))
        return "\n\n".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if value is None:
        return "-"
    return str(value)


# ---- provenance -------------------------------------------------------------


def git_commit() -> dict[str, Any]:
    """The commit the benchmark ran on and whether the tree had local changes.

    ``src_digest`` hashes the service's source as imported, so two runs on the same
    dirty tree can still be matched.
    """
    src_digest = _src_digest()
    pinned = os.environ.get(SRC_REV_ENV)
    if pinned:
        return {"commit": pinned, "dirty": False, "src": "exported", "src_digest": src_digest}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()

    commit = git("rev-parse", "HEAD")
    # Only files that can change the figures count as "dirty".
    dirty = bool(git("status", "--porcelain", "--", "src", "bench", "pyproject.toml"))
    return {"commit": commit or None, "dirty": dirty, "src": "tree", "src_digest": src_digest}


def _src_digest() -> str | None:
    try:
        import tippen_rt
    except ImportError:
        return None
    root = Path(tippen_rt.__file__).parent
    h = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def dependency_versions(lock: Path = LOCK_FILE) -> dict[str, Any]:
    """Every installed distribution's version, and the lock file's digest.

    ``matches_lock`` is False when an installed version differs from its pin
    (the environment was changed by hand since ``make`` installed it).
    """
    installed: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            installed[_canonical(name)] = dist.version
    info: dict[str, Any] = {"packages": dict(sorted(installed.items()))}
    try:
        text = lock.read_text()
    except OSError:
        return info
    pins = {}
    for line in text.splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith((" ", "#")):
            pins[_canonical(name)] = version.strip()
    info["lock_sha256"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    info["matches_lock"] = all(installed.get(n) == v for n, v in pins.items())
    return info


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Enough about the machine to know whether two runs are comparable."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "hostname": platform.node(),
    }
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kb = int(next(x for x in meminfo if x.startswith("MemTotal")).split()[1])
        info["mem_total_mib"] = total_kb // 1024
    except (OSError, StopIteration, ValueError):
        pass
    try:
        import sqlite3

        info["sqlite"] = sqlite3.sqlite_version
    except ImportError:  # pragma: no cover
        pass
    return info


def cpu_busy_pct(interval_s: float = 1.0) -> float | None:
    """How busy all CPUs are over ``interval_s`` (0-100), from /proc/stat; Linux only.

    Taken just before a benchmark, it shows whether other processes (a test run,
    a browser) were competing for the CPUs.
    """

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval_s)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return round(100 * (total - (idle1 - idle0)) / total, 1) if total else None


def filesystem_of(path: Path) -> str:
    """The filesystem type holding ``path`` (``ext4``, ``tmpfs``...), or ``?``.

    fsync is free on tmpfs, so a database there makes commits look too cheap.
    """
    try:
        target = str(path.resolve())
        best, best_type = "", "?"
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and target.startswith(parts[1]) and len(parts[1]) > len(best):
                best, best_type = parts[1], parts[2]
        return best_type
    except OSError:
        return "?"


def record(reports: Sequence[Report], *, path: Path = RESULTS_FILE) -> None:
    """Append one JSON line per report, with timestamp, commit and machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    common: Mapping[str, Any] = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_commit(),
        "machine": machine_info(),
        "deps": dependency_versions(),
        "argv": sys.argv[1:],
    }
    with path.open("ab") as out:
        for report in reports:
            line = {
                **common,
                "bench": report.bench,
                "params": report.params,
                "figures": report.figures,
                "notes": report.notes,
            }
            out.write(orjson.dumps(line, option=orjson.OPT_NON_STR_KEYS) + b"\n")
