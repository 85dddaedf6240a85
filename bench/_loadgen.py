"""Load generators: wrk with a Lua script, or a trio client when wrk is missing.

Both post the same kind of batches (see ``wrk/post_batches.lua``) over N
keep-alive connections for a fixed time and report a :class:`LoadResult`.
wrk is the real one: written in C, it costs the machine little.  The trio
fallback is Python sharing the CPUs with the server it measures, so its
figures are lower bounds; the report says which generator ran.
"""

from __future__ import annotations

import math
import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import h11
import orjson
import trio

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk" / "post_batches.lua"
ORIGIN = "https://app.example.com"


@dataclass
class LoadResult:
    """What one load run saw from the client side."""

    generator: str
    duration_s: float
    requests: int
    statuses: dict[int, int] = field(default_factory=dict)
    socket_errors: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        """Responses with a 2xx status: the batches the server acknowledged."""
        return sum(n for code, n in self.statuses.items() if 200 <= code < 300)

    @property
    def not_ok(self) -> int:
        """Responses with any other status."""
        return sum(n for code, n in self.statuses.items() if not 200 <= code < 300)

    @property
    def ok_per_s(self) -> float:
        """Acknowledged requests per second."""
        return self.ok / self.duration_s if self.duration_s else 0.0


def have_wrk() -> bool:
    """True if a ``wrk`` binary is on PATH."""
    return shutil.which("wrk") is not None


# ---- wrk --------------------------------------------------------------------


def run_wrk(
    url: str,
    *,
    api_key: str,
    duration_s: float,
    connections: int,
    threads: int,
    users: int,
    events: int,
    nonce: int,
    rate_per_s: float = 0.0,
) -> LoadResult:
    """Run wrk against ``url`` with the batch script and parse its summary line.

    With ``rate_per_s`` each connection pauses a random (exponential) time of mean
    ``connections / rate_per_s`` seconds between a response and its next request
    (wrk's ``delay()`` hook), like independent users: the offered load is at most
    ``rate_per_s`` and the latency is measured at that load, not at saturation.
    (Not corrected for coordinated omission, like wrk itself.)
    """
    script = LUA_SCRIPT
    delay_ms = 1000 * connections / rate_per_s if rate_per_s > 0 else 0.0
    with tempfile.TemporaryDirectory(prefix="tippen-wrk-") as tmp:
        if delay_ms:
            script = Path(tmp) / "post_batches_paced.lua"
            script.write_text(LUA_SCRIPT.read_text() + _PACED_LUA)
        return _wrk(
            url, script, api_key, duration_s, connections, threads, users, events, nonce, delay_ms
        )


#: Appended to the script for a paced run: wrk calls delay() before every request.
_PACED_LUA = """
local _init = init
function init(args)
  _init(args)
  delay_ms = tonumber(args[6])
end

-- Exponential think times: each connection is a Poisson source, so the
-- connections do not march in step after a stall the way fixed pauses make them.
function delay()
  return -math.log(1 - math.random()) * delay_ms
end
"""


def _wrk(
    url: str,
    script: Path,
    api_key: str,
    duration_s: float,
    connections: int,
    threads: int,
    users: int,
    events: int,
    nonce: int,
    delay_ms: float,
) -> LoadResult:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        api_key,
        ORIGIN,
        str(users),
        str(events),
        str(nonce),
        f"{delay_ms:.0f}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    doc = orjson.loads(line.removeprefix("BENCH_JSON "))
    lat = doc["latency_us"]
    return LoadResult(
        generator="wrk",
        duration_s=doc["duration_us"] / 1e6,
        requests=doc["requests"],
        statuses={int(k): v for k, v in doc["statuses"].items()},
        socket_errors={k: v for k, v in doc["errors"].items() if k != "status"},
        latency_ms={k: v / 1000 for k, v in lat.items()},
    )


# ---- trio fallback ----------------------------------------------------------

_ROUTES = (
    "/dashboard",
    "/projects",
    "/projects/42",
    "/projects/42/settings",
    "/billing",
    "/billing/invoices",
    "/team",
    "/team/invite",
    "/reports/weekly",
    "/integrations/slack",
)
_ELEMENTS = (
    ("button#save", "Save"),
    ("a.nav-projects", "Projects"),
    ("button.invite", "Invite"),
    ("button#export", "Export CSV"),
    ("a.upgrade", "Upgrade plan"),
    ("input#search", ""),
)
_TIERS = ("free_trial",) * 6 + ("paid",) * 3 + ("enterprise",)


def _event(route: str, ts: int) -> dict[str, object]:
    """One event, with the same mix of types as ``wrk/post_batches.lua``."""
    r = random.randint(1, 100)
    if r <= 40:
        element, text = random.choice(_ELEMENTS)
        return {"type": "click", "element": element, "text": text, "route": route, "timestamp": ts}
    if r <= 55:
        return {"type": "route", "route": route, "timestamp": ts}
    if r <= 70:
        return {"type": "heartbeat", "route": route, "timestamp": ts}
    if r <= 80:
        duration = random.randint(500, 300_000)
        return {"type": "page_time", "duration": duration, "route": route, "timestamp": ts}
    if r <= 88:
        data = {"format": "csv", "rows": random.randint(1, 5000), "filters": ["active", "q3"]}
        return {
            "type": "custom",
            "name": "report_exported",
            "data": data,
            "route": route,
            "timestamp": ts,
        }
    if r <= 93:
        return {"type": "form_submit", "formId": "settings-form", "route": route, "timestamp": ts}
    if r <= 98:
        state = random.choice(("visible", "hidden"))
        return {"type": "visibility", "state": state, "route": route, "timestamp": ts}
    return {
        "type": "error",
        "message": "TypeError: Cannot read properties of undefined (reading 'id')",
        "source": "https://app.example.com/static/app.3f9a1c.js",
        "stack": "TypeError: Cannot read properties of undefined\n"
        "    at renderRow (app.3f9a1c.js:1:4242)\n    at Array.map (<anonymous>)",
        "route": route,
        "timestamp": ts,
    }


