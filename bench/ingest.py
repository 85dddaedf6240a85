"""Issues 2 and 22: durable ingest against a no-op endpoint of the same stack.

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

It does so for two mixes of batches: (a) 50-event batches, (b) the realistic
mix of sizes (``_loadgen.MIX``: 35 % a lone heartbeat, 40 % 2-5 events, 15 %
6-19, 10 % 20-50; about 7 on average).  For each mix and each server it then
searches (c) the capacity: the highest offered rate at which p99 stays under
100 ms, offered by 256 connections with exponential think times (each one an
independent user, so the load is close to open loop as long as answers are
much faster than the think time; like wrk itself, not corrected for
coordinated omission), bisecting between nothing and the closed-loop rate.
A step counts if it answered at least 90 % of what was offered with no
errors.  The capacity is also printed as active users per VM (one batch per
user every 5 s).  CPU per request is reported for the whole service process,
its event loop's thread alone, and its SQLite writer process.

Targets (issues 2 and 22): (a) ingest >= 60 % of the no-op's req/s and
loop-thread CPU per request <= 1.35x the no-op's; (b) >= 85 %; (c) ingest's
capacity >= 70 % of the no-op's, for both mixes; p99 < 100 ms.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ._loadgen import MIX, MIX_MEAN_EVENTS, ORIGIN, LoadResult, have_wrk, run_trio, run_wrk
from ._options import Options
from ._procs import Server, run_cli, start_server
from ._profile import profile_server
from ._report import REPO_DIR, Report, Table, filesystem_of

NAME = "ingest"
DESCRIPTION = (
    "POST batches (50 events, and the realistic mix): real ingest (durable) vs a no-op"
    " endpoint of the same stack, closed loop and capacity at p99 < 100 ms"
)

#: All load comes from 127.0.0.1 with one API key: the per-address and per-key
#: rate limits (500 and 5000 req/s by default) would measure the limiter, not
#: ingest's capacity.  0 switches them off; older revisions ignore the names.
SERVER_ENV = {"TIPPEN_INGEST_RATE_PER_ADDRESS": "0", "TIPPEN_INGEST_RATE_PER_KEY": "0"}

TARGET_RATIO = 0.60
TARGET_MIX_RATIO = 0.85
TARGET_CAPACITY_RATIO = 0.70
TARGET_LOOP_CPU_RATIO = 1.35
TARGET_P99_MS = 100.0
#: The two mixes: label, figure prefix, events per batch (0: the realistic mix).
MIXES = (("50-event batches", "", 50), ("realistic mix", "mix_", 0))
#: Connections of the capacity search (each an independent user with think times).
CAPACITY_CONNECTIONS = 256
#: A capacity step counts if this share of the offered rate was answered.
CAPACITY_ANSWERED = 0.90
#: Users of a VM send one batch every this many seconds.
USER_BATCH_EVERY_S = 5.0


def _create_tenant(db: Path) -> str:
    """``tippen-rt tenant add`` on ``db``; the new tenant's API key."""
    out = run_cli(db, "tenant", "add", "bench", "--origin", ORIGIN, "--json")
    return str(orjson.loads(out)["api_key"])


