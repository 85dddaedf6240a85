"""``python -m bench [names...]``: run benchmarks, print tables, append JSON results.

With no names every benchmark runs, ceilings first, then a summary that puts
each figure next to its ceiling.  ``--list`` names them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from ._options import Options
from ._report import (
    REPO_DIR,
    RESULTS_FILE,
    SRC_REV_ENV,
    Report,
    Table,
    cpu_busy_pct,
    git_commit,
    machine_info,
    record,
)
from ._revs import export_src, resolve_rev

#: CPU use by others (% of all CPUs) above which a benchmark gets a "noisy" note.
BUSY_PCT = 10.0

#: In running order: the ceilings first, so the summary can compare against them.
#: Each is a module ``bench/<name>.py`` with ``NAME``, ``DESCRIPTION`` and
#: ``run(opts: Options) -> Report``, imported only when it runs (so ``--at`` an
#: older revision can still run the benchmarks whose code it has).
BENCHMARKS: tuple[str, ...] = (
    "store",
    "validate",
    "ingest",
    "actors",
    "recovery",
    "dashboard",
    "presence",
    "support",
    "soak",
)


def load(name: str) -> ModuleType:
    """The module of benchmark ``name``."""
    return importlib.import_module(f"{__package__ or 'bench'}.{name}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    d = Options()
    p.add_argument(
        "--duration",
        type=float,
        default=d.duration_s,
        help=f"measured seconds per HTTP target (default {d.duration_s:g})",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=d.warmup_s,
        help=f"warm-up seconds before each measured phase (default {d.warmup_s:g})",
    )
    p.add_argument(
        "--connections",
        type=int,
        default=d.connections,
        help=f"keep-alive connections (default {d.connections})",
    )
    p.add_argument(
        "--threads", type=int, default=d.threads, help=f"wrk threads (default {d.threads})"
    )
    p.add_argument(
        "--users", type=int, default=d.users, help=f"distinct user ids (default {d.users})"
    )
    p.add_argument(
        "--rate",
        type=float,
        default=d.rate_per_s,
        help=f"offered req/s of the paced latency phase, 0 to skip (default {d.rate_per_s:g})",
    )
    p.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "trio"),
        default=d.loadgen,
        help="load generator (default: wrk if installed, else trio)",
    )
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after measuring, sample the ingest server with py-spy this long",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 3 s phases, 1 s warm-up (figures not comparable)",
    )
    p.add_argument(
        "--at",
        metavar="REV",
        help="benchmark the service as of git revision REV (its src/ exported to a temp dir;"
        " bench/ itself stays as in the working tree)",
    )
    p.add_argument(
        "--baseline",
        default=d.baseline,
        metavar="REV",
        help="before/after benchmarks (presence) also run the service at REV as 'before';"
        " 'none' skips it (default 'auto': HEAD if src/ has uncommitted changes,"
        " else the commit before the one measured)",
    )
    p.add_argument("--no-record", action="store_true", help=f"do not append to {RESULTS_FILE.name}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.at:
        return _run_at(args.at, list(sys.argv[1:] if argv is None else argv))
    if args.list:
        for name in BENCHMARKS:
            try:
                description = load(name).DESCRIPTION
            except ImportError as exc:
                description = f"(cannot import here: {exc})"
            print(f"{name:10} {description}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; try --list", file=sys.stderr)
        return 2
    names = [n for n in BENCHMARKS if not args.names or n in args.names]
    opts = Options(
        duration_s=3.0 if args.quick else args.duration,
        warmup_s=1.0 if args.quick else args.warmup,
        connections=args.connections,
        threads=args.threads,
        users=args.users,
        rate_per_s=args.rate,
        loadgen=args.loadgen,
        profile_s=args.profile,
        baseline=args.baseline,
        quick=args.quick,
    )
    machine = machine_info()
    git = git_commit()
    import tippen_rt

    print(
        f"tippen-rt benchmarks at {str(git['commit'])[:12]}{' (dirty)' if git['dirty'] else ''}"
        f" (src: {Path(tippen_rt.__file__).parent.parent})"
        f" on {machine['cpu_count']} x {machine['cpu_model']}, Python {machine['python']},"
        f" SQLite {machine.get('sqlite', '?')}\n",
        flush=True,
    )
    reports: list[Report] = []
    for name in names:
        try:
            module = load(name)
        except ImportError as exc:
            print(f"== {name}: skipped, cannot import: {exc}\n", flush=True)
            continue
        print(f"== {name}: {module.DESCRIPTION}", flush=True)
        busy_before = cpu_busy_pct()
        t0 = time.perf_counter()
        report: Report = module.run(opts)
        report.figures["wall_s"] = round(time.perf_counter() - t0, 1)
        report.params["cpu_busy_pct_before"] = busy_before
        if busy_before is not None and busy_before > BUSY_PCT:
            report.notes.append(
                f"the machine was {busy_before:.0f}% busy just before this benchmark:"
                " other processes share the CPUs, so its figures are noisy"
            )
        reports.append(report)
        print(report.render(), end="\n\n", flush=True)
    summary = _summary(reports)
    if summary is not None:
        reports.append(summary)
        print(summary.render(), end="\n\n")
    if args.quick:
        for r in reports:
            r.params["quick"] = True
    if not args.no_record:
        record(reports)
        print(f"results appended to {RESULTS_FILE}")
    return 0


def _run_at(rev: str, argv: list[str]) -> int:
    """Re-run ``python -m bench`` with the ``src/`` of ``rev`` first on PYTHONPATH.

    The servers and CLI the benchmarks start inherit PYTHONPATH, so they run
    that revision too.  Read-only for the repository: ``git archive``, no checkout.
    """
    sha = resolve_rev(rev)
    if not sha:
        print(f"--at {rev}: not a git revision", file=sys.stderr)
        return 2
    rest: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--at":
            skip = True
        elif not arg.startswith("--at="):
            rest.append(arg)
    with tempfile.TemporaryDirectory(prefix=f"tippen-bench-{sha[:8]}-") as tmp:
        env = dict(os.environ)
        src = str(export_src(sha, Path(tmp)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        env[SRC_REV_ENV] = sha
        return subprocess.run(
            [sys.executable, "-m", "bench", *rest], cwd=REPO_DIR, env=env, check=False
        ).returncode


def _summary(reports: list[Report]) -> Report | None:
    """Each ingest figure as a fraction of the ceiling measured in the same run."""
    by = {r.bench: r for r in reports}
    if "ingest" not in by:
        return None
    ing = by["ingest"].figures
    rep = Report("summary")
    table = Table(
        "ingest as a fraction of its ceilings (same run)",
        ["figure", "value", "ceiling", "ceiling value", "fraction"],
    )

    def add(key: str, label: str, value: float, ceiling: str, ceil_value: float | None) -> None:
        if not ceil_value:
            return
        table.add(label, value, ceiling, ceil_value, f"{value / ceil_value:.0%}")
        rep.figures[key] = round(value / ceil_value, 3)

    add(
        "ingest_vs_noop_req",
        "ingest req/s",
        ing["ingest_req_per_s"],
        "no-op req/s (same stack)",
        ing["noop_req_per_s"],
    )
    if "store" in by:
        st = by["store"].figures
        add(
            "ingest_vs_store_50w_events",
            "ingest events/s",
            ing["ingest_events_per_s"],
            "EventStore, 50 writers",
            st.get("store_50w_events_per_s"),
        )
        add(
            "ingest_vs_raw_sqlite_events",
            "ingest events/s",
            ing["ingest_events_per_s"],
            "raw sqlite",
            st.get("raw_events_per_s"),
        )
    if "validate" in by:
        va = by["validate"].figures
        add(
            "ingest_vs_parse_batches",
            "ingest req/s",
            ing["ingest_req_per_s"],
            "parse_batch/s, 1 core",
            va.get("parse_batches_per_s"),
        )
    rep.tables.append(table)
    return rep


if __name__ == "__main__":
    sys.exit(main())