#: The realistic mix of batch sizes (``events=0``; issue 22): (percent, fewest,
#: most events), as the tracker sends them: a heartbeat alone, a few clicks, a
#: busy stretch, a full batch.  The Lua script's batch_size() is the same.
MIX = ((35, 1, 1), (40, 2, 5), (15, 6, 19), (10, 20, 50))
MIX_MEAN_EVENTS = sum(p * (lo + hi) / 2 for p, lo, hi in MIX) / 100


def mix_size() -> int:
    """A batch size drawn from :data:`MIX`."""
    r = random.randint(1, 100)
    for percent, lo, hi in MIX:
        if r <= percent:
            return random.randint(lo, hi)
        r -= percent
    raise AssertionError("MIX adds up to 100")


def batch_body(api_key: str, user: int, batch_id: str, events: int, now_ms: int) -> bytes:
    """One batch like the Lua script's: a user's ``events`` events (0: a size from
    the realistic :data:`MIX`; a lone event then is a heartbeat) and a unique id."""
    if events == 0:
        events = mix_size()
        if events == 1:
            evs = [{"type": "heartbeat", "input": random.randint(0, 20), "focused": True}]
            evs[0]["timestamp"] = now_ms
            return _body(api_key, user, batch_id, now_ms, evs)
    evs = [_event(random.choice(_ROUTES), now_ms - (events - i) * 200) for i in range(events)]
    return _body(api_key, user, batch_id, now_ms, evs)


def _body(
    api_key: str, user: int, batch_id: str, now_ms: int, evs: list[dict[str, object]]
) -> bytes:
    return orjson.dumps(
        {
            "apiKey": api_key,
            "userId": f"user-{user}",
            "userEmail": f"user-{user}@example.com",
            "subscriptionTier": _TIERS[user % 10],
            "sentAt": now_ms,
            "batchId": batch_id,
            "events": evs,
        }
    )


def _percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return math.nan
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


async def _trio_load(
    url: str,
    api_key: str,
    duration_s: float,
    connections: int,
    users: int,
    events: int,
    nonce: int,
    rate_per_s: float,
) -> LoadResult:
    parts = urlsplit(url)
    pause_s = connections / rate_per_s if rate_per_s > 0 else 0.0
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    deadline = trio.current_time() + duration_s

    async def client(n: int) -> None:
        counter = 0
        while trio.current_time() < deadline:
            try:
                stream = await trio.open_tcp_stream(host, port)
            except OSError:
                errors["connect"] += 1
                await trio.sleep(0.05)
                continue
            conn = h11.Connection(h11.CLIENT)
            try:
                while trio.current_time() < deadline:
                    counter += 1
                    body = batch_body(
                        api_key,
                        random.randint(1, users),
                        f"t-{nonce}-{n}-{counter}",
                        events,
                        time.time_ns() // 1_000_000,
                    )
                    headers = [
                        ("Host", f"{host}:{port}"),
                        ("Content-Type", "text/plain;charset=UTF-8"),
                        ("Origin", ORIGIN),
                        ("Content-Length", str(len(body))),
                    ]
                    start = time.perf_counter()
                    await stream.send_all(
                        conn.send(h11.Request(method="POST", target=path, headers=headers))
                        + conn.send(h11.Data(data=body))
                        + conn.send(h11.EndOfMessage())
                    )
                    status = 0
                    while True:
                        event = conn.next_event()
                        if event is h11.NEED_DATA:
                            data = await stream.receive_some(65536)
                            if not data:
                                raise OSError("server closed the connection")
                            conn.receive_data(data)
                        elif isinstance(event, h11.Response):
                            status = event.status_code
                        elif isinstance(event, h11.EndOfMessage):
                            break
                    latencies.append(time.perf_counter() - start)
                    statuses[status] = statuses.get(status, 0) + 1
                    conn.start_next_cycle()
                    if pause_s:
                        await trio.sleep(random.expovariate(1 / pause_s))
            except (OSError, trio.BrokenResourceError, h11.ProtocolError):
                errors["read"] += 1
            finally:
                await stream.aclose()

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for n in range(connections):
            nursery.start_soon(client, n)
    elapsed = time.perf_counter() - t0
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return LoadResult(
        generator="trio (Python fallback)",
        duration_s=elapsed,
        requests=len(latencies),
        statuses=statuses,
        socket_errors=errors,
        latency_ms={
            "mean": sum(ms) / len(ms) if ms else math.nan,
            "max": ms[-1] if ms else math.nan,
            "p50": _percentile(ms, 50),
            "p90": _percentile(ms, 90),
            "p99": _percentile(ms, 99),
            "p999": _percentile(ms, 99.9),
        },
    )


def run_trio(
    url: str,
    *,
    api_key: str,
    duration_s: float,
    connections: int,
    users: int,
    events: int,
    nonce: int,
    rate_per_s: float = 0.0,
) -> LoadResult:
    """The fallback generator: ``connections`` trio tasks with h11 keep-alive clients."""
    return trio.run(
        _trio_load, url, api_key, duration_s, connections, users, events, nonce, rate_per_s
    )