def _load(
    opts: Options,
    server: Server,
    path: str,
    api_key: str,
    seconds: float,
    rate_per_s: float = 0.0,
    *,
    events: int | None = None,
    connections: int | None = None,
) -> LoadResult:
    url = server.url + path
    # A nonce that differs per phase keeps batch ids unique across the run.
    nonce = time.time_ns() // 1000 % 1_000_000_007
    kw = dict(
        api_key=api_key,
        duration_s=seconds,
        connections=connections or opts.connections,
        users=opts.users,
        events=opts.events if events is None else events,
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


@dataclass
class Side:
    """One server under one mix: the closed-loop run, its CPU, the capacity search."""

    result: LoadResult
    cpu_pct: float | None
    loop_pct: float | None
    writer_pct: float
    rss_mib: float | None
    capacity: float = 0.0
    steps: list[tuple[float, LoadResult]] = field(default_factory=list)
    paced: LoadResult | None = None

    def ms_per_req(self, pct: float | None) -> float | None:
        """CPU ms per answered request of the closed-loop run for ``pct``."""
        return _cpu_ms_per_req(pct, self.result)


def _closed_loop(
    opts: Options, server: Server, api_key: str, events: int, runs: list[LoadResult]
) -> Side:
    from tippen_rt.http import TRACK_PATH

    if opts.warmup_s > 0:
        runs.append(_load(opts, server, TRACK_PATH, api_key, opts.warmup_s, events=events))
    cpu0, loop0 = server.cpu_seconds(), server.main_thread_cpu_seconds()
    writer0 = server.children_cpu_seconds()
    measured = _load(opts, server, TRACK_PATH, api_key, opts.duration_s, events=events)
    cpu1, loop1 = server.cpu_seconds(), server.main_thread_cpu_seconds()
    writer1 = server.children_cpu_seconds()
    runs.append(measured)
    span = measured.duration_s

    def pct(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else 100 * (b - a) / span

    return Side(
        measured,
        pct(cpu0, cpu1),
        pct(loop0, loop1),
        100 * (writer1 - writer0) / span,
        server.rss_mib(),
    )


def _capacity(
    opts: Options, server: Server, api_key: str, events: int, side: Side, runs: list[LoadResult]
) -> None:
    """Bisect the highest offered rate with p99 < 100 ms (see the module docstring)."""
    from tippen_rt.http import TRACK_PATH

    steps, seconds = (3, 3.0) if opts.quick else (6, max(4.0, opts.duration_s / 2))
    lo, hi = 0.0, max(side.result.ok_per_s, 1.0)
    for _ in range(steps):
        rate = (lo + hi) / 2
        r = _load(
            opts,
            server,
            TRACK_PATH,
            api_key,
            seconds,
            rate,
            events=events,
            connections=CAPACITY_CONNECTIONS,
        )
        runs.append(r)
        side.steps.append((rate, r))
        ok = (
            r.latency_ms["p99"] < TARGET_P99_MS
            and r.not_ok == 0
            and r.ok_per_s >= CAPACITY_ANSWERED * rate
        )
        lo, hi = (rate, hi) if ok else (lo, rate)
    side.capacity = lo


def run(opts: Options) -> Report:
    """Run the benchmark and return its report."""
    from tippen_rt.http import TRACK_PATH

    report = Report(
        NAME,
        params={
            "duration_s": opts.duration_s,
            "warmup_s": opts.warmup_s,
            "connections": opts.connections,
            "capacity_connections": CAPACITY_CONNECTIONS,
            "threads": opts.threads,
            "users": opts.users,
            "events_per_batch": opts.events,
            "mix": [list(m) for m in MIX],
            "mix_mean_events": MIX_MEAN_EVENTS,
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
    sides: dict[tuple[str, str], Side] = {}
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
        #: Every ingest run, by events per batch (0: the mix), for the durability check.
        ingest_runs: dict[int, list[LoadResult]] = {50: [], 0: []}
        profile: list[Table] = []
        try:
            for _, prefix, events in MIXES:
                events = opts.events if events == 50 else events
                for label, server in (("no-op", noop), ("ingest", ingest)):
                    runs = ingest_runs[events] if label == "ingest" else []
                    side = _closed_loop(opts, server, api_key, events, runs)
                    if prefix == "" and opts.rate_per_s > 0:
                        side.paced = _load(
                            opts, server, TRACK_PATH, api_key, _paced_s(opts), opts.rate_per_s
                        )
                        runs.append(side.paced)
                    _capacity(opts, server, api_key, events, side, runs)
                    sides[(prefix, label)] = side
            if opts.profile_s > 0:
                profile, profiled = profile_server(
                    ingest,
                    opts.profile_s,
                    lambda: _load(opts, ingest, TRACK_PATH, api_key, opts.profile_s + 2),
                )
                ingest_runs[opts.events].append(profiled)
        finally:
            noop.stop()
            # kill -9: what is acknowledged must already be on disk.
            ingest.stop(signal.SIGKILL)
        rows, batches = _count(db)
        report.params["db_filesystem"] = filesystem_of(db)

    a = sides[("", "ingest")].result
    report.params["generator"] = a.generator
    acked_full = sum(r.ok for r in ingest_runs[opts.events])
    acked_mix = sum(r.ok for r in ingest_runs[0])
    expected = acked_full * opts.events
    durable = rows >= expected + acked_mix and batches >= acked_full + acked_mix
    _report_tables(report, opts, sides, profile)
    dur = Table(
        "durability (all ingest phases, server killed with SIGKILL, then SQLite opened)",
        [
            "acked batches",
            f"acked events of {opts.events}-event batches",
            "rows in user_activity_events",
            "batches in ingest_batches",
            "durable",
        ],
    )
    dur.add(acked_full + acked_mix, expected, rows, batches, durable)
    report.tables.append(dur)
    report.figures.update(
        acked_batches=acked_full + acked_mix,
        acked_events=expected,
        stored_rows=rows,
        stored_batches=batches,
        durable=durable,
    )
    if not durable:
        report.notes.append(
            f"DURABILITY FAILURE: {acked_full + acked_mix} batches acknowledged,"
            f" {batches} stored; {expected} events of full batches, {rows} rows"
        )
    if a.not_ok:
        report.notes.append(f"ingest answered non-2xx: {a.statuses}")
    report.notes.append(
        "server CPU = the service process (all its threads); loop = its event loop's"
        " thread alone; writer = its SQLite writer process (TIPPEN_STORE_WRITER=process),"
        " not included in server CPU"
    )
    report.notes.append(
        f"durability counts batches of both mixes (the mix's event count per batch is"
        f" random: about {MIX_MEAN_EVENTS:.1f}), and every event of the"
        f" {opts.events}-event batches"
    )
    return report


def _report_tables(
    report: Report, opts: Options, sides: dict[tuple[str, str], Side], profile: list[Table]
) -> None:
    targets = Table("targets (issues 2 and 22)", ["figure", "value", "target", "met"])
    for mix_label, prefix, events in MIXES:
        events = opts.events if events == 50 else events
        size = f"{events}-event batches" if events else mix_label
        table = Table(
            f"ingest vs no-op, closed loop: {size}, {opts.connections} keep-alive connections,"
            f" {opts.duration_s:g} s each after {opts.warmup_s:g} s warm-up"
            f" ({sides[(prefix, 'ingest')].result.generator})",
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
        mean = events or MIX_MEAN_EVENTS
        for label in ("no-op", "ingest"):
            side = sides[(prefix, label)]
            r = side.result
            table.add(
                label,
                r.ok_per_s,
                r.ok_per_s * mean,
                r.latency_ms["p50"],
                r.latency_ms["p90"],
                r.latency_ms["p99"],
                r.latency_ms["max"],
                r.not_ok,
                sum(r.socket_errors.values()),
                side.cpu_pct,
                side.ms_per_req(side.cpu_pct),
                side.ms_per_req(side.loop_pct),
                side.ms_per_req(side.writer_pct),
                side.rss_mib,
            )
            key = f"{prefix}{'noop' if label == 'no-op' else 'ingest'}"
            report.figures[f"{key}_req_per_s"] = round(r.ok_per_s, 1)
            report.figures[f"{key}_events_per_s"] = round(r.ok_per_s * mean, 1)
            for p in ("p50", "p90", "p99", "max"):
                report.figures[f"{key}_{p}_ms"] = round(r.latency_ms[p], 2)
            report.figures[f"{key}_non_2xx"] = r.not_ok
            report.figures[f"{key}_socket_errors"] = sum(r.socket_errors.values())
            report.figures[f"{key}_server_cpu_pct"] = (
                None if side.cpu_pct is None else round(side.cpu_pct, 1)
            )
            for part, pct in (
                ("server", side.cpu_pct),
                ("loop", side.loop_pct),
                ("writer", side.writer_pct),
            ):
                ms = side.ms_per_req(pct)
                report.figures[f"{key}_{part}_cpu_ms_per_req"] = (
                    None if ms is None else round(ms, 3)
                )
            report.figures[f"{key}_capacity_req_per_s"] = round(side.capacity, 1)
            report.figures[f"{key}_capacity_users"] = round(side.capacity * USER_BATCH_EVERY_S)
        report.tables.append(table)

        ing, noop = sides[(prefix, "ingest")], sides[(prefix, "no-op")]
        ratio = ing.result.ok_per_s / noop.result.ok_per_s if noop.result.ok_per_s else 0.0
        goal = TARGET_RATIO if events else TARGET_MIX_RATIO
        targets.add(
            f"{size}: ingest / no-op req/s", f"{ratio:.0%}", f">= {goal:.0%}", ratio >= goal
        )
        report.figures[f"{prefix}ratio"] = round(ratio, 3)
        report.figures[f"{prefix}ratio_target_met"] = ratio >= goal
        loop_a, loop_b = ing.ms_per_req(ing.loop_pct), noop.ms_per_req(noop.loop_pct)
        if loop_a and loop_b:
            lr = loop_a / loop_b
            report.figures[f"{prefix}loop_cpu_ratio"] = round(lr, 3)
            if events:
                targets.add(
                    f"{size}: loop CPU/req, ingest / no-op",
                    f"{lr:.2f}x",
                    f"<= {TARGET_LOOP_CPU_RATIO:g}x",
                    lr <= TARGET_LOOP_CPU_RATIO,
                )
        cpu_a, cpu_b = ing.ms_per_req(ing.cpu_pct), noop.ms_per_req(noop.cpu_pct)
        if cpu_a and cpu_b:
            report.figures[f"{prefix}cpu_per_req_ratio"] = round(cpu_b / cpu_a, 3)
        cap = ing.capacity / noop.capacity if noop.capacity else 0.0
        targets.add(
            f"{size}: capacity at p99 < {TARGET_P99_MS:g} ms, ingest / no-op",
            f"{cap:.0%}",
            f">= {TARGET_CAPACITY_RATIO:.0%}",
            cap >= TARGET_CAPACITY_RATIO,
        )
        report.figures[f"{prefix}capacity_ratio"] = round(cap, 3)
        steps = Table(
            f"capacity search, {size}: offered req/s by {CAPACITY_CONNECTIONS} connections with"
            " exponential think times; a step counts with p99 < 100 ms, no errors and"
            f" >= {CAPACITY_ANSWERED:.0%} of the offered rate answered",
            [
                "endpoint",
                "offered req/s",
                "answered req/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "non-2xx",
                "counts",
            ],
        )
        for label in ("no-op", "ingest"):
            side = sides[(prefix, label)]
            for rate, r in side.steps:
                steps.add(
                    label,
                    rate,
                    r.ok_per_s,
                    r.latency_ms["p50"],
                    r.latency_ms["p99"],
                    r.latency_ms["max"],
                    r.not_ok,
                    "yes" if rate <= side.capacity else "no",
                )
            steps.add(
                f"{label}: capacity",
                side.capacity,
                f"= {side.capacity * USER_BATCH_EVERY_S:,.0f} active users",
                "",
                "",
                "",
                "",
                "",
            )
        report.tables.append(steps)
    a = sides[("", "ingest")].result
    targets.add(
        "50-event batches: ingest p99 ms, closed loop",
        a.latency_ms["p99"],
        f"< {TARGET_P99_MS:g}",
        a.latency_ms["p99"] < TARGET_P99_MS,
    )
    report.figures["p99_target_met"] = a.latency_ms["p99"] < TARGET_P99_MS
    paced = {label: sides[("", label)].paced for label in ("no-op", "ingest")}
    if paced["ingest"] is not None and paced["no-op"] is not None:
        lat = Table(
            f"latency at a paced load: at most {opts.rate_per_s:g} req/s offered over"
            f" {opts.connections} connections (as {opts.users:,} users each sending a batch"
            f" every {opts.users / opts.rate_per_s:g} s), {_paced_s(opts):g} s each",
            ["endpoint", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "non-2xx"],
        )
        for label, key in (("no-op", "noop"), ("ingest", "ingest")):
            r = paced[label]
            assert r is not None
            lat.add(
                label,
                r.ok_per_s,
                r.latency_ms["p50"],
                r.latency_ms["p90"],
                r.latency_ms["p99"],
                r.latency_ms["max"],
                r.not_ok,
            )
            report.figures[f"{key}_paced_req_per_s"] = round(r.ok_per_s, 1)
            for p in ("p50", "p90", "p99", "max"):
                report.figures[f"{key}_paced_{p}_ms"] = round(r.latency_ms[p], 2)
        report.tables.append(lat)
        report.params["paced_rate_per_s"] = opts.rate_per_s
        report.params["paced_s"] = _paced_s(opts)
    report.tables += [targets, *profile]
