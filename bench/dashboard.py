"""Issue 5's benchmark: from an event accepted to the change visible on a dashboard.

One real ``tippen-rt serve`` runs as a subprocess on a fresh SQLite file (its
ingest rate limits off, as in ``ingest``: all load comes from one address).
This process, on trio:

1. logs in as the tenant's admin (``POST /login``) and opens the dashboard
   WebSocket (``/ws/admin``, a small wsproto client) like the page does;
2. brings ``--users`` users (default 1,000) live, each with a first batch;
3. keeps them generating load at the tracker's cadence, one batch per user
   every 5 s on average (``users / 5`` batches/s over 16 keep-alive
   connections; clicks, heartbeats, now and then a route change or an error):
   every batch changes a user, so the hub streams coalesced updates for all
   of them to the dashboard socket, which reads and decodes every message;
4. meanwhile a probe posts, every 100 ms on its own connection, a batch that
   moves one of 20 probe users (in turn) to a route never used before
   (``/probe/<n>``), and notes when the answer came (the event was
   *accepted*: committed, handed to the actor) and when the dashboard socket
   showed that user on that route.

Latency = seen on the socket - answer received (clamped at 0: the socket
may win the race against the HTTP answer); "from send" is seen - request
sent.  A probe not seen within 5 s counts as lost.

Target (issue 5): p99 < 250 ms with 1,000 live users generating load.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h11
import orjson
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from ._loadgen import ORIGIN
from ._options import Options
from ._procs import Server, start_server
from ._report import Report, Table

NAME = "dashboard"
DESCRIPTION = "event accepted -> visible on a dashboard WebSocket, with 1,000 live users"

TARGET_P99_MS = 250.0
TRACK_PATH = "/api/track/user-activity"
PROBE_USERS = 20
PROBE_EVERY_S = 0.1
LOST_AFTER_S = 5.0
LOAD_CONNECTIONS = 16
BATCHES_PER_USER_PER_S = 1 / 5


# ---- a tiny keep-alive HTTP/1.1 client ----------------------------------------


class Http:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._stream: trio.SocketStream | None = None
        self._conn = h11.Connection(h11.CLIENT)

    async def request(
        self, method: str, path: str, body: bytes, headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; (status, headers, body)."""
        if self._stream is None or self._conn.our_state is not h11.IDLE:
            if self._stream is not None:
                await self._stream.aclose()
            self._stream = await trio.open_tcp_stream(self.host, self.port)
            self._conn = h11.Connection(h11.CLIENT)
        stream, conn = self._stream, self._conn
        all_headers = [
            ("Host", f"{self.host}:{self.port}"),
            ("Content-Length", str(len(body))),
            *headers,
        ]
        await stream.send_all(
            conn.send(h11.Request(method=method, target=path, headers=all_headers))
        )
        await stream.send_all(conn.send(h11.Data(data=body)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        status, response_headers, chunks = 0, {}, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await stream.aclose()
            self._stream = None
        return status, response_headers, b"".join(chunks)

    async def post_json(self, path: str, doc: Any, headers: list[tuple[str, str]] = []) -> int:  # noqa: B006
        """POST ``doc`` as JSON; the status."""
        status, _, _ = await self.request(
            "POST", path, orjson.dumps(doc), [("Content-Type", "application/json"), *headers]
        )
        return status

    async def post_batch(self, doc: Any) -> int:
        """POST one tracker batch as a page at ORIGIN does (tenants require an Origin)."""
        return await self.post_json(TRACK_PATH, doc, [("Origin", ORIGIN)])

    async def aclose(self) -> None:
        """Close the connection."""
        if self._stream is not None:
            await self._stream.aclose()


# ---- the dashboard socket --------------------------------------------------------


@dataclass
class Watch:
    """What the dashboard socket saw."""

    #: probe route -> perf_counter when a "user" message showed it
    seen: dict[str, float] = field(default_factory=dict)
    messages: int = 0
    snapshots: int = 0
    bytes: int = 0
    #: set once the route in ``last`` has been seen
    last: str = ""
    last_seen: trio.Event = field(default_factory=trio.Event)


async def watch_dashboard(
    host: str, port: int, cookie: str, watch: Watch, ready: trio.Event
) -> None:
    """Read the dashboard socket until cancelled, as the page does."""
    stream = await trio.open_tcp_stream(host, port)
    ws = WSConnection(ConnectionType.CLIENT)
    origin = f"http://{host}:{port}"
    await stream.send_all(
        ws.send(
            Request(
                host=f"{host}:{port}",
                target="/ws/admin",
                extra_headers=[(b"origin", origin.encode()), (b"cookie", cookie.encode())],
            )
        )
    )
    parts: list[str] = []
    try:
        while True:
            data = await stream.receive_some(1 << 16)
            if not data:
                raise RuntimeError(f"the dashboard socket closed after {watch.messages} messages")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, RejectConnection):
                    raise RuntimeError(f"the dashboard socket was refused: {event.status_code}")
                if isinstance(event, AcceptConnection):
                    continue
                if isinstance(event, Ping):
                    await stream.send_all(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    raise RuntimeError(f"the dashboard socket closed: {event.code}")
                elif isinstance(event, TextMessage):
                    parts.append(event.data)
                    if not event.message_finished:
                        continue
                    text = "".join(parts)
                    parts.clear()
                    now = time.perf_counter()
                    watch.messages += 1
                    watch.bytes += len(text)
                    message = orjson.loads(text)
                    kind = message.get("type")
                    if kind == "snapshot":
                        watch.snapshots += 1
                        ready.set()
                        users = message["users"]
                    elif kind == "user":
                        users = [message["user"]]
                    else:
                        continue
                    for user in users:
                        route = user.get("currentRoute") or ""
                        if route.startswith("/probe/") and route not in watch.seen:
                            watch.seen[route] = now
                            if route == watch.last:
                                watch.last_seen.set()
    finally:
        await stream.aclose()


# ---- load and probes ---------------------------------------------------------------


def _batch(api_key: str, user: int, rng: random.Random, route: str | None = None) -> dict[str, Any]:
    now = int(time.time() * 1000)
    events: list[dict[str, Any]] = []
    if route is not None:
        events.append({"type": "route", "route": route, "timestamp": now})
    else:
        roll = rng.random()
        if roll < 0.2:
            events.append(
                {"type": "route", "route": f"/page/{rng.randint(1, 40)}", "timestamp": now}
            )
        for _ in range(rng.randint(1, 4)):
            events.append(
                {"type": "click", "element": "button.primary", "text": "Save", "timestamp": now}
            )
        events.append({"type": "heartbeat", "timestamp": now})
        if roll > 0.98:
            events.append(
                {"type": "error", "message": "TypeError: x is undefined", "timestamp": now}
            )
    return {
        "apiKey": api_key,
        "userId": f"user-{user}",
        "userEmail": f"user-{user}@example.com",
        "subscriptionTier": ("free_trial", "paid", "enterprise")[user % 3],
        "sentAt": now,
        "events": events,
    }


@dataclass
class LoadStats:
    sent: int = 0
    ok: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    behind: int = 0


async def load(
    host: str, port: int, api_key: str, users: int, rate: float, stats: LoadStats
) -> None:
    """Post ``rate`` batches/s, spread over the users, until cancelled (open loop)."""
    rng = random.Random(5)
    send, recv = trio.open_memory_channel[dict[str, Any]](LOAD_CONNECTIONS * 4)

    async def worker() -> None:
        http = Http(host, port)
        try:
            async for doc in recv:
                status = await http.post_batch(doc)
                stats.sent += 1
                stats.statuses[status] = stats.statuses.get(status, 0) + 1
                if status == 200:
                    stats.ok += 1
        finally:
            await http.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(LOAD_CONNECTIONS):
            nursery.start_soon(worker)
        interval = 1.0 / rate
        next_at = trio.current_time()
        while True:
            next_at += interval
            await trio.sleep_until(next_at)
            try:
                send.send_nowait(_batch(api_key, rng.randrange(users), rng))
            except trio.WouldBlock:
                stats.behind += 1  # the server is slower than the offered load


@dataclass
class Probe:
    route: str
    sent: float
    acked: float | None = None
    status: int = 0


async def probes(host: str, port: int, api_key: str, out: list[Probe], seconds: float) -> None:
    """One probe every PROBE_EVERY_S for ``seconds`` on its own connection."""
    http = Http(host, port)
    rng = random.Random(9)
    try:
        next_at = trio.current_time()
        n = 0
        end = trio.current_time() + seconds
        while trio.current_time() < end:
            route = f"/probe/{n}"
            doc = _batch(api_key, 10_000_000 + n % PROBE_USERS, rng, route=route)
            probe = Probe(route=route, sent=time.perf_counter())
            out.append(probe)
            probe.status = await http.post_batch(doc)
            probe.acked = time.perf_counter()
            n += 1
            next_at += PROBE_EVERY_S
            await trio.sleep_until(max(next_at, trio.current_time()))
    finally:
        await http.aclose()


def _pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


# ---- the run ---------------------------------------------------------------------------


def _tenant(db: Path) -> dict[str, Any]:
    import subprocess

    proc = subprocess.run(
        [
            *(sys.executable, "-m", "tippen_rt", "--db", str(db)),
            *("tenant", "add", "bench", "--origin", ORIGIN, "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    created: dict[str, Any] = orjson.loads(proc.stdout)
    return created


async def _measure(server: Server, created: dict[str, Any], opts: Options, report: Report) -> None:
    parts = urlsplit(server.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    api_key = created["api_key"]
    http = Http(host, port)
    status, headers, body = await http.request(
        "POST",
        "/login",
        orjson.dumps({"token": created["admin_token"], "name": "bench"}),
        [("Content-Type", "application/json")],
    )
    await http.aclose()
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body[:200]!r}")
    cookie = headers["set-cookie"].split(";", 1)[0]

    users = opts.users
    rate = max(1.0, users * BATCHES_PER_USER_PER_S)
    watch = Watch()
    load_stats = LoadStats()
    sent_probes: list[Probe] = []
    ready = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_dashboard, host, port, cookie, watch, ready)
        with trio.fail_after(10):
            await ready.wait()
        # Everyone live first: one batch per user, as fast as the server takes them.
        rng = random.Random(1)
        t0 = time.perf_counter()
        async with trio.open_nursery() as ramp:
            queue = iter(range(users))

            async def first_batches() -> None:
                conn = Http(host, port)
                try:
                    for user in queue:
                        await conn.post_batch(_batch(api_key, user, rng))
                finally:
                    await conn.aclose()

            for _ in range(LOAD_CONNECTIONS):
                ramp.start_soon(first_batches)
        report.figures["ramp_s"] = round(time.perf_counter() - t0, 2)
        nursery.start_soon(load, host, port, api_key, users, rate, load_stats)
        await trio.sleep(opts.warmup_s)
        load_before = load_stats.ok
        messages_before = watch.messages
        t_measure = time.perf_counter()
        await probes(host, port, api_key, sent_probes, opts.duration_s)
        measured_s = time.perf_counter() - t_measure
        load_ok = load_stats.ok - load_before
        messages = watch.messages - messages_before
        # Give the last probe its chance to show up.
        if sent_probes:
            watch.last = sent_probes[-1].route
            if watch.last in watch.seen:
                watch.last_seen.set()
            with trio.move_on_after(LOST_AFTER_S):
                await watch.last_seen.wait()
        nursery.cancel_scope.cancel()

    accepted = [p for p in sent_probes if p.status == 200 and p.acked is not None]
    from_ack, from_send, lost = [], [], 0
    for p in accepted:
        seen = watch.seen.get(p.route)
        if seen is None or seen - p.sent > LOST_AFTER_S:
            lost += 1
            continue
        assert p.acked is not None
        from_ack.append(max(0.0, seen - p.acked) * 1000)
        from_send.append((seen - p.sent) * 1000)
    probe_rtt = [((p.acked or p.sent) - p.sent) * 1000 for p in accepted]

    figures = report.figures
    figures.update(
        {
            "live_users": users,
            "load_batches_per_s": round(load_ok / measured_s, 1),
            "load_offered_per_s": rate,
            "load_behind": load_stats.behind,
            "load_statuses": {str(k): v for k, v in sorted(load_stats.statuses.items())},
            "ws_messages_per_s": round(messages / measured_s, 1),
            "ws_snapshots": watch.snapshots,
            "probes": len(sent_probes),
            "probes_accepted": len(accepted),
            "probes_lost": lost,
            "visible_p50_ms": round(_pct(from_ack, 50), 1),
            "visible_p90_ms": round(_pct(from_ack, 90), 1),
            "visible_p99_ms": round(_pct(from_ack, 99), 1),
            "visible_max_ms": round(max(from_ack, default=math.nan), 1),
            "from_send_p99_ms": round(_pct(from_send, 99), 1),
            "ingest_answer_p99_ms": round(_pct(probe_rtt, 99), 1),
            "met_target": _pct(from_ack, 99) < TARGET_P99_MS and lost == 0,
        }
    )
    table = Table(
        f"event accepted -> visible on the dashboard socket ({users} live users, "
        f"{load_ok / measured_s:.0f} batches/s of load)",
        ["measure", "p50 ms", "p90 ms", "p99 ms", "max ms", "n"],
    )
    table.add(
        "answer -> on socket",
        _pct(from_ack, 50),
        _pct(from_ack, 90),
        _pct(from_ack, 99),
        max(from_ack, default=math.nan),
        len(from_ack),
    )
    table.add(
        "sent -> on socket",
        _pct(from_send, 50),
        _pct(from_send, 90),
        _pct(from_send, 99),
        max(from_send, default=math.nan),
        len(from_send),
    )
    table.add(
        "ingest answer",
        _pct(probe_rtt, 50),
        _pct(probe_rtt, 90),
        _pct(probe_rtt, 99),
        max(probe_rtt, default=math.nan),
        len(probe_rtt),
    )
    report.tables.append(table)
    other = Table("around it", ["figure", "value"])
    other.add("dashboard messages/s read", messages / measured_s)
    other.add("resync snapshots (first one included)", watch.snapshots)
    other.add("load batches/s answered 200", load_ok / measured_s)
    other.add("load batches not sent (server behind)", load_stats.behind)
    other.add("probes lost (not seen in 5 s)", lost)
    other.add(f"target p99 < {TARGET_P99_MS:.0f} ms", "met" if figures["met_target"] else "MISSED")
    report.tables.append(other)
    if statistics.fmean(probe_rtt or [0]) > 100:
        report.notes.append("ingest answers are slow on this machine: the server is saturated")


def run(opts: Options) -> Report:
    """Run the benchmark and return its report."""
    report = Report(
        NAME,
        params={
            "users": opts.users,
            "duration_s": opts.duration_s,
            "warmup_s": opts.warmup_s,
            "probe_every_s": PROBE_EVERY_S,
            "load_connections": LOAD_CONNECTIONS,
            "batches_per_user_per_s": BATCHES_PER_USER_PER_S,
        },
    )
    with tempfile.TemporaryDirectory(prefix="tippen-bench-") as tmp:
        db = Path(tmp) / "bench.db"
        created = _tenant(db)
        server = start_server(
            "tippen-rt",
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
            env={
                "TIPPEN_INGEST_RATE_PER_ADDRESS": "0",
                "TIPPEN_INGEST_RATE_PER_KEY": "0",
            },
        )
        try:
            cpu_before = server.cpu_seconds()
            t0 = time.perf_counter()
            trio.run(_measure, server, created, opts, report)
            cpu_after = server.cpu_seconds()
            if cpu_before is not None and cpu_after is not None:
                report.figures["server_cpu_pct"] = round(
                    100 * (cpu_after - cpu_before) / (time.perf_counter() - t0), 1
                )
            rss = server.rss_mib()
            if rss is not None:
                report.figures["server_rss_mib"] = round(rss, 1)
        except BaseException:
            sys.stderr.write(server.log()[-4000:])
            raise
        finally:
            server.stop()
    return report


if __name__ == "__main__":
    result = run(Options(duration_s=float(sys.argv[1]) if len(sys.argv) > 1 else 15.0))
    print(result.render())
