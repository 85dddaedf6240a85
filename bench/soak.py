"""Issue 8's soak: the real service at half its capacity for 10 minutes, 10,000 users live.

1. ``tippen-rt serve`` starts on a fresh SQLite file (rate limits off, as in
   ``ingest``), and a saturating wrk run (``--warmup`` then ``--duration``
   seconds, ``--connections`` keep-alive connections, no pause) measures its
   **max throughput** on this workload: 50-event batches from
   ``wrk/post_batches.lua``, users taken in round-robin order.
2. If the users seen so far are fewer than ``--users`` (10,000 here), an
   unpaced run **populates** the rest, so the soak starts with all of them live
   instead of measuring their actors being spawned.
3. The **soak** offers half the max rate for 40 x ``--duration`` seconds (600 s
   by default; ``--quick`` makes it 60 s) to the same server, as consecutive
   10 s wrk runs over 4 x ``--connections`` connections (spare connections keep
   the schedule when latency jumps).  Each run is one sample.
4. After each sample: the server's RSS (``VmRSS``) and CPU, open file
   descriptors and threads, how busy the whole machine was, and ``GET /readyz``
   (``checks.live_users``); from wrk: answers per status, socket errors, and
   the latency percentiles of that interval's requests.
5. At the end the server is killed with SIGKILL and the SQLite file opened:
   every acknowledged batch (2xx) must be stored.

Pacing.  Debian's wrk has no ``-R``, so the script is ``wrk/post_batches.lua``
plus the Lua below.  ``delay()`` (called by wrk before every request, for
whichever connection is free) claims the next arrival of an open-loop Poisson
schedule kept per wrk thread against ``CLOCK_MONOTONIC`` (LuaJIT's ffi) and
waits until it.  The offered rate therefore does not sag when latency grows,
as fixed think times per connection would make it; a request sent more than
``LATE_MS`` after its arrival counts as *late* (all connections were busy),
and a backlog beyond ``MAX_BACKLOG_MS`` is dropped and counted as *missed*.
``request()`` takes users in round-robin order, carried across the 10 s runs,
so each of the 10,000 users sends one batch every ``users / rate`` seconds
(50 s at 200 req/s), far inside the 30 min session timeout: once the first
pass is through, all of them stay live.  Between two runs wrk closes its
connections: the few requests in flight then get no answer (the server may
still store them: "unacked rows" in the durability table), and the load
pauses for the milliseconds a new wrk takes to connect.

Drift compares the last tenth of the soak (its last minute) with the second
tenth (the first minute after a one-minute warm-up): RSS as the mean of the
samples, p99 as the mean of the per-interval p99s.  The verdict is *stable*
when RSS grew by at most ``RSS_DRIFT_LIMIT_PCT`` and p99 by at most
``P99_DRIFT_LIMIT_PCT`` (or ``P99_DRIFT_FLOOR_MS``, whichever is larger);
errors and durability are reported next to it.

``figures["series"]`` holds every sample as columns (lists named with units),
the one non-scalar figure, so a run's RSS and p99 curves can be redrawn.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ._loadgen import LUA_SCRIPT, ORIGIN, LoadResult, have_wrk
from ._options import Options
from ._procs import Server, start_server
from ._report import Report, Table, filesystem_of
from .ingest import SERVER_ENV, _count, _create_tenant

NAME = "soak"
DESCRIPTION = (
    "10 min at 50% of max ingest throughput with 10k live users: RSS and p99 drift, errors"
)

#: The soak lasts this many ``--duration``s: 600 s at the default 15 s.
SOAK_PER_DURATION = 40
#: ``python -m bench --quick`` sets 3 s phases and a 1 s warm-up (Options has no
#: quick flag, so that pair stands for it): the soak then lasts a minute.
QUICK_PHASES_S = (3.0, 1.0)
QUICK_SOAK_S = 60.0
#: Length of one wrk run, and so of one sample.
SAMPLE_S = 10
#: Offered rate as a fraction of the measured max throughput.
LOAD_FRACTION = 0.5
#: Soak connections per ``--connections``: an open-loop schedule needs spare ones.
SOAK_CONNECTIONS_FACTOR = 4
#: Distinct users, unless ``--users`` is given a value other than its default.
SOAK_USERS = 10_000
#: At most this many unpaced runs to give every user a first batch.
POPULATE_ROUNDS = 5
#: A request sent this long after its scheduled arrival counts as late.
LATE_MS = 100
#: Arrivals further behind schedule than this are dropped (counted as missed).
MAX_BACKLOG_MS = 1000
#: Verdict thresholds: last minute against the first minute after warm-up.
RSS_DRIFT_LIMIT_PCT = 10.0
P99_DRIFT_LIMIT_PCT = 50.0
P99_DRIFT_FLOOR_MS = 10.0
#: A change of the machine's busy % between the windows worth a note (points).
HOST_SHIFT_PCT = 10.0
#: How long ``GET /readyz`` may take before the probe counts as failed.
READYZ_TIMEOUT_S = 5.0

#: Appended to ``wrk/post_batches.lua`` (same chunk, so its locals are in scope):
#: round-robin users and a SOAK_JSON line from done().
_ROUND_ROBIN_LUA = """
-- bench/soak.py: users in round-robin order, carried across wrk runs.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } soak_timespec;
int clock_gettime(int clk_id, soak_timespec *tp);
]]
local soak_ts = ffi.new("soak_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, soak_ts)  -- CLOCK_MONOTONIC
  return tonumber(soak_ts.tv_sec) * 1000 + tonumber(soak_ts.tv_nsec) / 1e6
end

sent, late, missed = 0, 0, 0
local next_user, user_step
local interval_ms, late_ms, max_backlog_ms, next_slot

local base_init = init
function init(args)
  base_init(args)
  -- args 6..10: first user (0-based), wrk threads, ms between arrivals per
  -- thread (0: unpaced), late threshold ms, max backlog ms
  local threads_n = tonumber(args[7])
  next_user = (tonumber(args[6]) + thread_id - 1) % users
  user_step = threads_n
  interval_ms = tonumber(args[8])
  late_ms = tonumber(args[9])
  max_backlog_ms = tonumber(args[10])
  next_slot = now_ms()
end

local base_request = request
function request()
  local random = math.random
  -- The base request() picks its user with its first math.random(users) call.
  math.random = function(m, n)
    math.random = random
    if m ~= users or n ~= nil then
      error("post_batches.lua changed: request() no longer picks its user first")
    end
    local user = next_user + 1
    next_user = (next_user + user_step) % users
    return user
  end
  local req = base_request()
  math.random = random
  sent = sent + 1
  return req
end

local base_done = done
function done(summary, latency, requests)
  base_done(summary, latency, requests)
  local s, l, m = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + (t:get("sent") or 0)
    l = l + (t:get("late") or 0)
    m = m + (t:get("missed") or 0)
  end
  io.write(string.format('SOAK_JSON {"sent":%d,"late":%d,"missed":%d}\\n', s, l, m))
end
"""

#: Appended for the paced soak runs only: wrk paces a script that defines delay().
_OPEN_LOOP_LUA = """
-- bench/soak.py: an open-loop Poisson schedule per thread; each call claims
-- the next arrival and waits until it.
function delay()
  local now = now_ms()
  local oldest = now - max_backlog_ms
  if next_slot < oldest then
    missed = missed + math.floor((oldest - next_slot) / interval_ms)
    next_slot = oldest
  end
  next_slot = next_slot - math.log(1 - math.random()) * interval_ms
  local wait = next_slot - now
  if wait < -late_ms then
    late = late + 1
  end
  if wait < 0 then
    return 0
  end
  return wait
end
"""

_LOG_LEVEL = re.compile(r"\b(WARNING|ERROR|CRITICAL)\s+([\w.]+)")


@dataclass
class Chunk:
    """One wrk run: what the client saw, plus the schedule's counters."""

    load: LoadResult
    sent: int
    late: int
    missed: int

    @property
    def socket_errors(self) -> int:
        """Connect, read, write and timeout errors together."""
        return sum(self.load.socket_errors.values())


@dataclass
class Sample:
    """The server and the load over one ``SAMPLE_S`` interval of the soak."""

    t_s: float
    chunk: Chunk
    rss_mib: float | None
    cpu_pct: float | None
    cpu_ms_per_req: float | None
    #: The event loop's (main thread's) share of cpu_ms_per_req; the rest is
    #: worker threads (the SQLite writer, mostly).
    loop_ms_per_req: float | None
    host_busy_pct: float | None
    live_users: int | None
    readyz_ms: float | None
    readyz_error: str | None
    fds: int | None
    threads: int | None


@dataclass
class _Schedule:
    """Where the round-robin over users stands, and batch-id nonces."""

    users: int
    next_user: int = 0
    sent: int = 0
    nonce: int = field(default_factory=lambda: time.time_ns() // 1000 % 1_000_000_007)


def soak_seconds(opts: Options) -> float:
    """Length of the soak: 40 x ``--duration``, or a minute with ``--quick``."""
    if (opts.duration_s, opts.warmup_s) == QUICK_PHASES_S:
        return QUICK_SOAK_S
    return SOAK_PER_DURATION * opts.duration_s


def _script(tmp: Path, paced: bool) -> Path:
    path = tmp / ("soak_paced.lua" if paced else "soak_saturate.lua")
    path.write_text(LUA_SCRIPT.read_text() + _ROUND_ROBIN_LUA + (_OPEN_LOOP_LUA if paced else ""))
    return path


def _run_wrk(
    server: Server,
    script: Path,
    api_key: str,
    schedule: _Schedule,
    opts: Options,
    seconds: int,
    rate_per_s: float,
    connections: int,
) -> Chunk:
    """One wrk run of ``seconds``; the round-robin continues where the last stopped."""
    from tippen_rt.http import TRACK_PATH

    schedule.nonce += 1  # batch ids stay unique across runs
    interval_ms = 1000 * opts.threads / rate_per_s if rate_per_s > 0 else 0.0
    cmd = [
        "wrk",
        f"-t{opts.threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        server.url + TRACK_PATH,
        "--",
        api_key,
        ORIGIN,
        str(schedule.users),
        str(opts.events),
        str(schedule.nonce),
        str(schedule.next_user),
        str(opts.threads),
        f"{interval_ms:.4f}",
        str(LATE_MS),
        str(MAX_BACKLOG_MS),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    lines = {
        key: line.removeprefix(key + " ")
        for line in proc.stdout.splitlines()
        for key in ("BENCH_JSON", "SOAK_JSON")
        if line.startswith(key + " ")
    }
    if proc.returncode != 0 or len(lines) != 2:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    doc, extra = orjson.loads(lines["BENCH_JSON"]), orjson.loads(lines["SOAK_JSON"])
    load = LoadResult(
        generator="wrk",
        duration_s=doc["duration_us"] / 1e6,
        requests=doc["requests"],
        statuses={int(k): v for k, v in doc["statuses"].items()},
        socket_errors={k: v for k, v in doc["errors"].items() if k != "status"},
        latency_ms={k: v / 1000 for k, v in doc["latency_us"].items()},
    )
    schedule.next_user = (schedule.next_user + extra["sent"]) % schedule.users
    schedule.sent += extra["sent"]
    return Chunk(load, extra["sent"], extra["late"], extra["missed"])


def _readyz(server: Server) -> tuple[int | None, float | None, str | None]:
    """(live users, answer time ms, error) from ``GET /readyz``."""
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(server.url + "/readyz", timeout=READYZ_TIMEOUT_S) as resp:
            body = orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return None, None, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return None, None, type(exc).__name__
    ms = 1000 * (time.perf_counter() - t0)
    live = body.get("checks", {}).get("live_users")
    return (int(live) if live is not None else None), ms, None


def _proc_status(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _fds(pid: int) -> int | None:
    try:
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None


def _host_cpu() -> tuple[int, int] | None:
    """(total, idle) jiffies of all CPUs from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(values), values[3] + (values[4] if len(values) > 4 else 0)


def _busy_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[0] == before[0]:
        return None
    total = after[0] - before[0]
    return 100 * (total - (after[1] - before[1])) / total


def _threads_ms_per_req(s: Sample) -> float | None:
    if s.cpu_ms_per_req is None or s.loop_ms_per_req is None:
        return None
    return s.cpu_ms_per_req - s.loop_ms_per_req


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else None


def _slope_per_h(ts: list[float], ys: list[float | None]) -> float | None:
    """Least-squares slope of ``ys`` over ``ts`` (seconds), per hour."""
    pts = [(t, y) for t, y in zip(ts, ys, strict=True) if y is not None]
    if len(pts) < 3:
        return None
    mt = sum(t for t, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    var = sum((t - mt) ** 2 for t, _ in pts)
    if not var:
        return None
    return 3600 * sum((t - mt) * (y - my) for t, y in pts) / var


def _drift(first: float | None, last: float | None) -> tuple[float | None, float | None]:
    if first is None or last is None:
        return None, None
    return last - first, (100 * (last - first) / first if first else None)


def _signed(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:+.{2 if abs(value) < 10 else 1}f}{unit}"


def _count_str(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _log_problems(server: Server) -> Counter[str]:
    """Server log lines at WARNING and above, by level and logger."""
    found: Counter[str] = Counter()
    for line in server.output:
        match = _LOG_LEVEL.search(line)
        if match:
            found[f"{match.group(1)} {match.group(2)}"] += 1
        elif line.startswith("Traceback"):
            found["Traceback"] += 1
    return found


def run(opts: Options) -> Report:
    """Run the benchmark and return its report."""
    users = SOAK_USERS if opts.users == Options().users else opts.users
    soak_s = soak_seconds(opts)
    n_samples = max(1, round(soak_s / SAMPLE_S))
    report = Report(
        NAME,
        params={
            "saturate_warmup_s": opts.warmup_s,
            "saturate_s": opts.duration_s,
            "soak_s": n_samples * SAMPLE_S,
            "sample_s": SAMPLE_S,
            "load_fraction": LOAD_FRACTION,
            "connections": opts.connections,
            "soak_connections": SOAK_CONNECTIONS_FACTOR * opts.connections,
            "threads": opts.threads,
            "users": users,
            "events_per_batch": opts.events,
            "server_env": SERVER_ENV,
            "generator": "wrk, open-loop Poisson pacing in Lua (delay() on CLOCK_MONOTONIC)",
        },
    )
    if opts.loadgen == "trio" or not have_wrk():
        raise RuntimeError("the soak needs wrk (apt-get install wrk); it has no trio fallback")

    saturate: list[Chunk] = []
    populate: list[Chunk] = []
    samples: list[Sample] = []
    log_problems: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="tippen-soak-") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "soak.db"
        api_key = _create_tenant(db)
        schedule = _Schedule(users)
        server = start_server(
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
            unpaced = _script(tmp, paced=False)
            if opts.warmup_s > 0:
                seconds = max(1, round(opts.warmup_s))
                saturate.append(
                    _run_wrk(server, unpaced, api_key, schedule, opts, seconds, 0, opts.connections)
                )
            cpu0 = server.cpu_seconds()
            seconds = max(1, round(opts.duration_s))
            measured = _run_wrk(
                server, unpaced, api_key, schedule, opts, seconds, 0, opts.connections
            )
            cpu1 = server.cpu_seconds()
            saturate.append(measured)
            max_rate = measured.load.ok_per_s
            sat_cpu = (
                None
                if cpu0 is None or cpu1 is None
                else 100 * (cpu1 - cpu0) / measured.load.duration_s
            )
            sat_rss = server.rss_mib()
            rate = LOAD_FRACTION * max_rate
            if rate <= 0:
                raise RuntimeError(f"no 2xx answers while saturating: {measured.load.statuses}")
            for _ in range(POPULATE_ROUNDS):
                if schedule.sent >= users:
                    break
                seen = populate[-1].load.ok_per_s if populate else max_rate
                seconds = max(1, math.ceil((users - schedule.sent) / max(seen, 1.0)))
                populate.append(
                    _run_wrk(server, unpaced, api_key, schedule, opts, seconds, 0, opts.connections)
                )
            live_before, _, _ = _readyz(server)

            paced = _script(tmp, paced=True)
            soak_conns = SOAK_CONNECTIONS_FACTOR * opts.connections
            print(
                f"   max {max_rate:,.0f} req/s; soaking at {rate:,.0f} req/s for"
                f" {n_samples * SAMPLE_S} s with {users:,} users ({_count_str(live_before)} live)",
                flush=True,
            )
            t0 = time.monotonic()
            cpu_prev, host_prev, t_prev = server.cpu_seconds(), _host_cpu(), t0
            loop_prev = server.main_thread_cpu_seconds()
            for i in range(n_samples):
                chunk = _run_wrk(server, paced, api_key, schedule, opts, SAMPLE_S, rate, soak_conns)
                now = time.monotonic()
                cpu_now, host_now = server.cpu_seconds(), _host_cpu()
                loop_now = server.main_thread_cpu_seconds()
                live, readyz_ms, readyz_error = _readyz(server)
                sample = Sample(
                    t_s=now - t0,
                    chunk=chunk,
                    rss_mib=server.rss_mib(),
                    cpu_pct=(
                        None
                        if cpu_prev is None or cpu_now is None
                        else 100 * (cpu_now - cpu_prev) / (now - t_prev)
                    ),
                    cpu_ms_per_req=(
                        None
                        if cpu_prev is None or cpu_now is None or not chunk.load.ok
                        else 1000 * (cpu_now - cpu_prev) / chunk.load.ok
                    ),
                    loop_ms_per_req=(
                        None
                        if loop_prev is None or loop_now is None or not chunk.load.ok
                        else 1000 * (loop_now - loop_prev) / chunk.load.ok
                    ),
                    host_busy_pct=_busy_pct(host_prev, host_now),
                    live_users=live,
                    readyz_ms=readyz_ms,
                    readyz_error=readyz_error,
                    fds=_fds(server.pid),
                    threads=_proc_status(server.pid, "Threads"),
                )
                samples.append(sample)
                cpu_prev, host_prev, t_prev = cpu_now, host_now, now
                loop_prev = loop_now
                if (i + 1) % 6 == 0 or i + 1 == n_samples:
                    print(
                        f"   {sample.t_s:4.0f} s  {chunk.load.ok_per_s:6.0f} req/s"
                        f"  p99 {chunk.load.latency_ms['p99']:7.1f} ms"
                        f"  RSS {sample.rss_mib or 0:6.1f} MiB  live {live}",
                        flush=True,
                    )
                if not server.alive():
                    report.notes.append(
                        f"the server died after {sample.t_s:.0f} s:\n"
                        + "".join(server.output[-30:])
                    )
                    break
        finally:
            # kill -9: what is acknowledged must already be on disk.
            server.stop(signal.SIGKILL)
        log_problems = _log_problems(server)
        rows, batches = _count(db)
        report.params["db_filesystem"] = filesystem_of(db)
        report.params["db_mib"] = round(
            sum(p.stat().st_size for p in tmp.glob("soak.db*")) / 2**20, 1
        )

    _fill_report(
        report,
        opts,
        users=users,
        saturate=saturate,
        populate=populate,
        live_before=live_before,
        sat_cpu=sat_cpu,
        sat_rss=sat_rss,
        rate=rate,
        samples=samples,
        rows=rows,
        batches=batches,
        log_problems=log_problems,
    )
    return report


def _fill_report(
    report: Report,
    opts: Options,
    *,
    users: int,
    saturate: list[Chunk],
    populate: list[Chunk],
    live_before: int | None,
    sat_cpu: float | None,
    sat_rss: float | None,
    rate: float,
    samples: list[Sample],
    rows: int,
    batches: int,
    log_problems: Counter[str],
) -> None:
    measured = saturate[-1].load
    n = len(samples)
    # Warm-up: the first tenth (a minute of ten); windows: a tenth each.
    tenth = max(1, n // 10)
    first, last = samples[tenth : 2 * tenth], samples[-tenth:]
    first_span = f"{first[0].t_s - SAMPLE_S:.0f}-{first[-1].t_s:.0f} s" if first else "-"
    last_span = f"{last[0].t_s - SAMPLE_S:.0f}-{last[-1].t_s:.0f} s" if last else "-"

    sat = Table(
        f"max throughput: saturating wrk run, {opts.connections} keep-alive connections,"
        f" {opts.duration_s:g} s after {opts.warmup_s:g} s warm-up, {opts.events}-event batches,"
        f" {users:,} users round-robin",
        [
            "phase",
            "req/s",
            "events/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "non-2xx",
            "sock err",
            "server CPU %",
            "RSS MiB",
        ],
    )
    sat.add(
        "saturate",
        measured.ok_per_s,
        measured.ok_per_s * opts.events,
        measured.latency_ms["p50"],
        measured.latency_ms["p99"],
        measured.latency_ms["max"],
        measured.not_ok,
        saturate[-1].socket_errors,
        sat_cpu,
        sat_rss,
    )
    for c in populate:
        sat.add(
            f"populate ({c.sent:,} batches)",
            c.load.ok_per_s,
            c.load.ok_per_s * opts.events,
            c.load.latency_ms["p50"],
            c.load.latency_ms["p99"],
            c.load.latency_ms["max"],
            c.load.not_ok,
            c.socket_errors,
            None,
            None,
        )
    soak_ok = sum(s.chunk.load.ok for s in samples)
    soak_wall = sum(s.chunk.load.duration_s for s in samples)
    sat.add(
        f"soak offered ({LOAD_FRACTION:.0%}; {_count_str(live_before)} users live)",
        rate,
        rate * opts.events,
        *([None] * 7),
    )
    sat.add(
        "soak achieved",
        soak_ok / soak_wall if soak_wall else None,
        soak_ok * opts.events / soak_wall if soak_wall else None,
        *([None] * 7),
    )

    step = max(1, math.ceil(n / 20))
    shown = [s for i, s in enumerate(samples) if i % step == step - 1 or i == n - 1]
    series = Table(
        f"soak samples: {rate:,.0f} req/s offered (open-loop Poisson), {SAMPLE_S} s each"
        + (f", one in {step} shown" if step > 1 else ""),
        [
            "t s",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "non-2xx",
            "sock err",
            "late",
            "RSS MiB",
            "server CPU %",
            "host busy %",
            "live users",
            "fds",
            "threads",
        ],
    )
    for s in shown:
        lat = s.chunk.load.latency_ms
        series.add(
            f"{s.t_s:.0f}",
            s.chunk.load.ok_per_s,
            lat["p50"],
            lat["p99"],
            lat["max"],
            s.chunk.load.not_ok,
            s.chunk.socket_errors,
            s.chunk.late,
            s.rss_mib,
            s.cpu_pct,
            s.host_busy_pct,
            s.live_users,
            s.fds,
            s.threads,
        )

    def window(sel: list[Sample], get: Any) -> float | None:
        return _mean([get(s) for s in sel])

    def p(key: str) -> Any:
        return lambda s: s.chunk.load.latency_ms[key]

    drift = Table(
        f"drift: the tenth after warm-up ({first_span}) vs the last tenth ({last_span}),"
        " means of the samples",
        ["figure", "first", "last", "drift", "drift %"],
    )
    figs: dict[str, float | None] = {}
    for key, label, get in (
        ("rss", "RSS MiB", lambda s: s.rss_mib),
        ("p99", "p99 ms", p("p99")),
        ("p50", "p50 ms", p("p50")),
        ("cpu", "server CPU %", lambda s: s.cpu_pct),
        ("cpu_per_req", "server CPU ms/req", lambda s: s.cpu_ms_per_req),
        ("loop_per_req", "  event loop thread", lambda s: s.loop_ms_per_req),
        ("threads_per_req", "  worker threads (SQLite)", _threads_ms_per_req),
        ("req", "req/s", lambda s: s.chunk.load.ok_per_s),
        ("live", "live users", lambda s: s.live_users),
        ("fds", "fds", lambda s: s.fds),
        ("host", "host busy %", lambda s: s.host_busy_pct),
    ):
        a, b = window(first, get), window(last, get)
        d, pct = _drift(a, b)
        drift.add(label, a, b, _signed(d), _signed(pct, "%"))
        figs[f"{key}_first"], figs[f"{key}_last"] = a, b
        figs[f"{key}_drift"], figs[f"{key}_drift_pct"] = d, pct
    after_warmup = samples[tenth:]
    slope = _slope_per_h([s.t_s for s in after_warmup], [s.rss_mib for s in after_warmup])
    drift.add("RSS trend MiB/h (least squares after warm-up)", None, None, _signed(slope), "")

    # ---- errors
    def soak_sum(get: Any) -> int:
        return sum(get(s) for s in samples)

    statuses_sat: Counter[int] = Counter()
    statuses_soak: Counter[int] = Counter()
    unpaced = saturate + populate
    for c in unpaced:
        statuses_sat.update(c.load.statuses)
    for s in samples:
        statuses_soak.update(s.chunk.load.statuses)
    errors = Table(
        "errors by kind",
        ["kind", "saturate + populate", f"soak ({LOAD_FRACTION:.0%})", "soak samples with any"],
    )
    error_figs: dict[str, int] = {}

    def err(
        kind: str, key: str, sat_n: int | None, soak_n: int, where: int, *, total: bool = True
    ) -> None:
        errors.add(kind, sat_n, soak_n, where)
        error_figs[key] = soak_n
        if total:
            counted.append(soak_n)

    counted: list[int] = []

    err(
        "non-2xx answers (any status)",
        "soak_non_2xx",
        sum(n for code, n in statuses_sat.items() if not 200 <= code < 300),
        sum(n for code, n in statuses_soak.items() if not 200 <= code < 300),
        sum(1 for s in samples if s.chunk.load.not_ok),
    )
    for code in sorted(set(statuses_sat) | set(statuses_soak)):
        if not 200 <= code < 300:
            err(
                f"  HTTP {code}",
                f"soak_http_{code}",
                statuses_sat[code],
                statuses_soak[code],
                sum(1 for s in samples if s.chunk.load.statuses.get(code)),
                total=False,
            )
    for kind in ("connect", "read", "write", "timeout"):
        err(
            f"socket {kind}",
            f"soak_socket_{kind}",
            sum(c.load.socket_errors.get(kind, 0) for c in unpaced),
            soak_sum(lambda s, k=kind: s.chunk.load.socket_errors.get(k, 0)),
            sum(1 for s in samples if s.chunk.load.socket_errors.get(kind)),
        )
    readyz_failed = [s for s in samples if s.readyz_error]
    err("GET /readyz failed", "soak_readyz_failed", None, len(readyz_failed), len(readyz_failed))
    late = soak_sum(lambda s: s.chunk.late)
    missed = soak_sum(lambda s: s.chunk.missed)
    errors.add(
        f"sent > {LATE_MS} ms behind schedule (no free connection)",
        None,
        late,
        sum(1 for s in samples if s.chunk.late),
    )
    errors.add(
        f"arrivals dropped (> {MAX_BACKLOG_MS} ms backlog)",
        None,
        missed,
        sum(1 for s in samples if s.chunk.missed),
    )
    for what, count in sorted(log_problems.items()):
        errors.add(f"server log: {what}", None, f"{count} (whole run)", None)
    total_errors = sum(counted)

    # ---- durability
    acked = sum(c.load.ok for c in unpaced) + soak_ok
    expected = acked * opts.events
    durable = rows >= expected and batches >= acked
    dur = Table(
        "durability (every phase, server killed with SIGKILL, then SQLite opened)",
        [
            "acked batches",
            "acked events",
            "rows in user_activity_events",
            "batches in ingest_batches",
            "unacked rows (in flight at stops)",
            "durable",
        ],
    )
    dur.add(acked, expected, rows, batches, rows - expected, durable)

    # ---- verdict
    rss_pct, p99_d, p99_pct = figs["rss_drift_pct"], figs["p99_drift"], figs["p99_drift_pct"]
    rss_ok = rss_pct is not None and rss_pct <= RSS_DRIFT_LIMIT_PCT
    p99_limit_ms = max(P99_DRIFT_FLOOR_MS, (figs["p99_first"] or 0.0) * P99_DRIFT_LIMIT_PCT / 100)
    p99_ok = p99_d is not None and p99_d <= p99_limit_ms
    live_min = min((s.live_users for s in after_warmup if s.live_users is not None), default=None)
    drifting = [w for w, ok in (("memory", rss_ok), ("latency", p99_ok)) if not ok]
    verdict = "stable" if not drifting else "drifting (" + ", ".join(drifting) + ")"
    line = (
        f"verdict: {verdict}: RSS {_signed(figs['rss_drift'])} MiB ({_signed(rss_pct, '%')}),"
        f" p99 {_signed(p99_d)} ms ({_signed(p99_pct, '%')}),"
        f" server CPU/req {_signed(figs['cpu_per_req_drift_pct'], '%')},"
        f" {total_errors} errors, {'durable' if durable else 'NOT DURABLE'},"
        f" live users >= {_count_str(live_min)} of {users:,} after warm-up"
    )
    ver = Table(line, ["check", "value", "limit", "ok"])
    ver.add(
        "RSS drift %",
        _signed(rss_pct, "%"),
        f"<= {RSS_DRIFT_LIMIT_PCT:g}%",
        rss_ok,
    )
    ver.add("p99 drift ms", _signed(p99_d), f"<= {p99_limit_ms:.1f}", p99_ok)
    ver.add("errors (non-2xx, socket, /readyz)", total_errors, "0", total_errors == 0)
    ver.add("live users after warm-up (min)", live_min, f"{users:,}", live_min == users)
    ver.add("acknowledged events stored", durable, "yes", durable)
    report.tables += [sat, series, drift, errors, dur, ver]

    if not durable:
        report.notes.append(f"DURABILITY FAILURE: {expected} events acknowledged, {rows} stored")
    if readyz_failed:
        report.notes.append(
            "GET /readyz failed: "
            + ", ".join(f"{s.t_s:.0f} s: {s.readyz_error}" for s in readyz_failed[:5])
        )
    host_drift = figs["host_drift"]
    if host_drift is not None and abs(host_drift) > HOST_SHIFT_PCT:
        busier = "busier" if host_drift > 0 else "less busy"
        report.notes.append(
            f"the whole machine was {abs(host_drift):.0f} points {busier}"
            " in the last window than in the first: other processes moved the latencies;"
            " server CPU ms/req is the steadier figure"
        )
    if soak_wall and soak_ok / soak_wall < 0.95 * rate:
        report.notes.append(
            f"the soak achieved {soak_ok / soak_wall:,.0f} req/s of {rate:,.0f} offered"
        )

    def r(v: float | None, digits: int = 2) -> float | None:
        return None if v is None else round(v, digits)

    report.figures.update(
        max_req_per_s=round(measured.ok_per_s, 1),
        max_p99_ms=round(measured.latency_ms["p99"], 2),
        soak_offered_req_per_s=round(rate, 1),
        soak_req_per_s=r(soak_ok / soak_wall if soak_wall else None, 1),
        rss_first_mib=r(figs["rss_first"]),
        rss_last_mib=r(figs["rss_last"]),
        rss_drift_mib=r(figs["rss_drift"]),
        rss_drift_pct=r(rss_pct),
        rss_trend_mib_per_h=r(slope),
        p99_first_ms=r(figs["p99_first"]),
        p99_last_ms=r(figs["p99_last"]),
        p99_drift_ms=r(p99_d),
        p99_drift_pct=r(p99_pct),
        p50_first_ms=r(figs["p50_first"]),
        p50_last_ms=r(figs["p50_last"]),
        cpu_first_pct=r(figs["cpu_first"], 1),
        cpu_last_pct=r(figs["cpu_last"], 1),
        cpu_first_ms_per_req=r(figs["cpu_per_req_first"], 3),
        cpu_last_ms_per_req=r(figs["cpu_per_req_last"], 3),
        loop_cpu_first_ms_per_req=r(figs["loop_per_req_first"], 3),
        loop_cpu_last_ms_per_req=r(figs["loop_per_req_last"], 3),
        threads_cpu_first_ms_per_req=r(figs["threads_per_req_first"], 3),
        threads_cpu_last_ms_per_req=r(figs["threads_per_req_last"], 3),
        fds_first=r(figs["fds_first"], 1),
        fds_last=r(figs["fds_last"], 1),
        live_users_min=live_min,
        errors_total=total_errors,
        late_sends=late,
        missed_arrivals=missed,
        server_log_warnings=sum(n for k, n in log_problems.items() if k.startswith("WARNING")),
        server_log_errors=sum(n for k, n in log_problems.items() if not k.startswith("WARNING")),
        acked_batches=acked,
        acked_events=expected,
        stored_rows=rows,
        stored_batches=batches,
        durable=durable,
        stable=not drifting,
        verdict=line.removeprefix("verdict: "),
        **error_figs,
    )
    report.figures["series"] = {
        "t_s": [round(s.t_s, 1) for s in samples],
        "req_per_s": [round(s.chunk.load.ok_per_s, 1) for s in samples],
        "p50_ms": [round(s.chunk.load.latency_ms["p50"], 2) for s in samples],
        "p99_ms": [round(s.chunk.load.latency_ms["p99"], 2) for s in samples],
        "max_ms": [round(s.chunk.load.latency_ms["max"], 2) for s in samples],
        "rss_mib": [r(s.rss_mib, 1) for s in samples],
        "server_cpu_pct": [r(s.cpu_pct, 1) for s in samples],
        "server_cpu_ms_per_req": [r(s.cpu_ms_per_req, 3) for s in samples],
        "loop_cpu_ms_per_req": [r(s.loop_ms_per_req, 3) for s in samples],
        "threads_cpu_ms_per_req": [r(_threads_ms_per_req(s), 3) for s in samples],
        "readyz_ms": [r(s.readyz_ms, 1) for s in samples],
        "host_busy_pct": [r(s.host_busy_pct, 1) for s in samples],
        "live_users": [s.live_users for s in samples],
        "fds": [s.fds for s in samples],
        "threads": [s.threads for s in samples],
        "non_2xx": [s.chunk.load.not_ok for s in samples],
        "socket_errors": [s.chunk.socket_errors for s in samples],
        "late": [s.chunk.late for s in samples],
    }
