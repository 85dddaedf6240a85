"""Issue 2's speed benchmark: durable ingest against a no-op endpoint of the same stack.

Two servers run side by side, each a subprocess on 127.0.0.1:

(a) ``ingest``: the real ``tippen-rt serve`` on a fresh SQLite file, with a
    tenant created first by ``tippen-rt tenant add`` (rate limits off: all the
    load comes from one address with one key);
(b) ``no-op``: ``bench/_noop_server.py``, a quart-trio app on hypercorn's trio
    worker with the same hypercorn config, answering a constant.

The load generator (wrk with ``wrk/post_batches.lua``, or a trio fallback)
posts realistic 50-event batches over N keep-alive connections, first to the
no-op, then to ingest: a warm-up, a measured phase of the same length for
both (capacity: no pause between requests), then a paced phase (latency at
``--rate`` req/s offered, with random think times like independent users).
Then the ingest server is killed with SIGKILL and the SQLite file opened:
every acknowledged batch (2xx) must be there.

Targets (issue 2): ingest >= 60 % of the no-op's throughput, p99 < 100 ms
(reported for both the saturated and the paced phase).
"""

from __future__ import annotations

import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import orjson

from ._loadgen import ORIGIN, LoadResult, have_wrk, run_trio, run_wrk
from ._options import Options
from ._procs import Server, start_server
from ._profile import profile_server
from ._report import REPO_DIR, Report, Table, filesystem_of

NAME = "ingest"
DESCRIPTION = "POST 50-event batches: real ingest (durable) vs a no-op endpoint of the same stack"

#: All load comes from 127.0.0.1 with one API key: the per-address and per-key
#: rate limits (500 and 5000 req/s by default) would measure the limiter, not
#: ingest's capacity.  0 switches them off; older revisions ignore the names.
SERVER_ENV = {"TIPPEN_INGEST_RATE_PER_ADDRESS": "0", "TIPPEN_INGEST_RATE_PER_KEY": "0"}

TARGET_RATIO = 0.60
TARGET_P99_MS = 100.0


def _create_tenant(db: Path) -> str:
    """``tippen-rt tenant add`` on ``db``; the new tenant's API key."""
    out = _run_cli(db, "tenant", "add", "bench", "--origin", ORIGIN, "--json")
    return str(orjson.loads(out)["api_key"])


def _run_cli(db: Path, *args: str) -> str:
    import subprocess

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


def _load(
    opts: Options,
    server: Server,
    path: str,
    api_key: str,
    seconds: float,
    rate_per_s: float = 0.0,
) -> LoadResult:
    url = server.url + path
    # A nonce that differs per phase keeps batch ids unique across the run.
    nonce = time.time_ns() // 1000 % 1_000_000_007
    kw = dict(
        api_key=api_key,
        duration_s=seconds,
        connections=opts.connections,
        users=opts.users,
        events=opts.events,
        nonce=nonce,
        rate_per_s=rate_per_s,
    )
    if _use_wrk(opts):
        return run_wrk(url, threads=opts.threads, **kw)  # type: ignore[arg-type]
    return run_trio(url, **kw)  # type: ignore[arg-type]


def _use_wrk(opts: Options) -> bool:
    if opts.loadgen == "trio":
        return False
    if opts.loadgen == "wrk" and not have_wrk():
        raise RuntimeError("--loadgen wrk: wrk is not installed (apt-get install wrk)")
    return have_wrk()


def _count(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT count(*) FROM user_activity_events").fetchone()[0]
        batches = conn.execute("SELECT count(*) FROM ingest_batches").fetchone()[0]
    finally:
        conn.close()
    return int(rows), int(batches)


def _paced_s(opts: Options) -> float:
    """Length of the paced latency phase: two thirds of the measured one."""
    return max(3.0, round(opts.duration_s * 2 / 3))


def _cpu_ms_per_req(cpu_pct: float | None, r: LoadResult) -> float | None:
    """Server CPU time per answered request: steadier than req/s on a shared machine."""
    if cpu_pct is None or not r.requests:
        return None
    return 10 * cpu_pct * r.duration_s / r.requests


def run(opts: Options) -> Report:
    """Run the benchmark and return its report."""
    from tippen_rt.http import TRACK_PATH

    report = Report(
        NAME,
        params={
            "duration_s": opts.duration_s,
            "warmup_s": opts.warmup_s,
            "connections": opts.connections,
            "threads": opts.threads,
            "users": opts.users,
            "events_per_batch": opts.events,
            "server_env": SERVER_ENV,
        },
    )
    if not _use_wrk(opts):
        why = "--loadgen trio" if opts.loadgen == "trio" else "wrk not found"
        report.notes.append(
            f"{why}: the trio fallback generator ran. It shares the CPUs with the"
            " servers, so both throughputs are lower bounds."
            " `apt-get install wrk` for real figures."
        )
    with tempfile.TemporaryDirectory(prefix="tippen-bench-") as tmp:
        db = Path(tmp) / "bench.db"
        api_key = _create_tenant(db)
        ingest = start_server(
            "ingest",
            [
                sys.executable,
                "-m",
                "tippen_rt",
                "--db",
                str(db),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ],
            env=SERVER_ENV,
        )
        try:
            noop = start_server("no-op", [sys.executable, "-m", "bench._noop_server"], cwd=REPO_DIR)
        except BaseException:
            ingest.stop(signal.SIGKILL)
            raise
        results: dict[str, LoadResult] = {}
        cpu: dict[str, float | None] = {}
        #: The event loop's thread alone, and the writer process (ingest's child).
        loop_cpu: dict[str, float | None] = {}
        writer_cpu: dict[str, float | None] = {}
        rss: dict[str, float | None] = {}
        paced: dict[str, LoadResult] = {}
        ingest_runs: list[LoadResult] = []
        profile: list[Table] = []
        try:
            for label, server in (("no-op", noop), ("ingest", ingest)):
                phases: list[LoadResult] = []
                if opts.warmup_s > 0:
                    phases.append(_load(opts, server, TRACK_PATH, api_key, opts.warmup_s))
                cpu0, loop0 = server.cpu_seconds(), server.main_thread_cpu_seconds()
                writer0 = server.children_cpu_seconds()
                measured = _load(opts, server, TRACK_PATH, api_key, opts.duration_s)
                cpu1, loop1 = server.cpu_seconds(), server.main_thread_cpu_seconds()
                writer1 = server.children_cpu_seconds()
                phases.append(measured)
                results[label] = measured
                cpu[label] = (
                    None
                    if cpu0 is None or cpu1 is None
                    else 100 * (cpu1 - cpu0) / measured.duration_s
                )
                loop_cpu[label] = (
                    None
                    if loop0 is None or loop1 is None
                    else 100 * (loop1 - loop0) / measured.duration_s
                )
                writer_cpu[label] = 100 * (writer1 - writer0) / measured.duration_s
                rss[label] = server.rss_mib()
                if opts.rate_per_s > 0:
                    paced[label] = _load(
                        opts, server, TRACK_PATH, api_key, _paced_s(opts), opts.rate_per_s
                    )
                    phases.append(paced[label])
                if label == "ingest":
                    ingest_runs += phases
            if opts.profile_s > 0:
                profile, profiled = profile_server(
                    ingest,
                    opts.profile_s,
                    lambda: _load(opts, ingest, TRACK_PATH, api_key, opts.profile_s + 2),
                )
                ingest_runs.append(profiled)
        finally:
            noop.stop()
            # kill -9: what is acknowledged must already be on disk.
            ingest.stop(signal.SIGKILL)
        rows, batches = _count(db)
        report.params["db_filesystem"] = filesystem_of(db)

    report.params["generator"] = results["ingest"].generator
    a, b = results["ingest"], results["no-op"]
    ratio = a.ok_per_s / b.ok_per_s if b.ok_per_s else 0.0
    acked = sum(r.ok for r in ingest_runs)
    expected = acked * opts.events
    durable = rows >= expected and batches >= acked
    # Batches still in flight when the generator stopped may commit without an answer.
    in_flight_rows = rows - expected

    table = Table(
        f"ingest vs no-op: {opts.events}-event batches, {opts.connections} keep-alive "
        f"connections, {opts.duration_s:g} s each after {opts.warmup_s:g} s warm-up "
        f"({a.generator})",
        [
            "endpoint",
            "req/s",
            "events/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "non-2xx",
            "sock err",
            "server CPU %",
            "CPU ms/req",
            "loop ms/req",
            "writer ms/req",
            "RSS MiB",
        ],
    )
    for label in ("no-op", "ingest"):
        r = results[label]
        table.add(
            label,
            r.ok_per_s,
            r.ok_per_s * opts.events,
            r.latency_ms["p50"],
            r.latency_ms["p90"],
            r.latency_ms["p99"],
            r.latency_ms["max"],
            r.not_ok,
            sum(r.socket_errors.values()),
            cpu[label],
            _cpu_ms_per_req(cpu[label], r),
            _cpu_ms_per_req(loop_cpu[label], r),
            _cpu_ms_per_req(writer_cpu[label], r),
            rss[label],
        )
    targets = Table("targets (issue 2)", ["figure", "value", "target", "met"])
    targets.add(
        "ingest / no-op req/s", f"{ratio:.0%}", f">= {TARGET_RATIO:.0%}", ratio >= TARGET_RATIO
    )
    targets.add(
        "ingest p99 ms",
        a.latency_ms["p99"],
        f"< {TARGET_P99_MS:g}",
        a.latency_ms["p99"] < TARGET_P99_MS,
    )
    targets.add("durable after kill -9", "yes" if durable else "NO", "yes", durable)
    cpu_a, cpu_b = _cpu_ms_per_req(cpu["ingest"], a), _cpu_ms_per_req(cpu["no-op"], b)
    cpu_ratio = cpu_b / cpu_a if cpu_a and cpu_b else None
    if cpu_ratio is not None:
        # What the req/s ratio would be if both were bound by one core: it moves
        # much less than req/s when other processes compete for the CPUs.
        targets.add("(no-op CPU/req) / (ingest CPU/req)", f"{cpu_ratio:.0%}", "(steadier)", "")
    if paced:
        pa = paced["ingest"].latency_ms["p99"]
        targets.add(
            f"ingest p99 ms at {opts.rate_per_s:g} req/s offered",
            pa,
            f"< {TARGET_P99_MS:g}",
            pa < TARGET_P99_MS,
        )
    dur = Table(
        "durability (all ingest phases, server killed with SIGKILL, then SQLite opened)",
        [
            "acked batches",
            "acked events",
            "rows in user_activity_events",
            "batches in ingest_batches",
            "unacked rows (in flight at stop)",
            "durable",
        ],
    )
    dur.add(acked, expected, rows, batches, in_flight_rows, durable)
    tables = [table]
    if paced:
        lat = Table(
            f"latency at a paced load: at most {opts.rate_per_s:g} req/s offered over"
            f" {opts.connections} connections (as {opts.users:,} users each sending a batch"
            f" every {opts.users / opts.rate_per_s:g} s), {_paced_s(opts):g} s each",
            ["endpoint", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "non-2xx"],
        )
        for label in ("no-op", "ingest"):
            r = paced[label]
            lat.add(
                label,
                r.ok_per_s,
                r.latency_ms["p50"],
                r.latency_ms["p90"],
                r.latency_ms["p99"],
                r.latency_ms["max"],
                r.not_ok,
            )
        tables.append(lat)
    report.tables += [*tables, targets, dur, *profile]

    for label, key in (("no-op", "noop"), ("ingest", "ingest")):
        r = results[label]
        report.figures[f"{key}_req_per_s"] = round(r.ok_per_s, 1)
        report.figures[f"{key}_events_per_s"] = round(r.ok_per_s * opts.events, 1)
        for p in ("p50", "p90", "p99", "max"):
            report.figures[f"{key}_{p}_ms"] = round(r.latency_ms[p], 2)
        report.figures[f"{key}_non_2xx"] = r.not_ok
        report.figures[f"{key}_socket_errors"] = sum(r.socket_errors.values())
        pct = cpu[label]
        report.figures[f"{key}_server_cpu_pct"] = None if pct is None else round(pct, 1)
        ms = _cpu_ms_per_req(pct, r)
        report.figures[f"{key}_server_cpu_ms_per_req"] = None if ms is None else round(ms, 3)
        for part, pcts in (("loop", loop_cpu), ("writer", writer_cpu)):
            ms = _cpu_ms_per_req(pcts[label], r)
            report.figures[f"{key}_{part}_cpu_ms_per_req"] = None if ms is None else round(ms, 3)
    for label, key in (("no-op", "noop"), ("ingest", "ingest")):
        if label in paced:
            r = paced[label]
            report.figures[f"{key}_paced_req_per_s"] = round(r.ok_per_s, 1)
            for p in ("p50", "p90", "p99", "max"):
                report.figures[f"{key}_paced_{p}_ms"] = round(r.latency_ms[p], 2)
    if paced:
        report.params["paced_rate_per_s"] = opts.rate_per_s
        report.params["paced_s"] = _paced_s(opts)
    report.figures.update(
        ratio=round(ratio, 3),
        cpu_per_req_ratio=None if cpu_ratio is None else round(cpu_ratio, 3),
        ratio_target_met=ratio >= TARGET_RATIO,
        p99_target_met=a.latency_ms["p99"] < TARGET_P99_MS,
        acked_batches=acked,
        acked_events=expected,
        stored_rows=rows,
        stored_batches=batches,
        unacked_rows=in_flight_rows,
        durable=durable,
    )
    if not durable:
        report.notes.append(
            f"DURABILITY FAILURE: {expected} events acknowledged, {rows} rows stored"
        )
    if a.not_ok:
        report.notes.append(f"ingest answered non-2xx: {a.statuses}")
    report.notes.append(
        "server CPU = the service process (all its threads); loop = its event loop's"
        " thread alone; writer = its SQLite writer process (TIPPEN_STORE_WRITER=process),"
        " not included in server CPU"
    )
    return report
