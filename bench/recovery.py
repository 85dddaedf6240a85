"""Issue 4's benchmark: 100,000 live actors back after a restart, and what a snapshot round costs.

Everything talks to a private ``redis-server`` (free port, no persistence) and
to SQLite files in a temporary directory.  Each measurement runs in a fresh
``python -m bench.recovery <step>`` subprocess, so imports, memory and the heap
the GC walks are those of a service that has just started (each child prints
its result and leaves with ``os._exit``: tearing 100k actors down measures
nothing).  The parent only orchestrates and prints.

1. ``prepare`` (not measured).  N users (4 tenants; 50 % free_trial, 35 %
   paid, 15 % enterprise), each with two batches as the tracker sends them
   (``parse_batch`` of a JSON body with ``batchId`` and ``sentAt``): a route, a
   click and a heartbeat; 5 s to 5 min later a click, an error for 10 %, and a
   heartbeat (``visibility: hidden`` for 20 % of free-trial users).  About 5.1
   events per user, arrived over the last 20 min, inserted in arrival order by
   200 writer tasks through ``EventStore.write(insert_batch)`` (group commit,
   as ingest does).  Each user's live state is what its actor would hold
   (``new_state``/``apply_batch``/``evaluate`` at arrival).  Two sets of
   snapshots (``encode_state``), written through the stores' own ``save``:

   * ``graceful``: every state snapshotted at one instant, after the last event
     (what the shutdown round leaves);
   * ``crash``: each state snapshotted 0-2 s after the user's last change (what
     a running snapshotter leaves at a ``kill -9``: idle users' snapshots are
     old, so recovery must read every event since the oldest one).

   Redis gets both (two hashes); SQLite gets each in its own copy of the file.
2. ``recover`` (subprocesses: Redis graceful/crash three times each, SQLite
   graceful/crash, replay with no snapshots; each on a fresh copy of the
   prepared SQLite file, so each is the first start after the snapshots; the
   figures are the median run).  With a baseline (``--baseline REV``, default
   as for ``presence``) every recovery runs with that revision's service too,
   alternating with this tree's, on the same prepared data: "before" and
   "after" in the same run (``prepare`` then runs with the baseline, whose
   schema the newer service migrates at start).  As ``app.serve`` does: open the EventStore, load
   tenants, start a Feed and a Registry, create the Snapshotter (a watcher),
   then time ``recover()``.  "ready" = ``recover()`` returned and every restored
   actor has run its first rule round (``wait_all_tasks_blocked``).  Timing
   wrappers (a subclassed EventStore and Registry, a proxy snapshot store)
   split it into load, decode, event read, replay and spawn.  Peak RSS is the
   child's ``ru_maxrss``; "process" is from ``Popen`` to ready, imports included.
3. ``rounds`` (one subprocess).  N actors spawned through ``Registry.deliver``
   with fresh batches; a Redis and a SQLite :class:`Snapshotter` watch them
   (their ``run`` loops are not started: ``save_round`` is called directly).
   First a full round to each (all N dirty: the shutdown / after-outage cost),
   then rounds with 10 % dirty (a click + heartbeat batch to 10 % of users, as
   ingest delivers it).  Before each round ``TIMERS`` fresh users of a tenant
   with ``stuck_on_page_s = 30`` (in a second Registry in the same loop, so the
   snapshotters see exactly N users) get a first batch placed so that their
   trigger comes due at an even spread over the expected round duration (1.2 x
   a warm-up round).  During the round a probe task sleeps 1 ms in a loop and
   records its oversleep.  Trigger lateness, for timers due inside the round:
   "wake" = ``TriggerFired.at`` (the actor's clock at wake-up) minus the rule's
   deadline (from the state in the message); "seen" = when a Feed trigger
   subscriber gets it minus the deadline.  A control window (no round, same
   timers) gives the baseline of a loop with N actors.  GC pauses come from
   ``gc.callbacks``.

Targets (issue 4): ready from Redis < 5 s (both snapshot sets); a 10 % round
delays no trigger by more than 10 ms (judged on the probe's worst oversleep,
which bounds any deadline's delay, and on the measured wake and seen lateness).
``--quick``: 10,000 users, one 10 % round per backend.  About 3 minutes in full.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import orjson
import trio
import trio.testing

from tippen_rt.actors import (
    Feed,
    Registry,
    Snapshotter,
    TriggerFired,
    TriggerMessage,
    UserState,
    apply_batch,
    encode_state,
    evaluate,
    feed_channels,
    new_state,
    recover,
)
from tippen_rt.clock import Clock
from tippen_rt.events import Batch, parse_batch
from tippen_rt.persist import (
    EventStore,
    RedisSnapshotStore,
    SqliteSnapshotStore,
    create_tenant,
    insert_batch,
    list_tenants,
)
from tippen_rt.tenants import Tenant, TenantSettings

from ._compat import tenant_settings
from ._options import Options
from ._redis import running_redis
from ._report import REPO_DIR, Report, Table, filesystem_of
from ._revs import baseline_rev, describe_rev, export_src

NAME = "recovery"
DESCRIPTION = (
    "100k live actors: ready after restart from Redis / SQLite snapshots / event replay;"
    " snapshot round cost and loop lag at 10 % dirty"
)

TARGET_READY_S = 5.0
TARGET_DELAY_MS = 10.0

TENANTS = 4
TIERS = (("free_trial", 0.50), ("paid", 0.35), ("enterprise", 0.15))
ROUTES = ("/dashboard", "/projects/{n}", "/projects/{n}/settings", "/billing", "/reports/{n}")
#: Writer tasks inserting the prepared batches (the EventStore groups them).
WRITERS = 200
#: Users whose trigger comes due during each measured round.
TIMERS = 300
#: The timer tenant's "stuck on page" threshold; a timer's first event is this far back.
TIMER_STUCK_S = 30.0
#: Time from arming the timers to the start of the round (arming must be over by then).
ARM_LEAD_S = 1.0
#: A full round's timers are spread over this long.
FULL_ROUND_SPAN_S = 1.0
PROBE_SLEEP_S = 0.001
CHILD_TIMEOUT_S = 300.0

RECOVERIES = (
    # (label, snapshot backend or None, which snapshots)
    ("redis, graceful", "redis", "graceful"),
    ("redis, crash", "redis", "crash"),
    ("sqlite, graceful", "sqlite", "graceful"),
    ("sqlite, crash", "sqlite", "crash"),
    ("replay (no snapshots)", None, "graceful"),
)


@dataclass(frozen=True)
class Plan:
    """Sizes of one run."""

    users: int = 100_000
    dirty_fraction: float = 0.10
    rounds: int = 3
    #: The users' events arrived over this many seconds before ``prepare``.
    window_s: float = 20 * 60

    @classmethod
    def for_options(cls, opts: Options) -> Plan:
        """The full plan, or a smoke-sized one under ``--quick``."""
        if opts.duration_s < 5:
            return cls(users=10_000, rounds=1)
        return cls()

    @property
    def dirty(self) -> int:
        """Users changed between two rounds."""
        return round(self.users * self.dirty_fraction)


# ---- small measuring helpers ---------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def rss_mib() -> float:
    """Resident set size of this process now, MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def peak_rss_mib() -> float:
    """The most this process has ever been resident, MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def involuntary_switches() -> int:
    """Times the kernel took a CPU away from this process (all threads): others competing."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def bench_tenant(tid: int, name: str, settings: TenantSettings | None = None) -> Tenant:
    """A tenant object for actors (the rounds step needs no tenant rows)."""
    return Tenant(
        id=tid,
        name=name,
        api_key=f"client_{name}",
        admin_token_hash="-",
        settings=settings or TenantSettings(),
    )


# ---- the users and their events -----------------------------------------------


@dataclass
class User:
    """One prepared user: two batches and the state their actor would hold."""

    tenant_id: int
    first: Batch
    second: Batch
    state: UserState


def _body(uid: str, tier: str, tenant_id: int, sent_ms: int, batch_id: str, events: list) -> bytes:
    return orjson.dumps(
        {
            "apiKey": f"client_bench_{tenant_id}",
            "userId": uid,
            "userEmail": f"{uid}@customer{tenant_id}.example.com",
            "subscriptionTier": tier,
            "sentAt": sent_ms,
            "batchId": batch_id,
            "events": events,
        }
    )


def make_users(plan: Plan, tenants: Sequence[Tenant], now_ms: int, seed: int) -> list[User]:
    """``plan.users`` users whose two batches arrived during the last ``plan.window_s``."""
    rng = random.Random(seed)
    window_ms = int(plan.window_s * 1000)
    users: list[User] = []
    for i in range(plan.users):
        tenant = tenants[i % len(tenants)]
        th = tenant.settings
        uid = f"user-{i:06d}-{rng.getrandbits(32):08x}"
        tier = rng.choices([t for t, _ in TIERS], weights=[w for _, w in TIERS])[0]
        route = rng.choice(ROUTES).format(n=rng.randrange(1, 5000))
        a_ms = now_ms - rng.randrange(60_000, window_ms)
        b_ms = min(a_ms + rng.randrange(5_000, 300_000), now_ms - 2_000)
        first = [
            {"type": "route", "route": route, "timestamp": a_ms - rng.randrange(0, 4000)},
            {"type": "click", "element": "button#save", "text": "Save", "timestamp": a_ms - 500},
            {"type": "heartbeat", "timestamp": a_ms},
        ]
        second: list[dict[str, Any]] = [
            {"type": "click", "element": "a.nav", "text": "Reports", "timestamp": b_ms - 1000}
        ]
        if rng.random() < 0.1:
            second.append(
                {
                    "type": "error",
                    "message": "TypeError: Cannot read properties of undefined (reading 'id')",
                    "source": "https://app.example.com/static/app.js",
                    "timestamp": b_ms - 800,
                }
            )
        if tier == "free_trial" and rng.random() < 0.2:
            second.append({"type": "visibility", "state": "hidden", "timestamp": b_ms})
        else:
            second.append({"type": "heartbeat", "timestamp": b_ms})
        ba = parse_batch(_body(uid, tier, tenant.id, a_ms, f"b-{i}-a", first), a_ms)
        bb = parse_batch(_body(uid, tier, tenant.id, b_ms, f"b-{i}-b", second), b_ms)
        # What the actor holds: each batch applied at its arrival, rules run.
        state = new_state(tenant.id, ba, a_ms / 1000)
        for batch in (ba, bb):
            at = batch.received_at_ms / 1000
            state = evaluate(apply_batch(state, batch, at, th), at, th).state
        users.append(User(tenant.id, ba, bb, state))
    return users


# ---- timing wrappers for recover() ------------------------------------------------


class TimedStore(EventStore):
    """An EventStore that notes when each read began and ended, and its row count."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        self.reads: list[tuple[float, float, int]] = []

    async def read(self, fn: Callable[[Any], Any]) -> Any:  # type: ignore[override]
        t0 = time.perf_counter()
        result = await super().read(fn)
        self.reads.append(
            (t0, time.perf_counter(), len(result) if hasattr(result, "__len__") else 0)
        )
        return result


class TimedRegistry(Registry):
    """A Registry that notes when the first and last ``restore`` happened."""

    first_restore = math.nan
    last_restore = math.nan

    def restore(self, state: UserState, settings: TenantSettings) -> None:
        now = time.perf_counter()
        if math.isnan(self.first_restore):
            self.first_restore = now
        super().restore(state, settings)
        self.last_restore = time.perf_counter()


class TimedSnapshots:
    """A snapshot store proxy that times ``load_all``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.loaded = (math.nan, math.nan)
        self.bytes = 0

    async def load_all(self) -> tuple[dict[tuple[int, str], bytes], float | None]:
        t0 = time.perf_counter()
        blobs, watermark = await self.inner.load_all()
        self.loaded = (t0, time.perf_counter())
        self.bytes = sum(len(b) for b in blobs.values())
        return blobs, watermark

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class GcTime:
    """Time spent in the cyclic GC, per generation, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        #: (start, end, generation) of every collection.
        self.pauses: list[tuple[float, float, int]] = []
        self._start = 0.0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            end = time.perf_counter()
            self.seconds[info["generation"]] += end - self._start
            self.count[info["generation"]] += 1
            self.pauses.append((self._start, end, info["generation"]))

    def within(self, start: float, end: float) -> float:
        """Seconds of collection inside ``[start, end]``."""
        return sum(max(0.0, min(e, end) - max(s, start)) for s, e, _ in self.pauses)


# ---- child steps ---------------------------------------------------------------------


async def _with_store(path: Path, fn: Callable[[EventStore], Any], cls: type = EventStore) -> Any:
    async with trio.open_nursery() as nursery:
        store = await nursery.start(cls(path).run)
        try:
            return await fn(store)
        finally:
            await store.close()


async def prepare(args: dict[str, Any]) -> dict[str, Any]:
    """Events in SQLite; graceful and crash snapshots in Redis and in two SQLite files."""
    plan = Plan(**args["plan"])
    db, db_crash = Path(args["db"]), Path(args["db_crash"])
    out: dict[str, Any] = {}

    async def fill(store: EventStore) -> list[User]:
        tenants = []
        for k in range(TENANTS):
            tenant, _ = await store.write(
                partial(create_tenant, name=f"bench-{k}", origins=["https://app.example.com"])
            )
            tenants.append(tenant)
        t0 = time.perf_counter()
        users = make_users(plan, tenants, int(time.time() * 1000), args["seed"])
        out["build_s"] = time.perf_counter() - t0
        batches = sorted(
            ((u.tenant_id, b) for u in users for b in (u.first, u.second)),
            key=lambda tb: tb[1].received_at_ms,
        )
        pending = iter(batches)

        async def writer() -> None:
            for tid, batch in pending:
                await store.write(
                    partial(insert_batch, tenant_id=tid, batch=batch), rows=len(batch.events)
                )

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(WRITERS):
                nursery.start_soon(writer)
        out["insert_s"] = time.perf_counter() - t0
        out["batches"] = len(batches)
        out["events"] = sum(len(b.events) for _, b in batches)
        return users

    users: list[User] = await _with_store(db, fill)
    await trio.to_thread.run_sync(shutil.copyfile, db, db_crash)

    now = time.time()
    rng = random.Random(args["seed"] + 1)
    tenants = {u.tenant_id: TenantSettings() for u in users}
    graceful: dict[tuple[int, str], bytes] = {}
    crash: dict[tuple[int, str], bytes] = {}
    crash_taken: list[float] = []
    for u in users:
        th = tenants[u.tenant_id]
        graceful[u.state.key] = encode_state(evaluate(u.state, now, th).state, now)
        taken = u.second.received_at_ms / 1000 + rng.uniform(0.0, 2.0)
        crash[u.state.key] = encode_state(evaluate(u.state, taken, th).state, taken)
        crash_taken.append(taken)
    out["snapshot_bytes_avg"] = sum(len(b) for b in graceful.values()) / len(graceful)

    # The last round's watermark: at the stop for "graceful"; for "crash", the
    # round before the crash took its changes up to 2 s before the last snapshot.
    watermarks = {"graceful": now, "crash": max(crash_taken) - 2.0}
    for which, blobs in (("graceful", graceful), ("crash", crash)):
        redis_store = RedisSnapshotStore(args["redis_url"], prefix=which)
        t0 = time.perf_counter()
        await redis_store.save(blobs, watermark=watermarks[which])
        out[f"redis_save_all_{which}_s"] = time.perf_counter() - t0
        redis_store.close()

    async def save(
        blobs: dict[tuple[int, str], bytes], watermark: float, store: EventStore
    ) -> float:
        t0 = time.perf_counter()
        await SqliteSnapshotStore(store).save(blobs, watermark=watermark)
        return time.perf_counter() - t0

    out["sqlite_save_all_graceful_s"] = await _with_store(
        db, partial(save, graceful, watermarks["graceful"])
    )
    out["sqlite_save_all_crash_s"] = await _with_store(
        db_crash, partial(save, crash, watermarks["crash"])
    )
    out["db_mib"] = await trio.to_thread.run_sync(os.path.getsize, db) / 2**20
    return out


async def recover_step(args: dict[str, Any]) -> dict[str, Any]:
    """One recovery, as ``app.serve`` runs it; see the module docstring."""
    backend, which = args["backend"], args["which"]
    db = Path(args["db_crash"] if backend == "sqlite" and which == "crash" else args["db"])
    clock = Clock()
    out: dict[str, Any] = {"rss_start_mib": rss_mib()}

    async def run(store: TimedStore) -> None:
        tenants = {t.id: t for t in await store.read(list_tenants)}
        store.reads.clear()
        snapshots: TimedSnapshots | None = None
        if backend == "redis":
            snapshots = TimedSnapshots(RedisSnapshotStore(args["redis_url"], prefix=which))
        elif backend == "sqlite":
            snapshots = TimedSnapshots(SqliteSnapshotStore(store))
        async with trio.open_nursery() as live:
            (t_send, t_recv), (c_send, c_recv) = feed_channels()
            await live.start(Feed(t_recv, c_recv).run)
            registry: TimedRegistry = await live.start(
                TimedRegistry(clock, triggers_out=t_send, changes_out=c_send).run
            )
            # A watcher, as the app creates it before recovering (it is not started).
            Snapshotter(registry, snapshots or SqliteSnapshotStore(store), clock)
            out["rss_before_mib"] = rss_mib()
            gc_time = GcTime()
            gc.callbacks.append(gc_time.callback)
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            report = await recover(
                registry,
                store,
                snapshots,  # type: ignore[arg-type]
                tenants,
                clock,
            )
            t1 = time.perf_counter()
            await trio.testing.wait_all_tasks_blocked()
            t2 = time.perf_counter()
            out["ready_cpu_s"] = time.process_time() - cpu0
            gc.callbacks.remove(gc_time.callback)
            out["ready_wall"] = time.time()
            out["rss_ready_mib"] = rss_mib()
            read_start, read_end, rows = store.reads[-1]
            load_start, load_end = snapshots.loaded if snapshots else (t0, t0)
            phases = {
                "load": (load_start, load_end),
                "decode": (load_end, read_start),
                "read ev": (read_start, read_end),
                "replay": (read_end, registry.first_restore),
                "spawn": (registry.first_restore, registry.last_restore),
                # recover() lets the restored actors run before it returns.
                "1st rounds": (registry.last_restore, t2),
            }
            out["gc_by_phase"] = {k: gc_time.within(a, b) for k, (a, b) in phases.items()}
            out.update(
                source=report.source,
                snapshots_loaded=report.snapshots_loaded,
                snapshot_mib=(snapshots.bytes if snapshots else 0) / 2**20,
                rows_read=rows,
                replayed_events=report.replayed_events,
                users_restored=report.users_restored,
                live_after=registry.live_count,
                load_s=load_end - load_start,
                decode_s=read_start - load_end,
                read_s=read_end - read_start,
                replay_s=registry.first_restore - read_end,
                spawn_s=registry.last_restore - registry.first_restore,
                recover_s=t1 - t0,
                first_round_s=t2 - registry.last_restore,
                ready_s=t2 - t0,
                gc_freezes=registry.stats()["gc_freezes"],
                gc_s=sum(gc_time.seconds),
                gc2_s=gc_time.seconds[2],
                gc2_n=gc_time.count[2],
            )
            out["peak_rss_mib"] = peak_rss_mib()
            finish(out)

    await _with_store(db, run, TimedStore)
    return out


@dataclass
class Probe:
    """A task that sleeps 1 ms in a loop, recording how late it wakes.

    Each sample is (slept from, woke at, oversleep, loop-thread CPU, process CPU)
    over that sleep: an oversleep with little process CPU means the kernel ran
    another process (the machine is shared); one with process CPU but little
    loop-thread CPU means a worker thread of ours held the GIL.
    """

    samples: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    gc_pauses: list[tuple[float, float, int]] = field(default_factory=list)
    _gc_start: float = 0.0

    async def run(self) -> None:
        while True:
            p0, t0, c0 = time.perf_counter(), time.thread_time(), time.process_time()
            await trio.sleep(PROBE_SLEEP_S)
            p1, t1, c1 = time.perf_counter(), time.thread_time(), time.process_time()
            self.samples.append((p0, p1, p1 - p0 - PROBE_SLEEP_S, t1 - t0, c1 - c0))

    def gc_callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_pauses.append((self._gc_start, time.perf_counter(), info["generation"]))

    def clear(self) -> None:
        self.samples.clear()
        self.gc_pauses.clear()

    def during(self, start: float, end: float) -> list[tuple[float, float, float, float, float]]:
        """The samples whose sleep overlapped ``[start, end]``."""
        return [x for x in self.samples if x[1] >= start and x[0] <= end]

    def gc_during(self, start: float, end: float) -> list[tuple[float, int]]:
        return [(g1 - g0, gen) for g0, g1, gen in self.gc_pauses if g1 >= start and g0 <= end]


async def rounds_step(args: dict[str, Any]) -> dict[str, Any]:
    """Snapshot rounds with N live actors; see the module docstring."""
    plan = Plan(**args["plan"])
    rng = random.Random(args["seed"])
    clock = Clock()
    tenants = [bench_tenant(k + 1, f"bench-{k}") for k in range(TENANTS)]
    timer_tenant = bench_tenant(
        TENANTS + 1,
        "timers",
        tenant_settings(
            stuck_on_page_s=TIMER_STUCK_S, presence_timeout_s=600.0, idle_after_s=600.0
        ),
    )
    probe = Probe()
    gc.callbacks.append(probe.gc_callback)
    out: dict[str, Any] = {"rounds": []}
    #: user id -> (seen - deadline, actor's wake - deadline), for timer users.
    fired: dict[str, tuple[float, float]] = {}

    async def on_trigger(message: TriggerMessage) -> None:
        if isinstance(message, TriggerFired) and message.state.tenant_id == timer_tenant.id:
            s = message.state
            input_since = getattr(s, "input_since", 0.0)  # older revisions have none
            there = max(s.route_entered_at, input_since, s.visible_since, s.present_since)
            deadline = there + TIMER_STUCK_S
            fired[s.user_id] = (clock.now() - deadline, message.at - deadline)

    async def run(store: EventStore) -> None:
        async with trio.open_nursery() as live:
            (t_send, t_recv), (c_send, c_recv) = feed_channels()
            feed: Feed = await live.start(Feed(t_recv, c_recv).run)
            feed.subscribe_triggers(on_trigger)
            registry: Registry = await live.start(
                Registry(clock, triggers_out=t_send, changes_out=c_send).run
            )
            # The timer users live in a registry of their own in the same loop, so
            # the snapshotters see exactly the N users (and 10 % of them dirty).
            timer_registry: Registry = await live.start(
                Registry(clock, triggers_out=t_send.clone(), changes_out=c_send.clone()).run
            )
            redis_store = RedisSnapshotStore(args["redis_url"], prefix="rounds")
            snappers: dict[str, Snapshotter] = {
                "redis": Snapshotter(registry, redis_store, clock),
                "sqlite": Snapshotter(registry, SqliteSnapshotStore(store), clock),
            }
            rss0 = rss_mib()
            now_ms = clock.now_ms()
            ids: list[tuple[Tenant, str, str]] = []
            t0 = time.perf_counter()
            for i in range(plan.users):
                tenant = tenants[i % TENANTS]
                uid = f"user-{i:06d}-{rng.getrandbits(32):08x}"
                tier = rng.choices([t for t, _ in TIERS], weights=[w for _, w in TIERS])[0]
                route = rng.choice(ROUTES).format(n=rng.randrange(1, 5000))
                events = [
                    {"type": "route", "route": route, "timestamp": now_ms - 3000},
                    {"type": "click", "element": "button#save", "timestamp": now_ms - 1000},
                    {"type": "heartbeat", "timestamp": now_ms},
                ]
                body = _body(uid, tier, tenant.id, now_ms, f"s-{i}", events)
                await registry.deliver(tenant, parse_batch(body, now_ms))
                ids.append((tenant, uid, tier))
            await trio.testing.wait_all_tasks_blocked()
            out["spawn_s"] = time.perf_counter() - t0
            out["rss_actors_mib"] = rss_mib() - rss0
            out["live"] = registry.live_count

            live.start_soon(probe.run)
            gc_after_spawn = GcTime()
            gc.callbacks.append(gc_after_spawn.callback)
            timer_seq = 0

            async def arm_timers(span_s: float) -> tuple[float, list[str]]:
                """Fresh timer users due over ``[start, start + span_s]``; returns start (perf)."""
                nonlocal timer_seq
                wall0 = clock.now() + ARM_LEAD_S
                uids = []
                now_ms = clock.now_ms()
                for k in range(TIMERS):
                    timer_seq += 1
                    uid = f"timer-{timer_seq:06d}"
                    due = wall0 + 0.001 + span_s * (k + 0.5) / TIMERS
                    t_e = math.ceil((due - TIMER_STUCK_S) * 1000)
                    events = [
                        {"type": "route", "route": "/checkout", "timestamp": t_e},
                        {"type": "heartbeat", "timestamp": now_ms},
                    ]
                    body = _body(uid, "paid", timer_tenant.id, now_ms, f"t-{timer_seq}", events)
                    await timer_registry.deliver(timer_tenant, parse_batch(body, now_ms))
                    uids.append(uid)
                await trio.testing.wait_all_tasks_blocked()
                start = clock.to_trio(wall0)
                # Late arming (a busy machine) only loses the timers due before the round.
                await trio.sleep_until(start)
                late = trio.current_time() - start
                return time.perf_counter() - late, uids

            async def measure(kind: str, backend: str | None, span_s: float) -> dict[str, Any]:
                snap = snappers[backend] if backend else None
                gc.collect(0)
                probe.clear()
                written0 = snap.written if snap else 0
                start, uids = await arm_timers(span_s)
                begun = time.perf_counter()
                cpu0 = time.thread_time()
                switches0 = involuntary_switches()
                if snap is not None:
                    ok = await snap.save_round()
                    if not ok:
                        raise RuntimeError(f"{backend} round failed: {snap.last_error}")
                else:
                    await trio.sleep(span_s)
                end = time.perf_counter()
                cpu = time.thread_time() - cpu0
                last_due = start + span_s + 0.5
                with trio.move_on_after(max(0.0, last_due - time.perf_counter()) + 2.0):
                    while any(u not in fired for u in uids):  # noqa: ASYNC110
                        await trio.sleep(0.01)
                # Timer k was due at start + 0.001 + span * (k + .5) / TIMERS.
                dues = [start + 0.001 + span_s * (k + 0.5) / TIMERS for k in range(TIMERS)]
                inside = [
                    fired[u]
                    for u, d in zip(uids, dues, strict=True)
                    if begun <= d <= end and u in fired
                ]
                samples = probe.during(begun, end)
                lags = [x[2] for x in samples]
                worst = max(samples, key=lambda x: x[2], default=(0.0, 0.0, math.nan, 0.0, 0.0))
                gcs = probe.gc_during(begun, end)
                return {
                    "kind": kind,
                    "backend": backend or "-",
                    "span_s": span_s,
                    "written": (snap.written - written0) if snap else 0,
                    "round_ms": 1000 * (end - begun),
                    "loop_cpu_ms": 1000 * cpu,
                    "lag_n": len(lags),
                    "lag_p50_ms": 1000 * pct(lags, 50),
                    "lag_p99_ms": 1000 * pct(lags, 99),
                    "lag_max_ms": 1000 * worst[2],
                    "lag_max_cpu_ms": (1000 * worst[3], 1000 * worst[4]),
                    "preempted": involuntary_switches() - switches0,
                    "timers_inside": len(inside),
                    "timers_missing": sum(1 for u in uids if u not in fired),
                    "late_ms": [1000 * x[0] for x in inside],
                    "wake_ms": [1000 * x[1] for x in inside],
                    "gc_n": len(gcs),
                    "gc_max_ms": 1000 * max((d for d, _ in gcs), default=0.0),
                    "gc_gen2": sum(1 for _, g in gcs if g == 2),
                }

            async def dirty(n: int) -> None:
                for tenant, uid, tier in rng.sample(ids, n):
                    now_ms = clock.now_ms()
                    events = [
                        {"type": "click", "element": "a.nav", "timestamp": now_ms - 200},
                        {"type": "heartbeat", "timestamp": now_ms},
                    ]
                    body = _body(uid, tier, tenant.id, now_ms, f"d-{now_ms}-{uid}", events)
                    await registry.deliver(tenant, parse_batch(body, now_ms))
                await trio.testing.wait_all_tasks_blocked()

            rounds: list[dict[str, Any]] = out["rounds"]
            # Full rounds: everything spawned is dirty (the shutdown / after-outage round).
            for backend in snappers:
                rounds.append(await measure("full", backend, FULL_ROUND_SPAN_S))
            # A warm-up 10 % round per backend sizes the timers' spread.
            await dirty(plan.dirty)
            span = {}
            for backend in snappers:
                warm = await measure("warm-up", backend, 0.1)
                span[backend] = max(0.05, 1.2 * warm["round_ms"] / 1000)
                rounds.append(warm)
            for _ in range(plan.rounds):
                await dirty(plan.dirty)
                rounds.append(await measure("control", None, span["redis"]))
                for backend in snappers:
                    rounds.append(await measure("10%", backend, span[backend]))
            gen2 = [e - b for b, e, g in gc_after_spawn.pauses if g == 2]
            out["gen2_n"] = len(gen2)
            out["gen2_max_ms"] = 1000 * max(gen2, default=0.0)
            out["gen2_total_ms"] = 1000 * sum(gen2)
            out["gen2_in_rounds"] = sum(r["gc_gen2"] for r in rounds)
            out["stats"] = registry.stats()
            out["timer_stats"] = timer_registry.stats()
            out["peak_rss_mib"] = peak_rss_mib()
            finish(out)

    await _with_store(Path(args["db"]), run)
    return out


STEPS = {"prepare": prepare, "recover": recover_step, "rounds": rounds_step}


def finish(result: dict[str, Any]) -> NoReturn:
    """Print ``result`` and exit at once.

    Tearing down 100k actors (cancelling each) takes longer than the measurement
    and measures nothing; the recovery steps only read, and the rounds step's
    files are thrown away, so nothing is lost by not closing them.
    """
    sys.stdout.write("RESULT " + orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    os._exit(0)


def child_main(argv: Sequence[str]) -> int:
    """``python -m bench.recovery STEP JSON``: run one step, print its result as JSON."""
    step, args = argv[0], orjson.loads(argv[1])
    finish(trio.run(STEPS[step], args))


# ---- the parent ---------------------------------------------------------------------------


def _child(step: str, args: dict[str, Any], what: str, src: Path | None = None) -> dict[str, Any]:
    """Run ``step`` in a fresh interpreter (the service's ``src`` first on its path,
    if given); its result, with ``spawned_wall`` added."""
    print(f"  {what} ...", end="", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    spawned = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.recovery", step, orjson.dumps(args).decode()],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        env=env,
        check=False,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"step {step} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    result: dict[str, Any] = orjson.loads(lines[-1][len("RESULT ") :])
    result["spawned_wall"] = spawned
    print(f" {time.time() - spawned:.0f} s", flush=True)
    return result


def _ms(values: Iterable[float], q: float) -> float:
    return pct(list(values), q)


def run(opts: Options) -> Report:
    """Prepare, recover five ways (each also with the baseline's service), measure
    rounds; see the module docstring."""
    plan = Plan.for_options(opts)
    seed = 4
    baseline, how = baseline_rev(opts.baseline)
    report = Report(
        NAME,
        params={
            **dataclasses.asdict(plan),
            "timers_per_round": TIMERS,
            "before": describe_rev(baseline) if baseline else None,
            "before_chosen_as": how,
            "repeats": {label: _repeats(label, opts) for label, _, _ in RECOVERIES},
        },
    )
    with tempfile.TemporaryDirectory(prefix="tippen-bench-recovery-") as tmp_name:
        tmp = Path(tmp_name)
        report.params["tmp_fs"] = filesystem_of(tmp)
        sides: list[tuple[str, Path | None]] = [("after", None)]
        if baseline is not None:
            print(f"   before: {describe_rev(baseline)} ({how})", flush=True)
            sides.insert(0, ("before", export_src(baseline, tmp / "before")))
        with running_redis(tmp) as redis_server:
            report.params["redis"] = redis_server.version()
            base = {
                "plan": dataclasses.asdict(plan),
                "db": str(tmp / "events.db"),
                "db_crash": str(tmp / "events-crash.db"),
                "redis_url": redis_server.url,
                "seed": seed,
            }
            # Prepared by the older side: the newer one migrates its copy at start
            # (an older service refuses a newer schema).
            prep = _child(
                "prepare",
                base,
                f"preparing {plan.users:,} users' events and snapshots",
                sides[0][1],
            )
            report.params["redis_used_mib"] = round(redis_server.used_memory_mib(), 1)
            recs: list[tuple[str, str, dict[str, Any]]] = []
            for label, backend, which in RECOVERIES:
                for n in range(_repeats(label, opts)):
                    # Alternate which side goes first, so drift in the host's speed
                    # during the run does not favour one of them.
                    for side, src in sides if n % 2 == 0 else sides[::-1]:
                        args = {**base, "backend": backend or "none", "which": which}
                        args.update(_fresh_copies(base, tmp / "work"))
                        res = _child("recover", args, f"recovering: {label} ({side})", src)
                        res["process_s"] = res["ready_wall"] - res["spawned_wall"]
                        recs.append((label, side, res))
            rounds = _child(
                "rounds",
                {**base, "db": str(tmp / "rounds.db")},
                f"snapshot rounds with {plan.users:,} live actors",
            )
    _tables(report, plan, prep, _medians(recs), rounds)
    return report


#: Recoveries of each kind per side; the figures are their medians.
REPEATS = {"redis, graceful": 3, "redis, crash": 3}


def _repeats(label: str, opts: Options) -> int:
    return 1 if opts.quick else REPEATS.get(label, 1)


def _fresh_copies(base: dict[str, Any], work: Path) -> dict[str, str]:
    """The prepared SQLite files copied anew for one recovery: each recovery is the
    first start after the snapshots, as after a real stop or crash.  (Reusing one
    file made every later recovery cross the earlier one's recorded start, and so
    replay every user: measured, that path is several times slower and not what
    an operator's restart does.)"""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    copies = {}
    for key in ("db", "db_crash"):
        copies[key] = str(work / Path(base[key]).name)
        shutil.copyfile(base[key], copies[key])
    return copies


def _medians(
    recs: list[tuple[str, str, dict[str, Any]]],
) -> list[tuple[str, dict[str, Any]]]:
    """One row per (kind, side): the run with the median ready time, its runs' ready
    times in ``ready_runs``; the baseline's labelled "... (before)"."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for side in ("before", "after"):
        for label, _, _ in RECOVERIES:
            runs = recs_of(recs, label, side)
            if runs:
                row = dict(sorted(runs, key=_ready)[(len(runs) - 1) // 2])
                row["ready_runs"] = [round(r["ready_s"], 2) for r in runs]
                rows.append((label if side == "after" else f"{label} (before)", row))
    return rows


def recs_of(
    recs: list[tuple[str, str, dict[str, Any]]], label: str, side: str
) -> list[dict[str, Any]]:
    """The runs of one kind and side, in the order they ran."""
    return [r for k, s, r in recs if k == label and s == side]


def _ready(r: dict[str, Any]) -> float:
    return float(r["ready_s"])


def _tables(
    report: Report,
    plan: Plan,
    prep: dict[str, Any],
    recs: list[tuple[str, dict[str, Any]]],
    rounds: dict[str, Any],
) -> None:
    report.notes.append(
        f"prepared {prep['events']:,} events in {prep['batches']:,} batches"
        f" (inserted through the EventStore in {prep['insert_s']:.1f} s),"
        f" snapshots {prep['snapshot_bytes_avg']:.0f} B/user; SQLite file {prep['db_mib']:.0f} MiB"
        f" on {report.params['tmp_fs']}; OS page cache warm (files just written)"
    )
    report.notes.append(
        f"writing all {plan.users:,} snapshots through the stores' save():"
        f" Redis {prep['redis_save_all_graceful_s']:.2f} s,"
        f" SQLite {prep['sqlite_save_all_graceful_s']:.2f} s"
    )

    rec = Table(
        f"recovery of {plan.users:,} live users (each in a fresh process)",
        [
            "source",
            "snapshots",
            "rows read",
            "replayed ev",
            "load s",
            "decode s",
            "read ev s",
            "replay s",
            "spawn s",
            "recover() s",
            "1st rounds s",
            "ready s",
            "ready s, each run",
            "CPU s",
            "GC s",
            "process s",
            "live",
            "RSS MiB",
            "peak RSS MiB",
        ],
    )
    for label, r in recs:
        rec.add(
            label,
            r["snapshots_loaded"],
            r["rows_read"],
            r["replayed_events"],
            r["load_s"],
            r["decode_s"],
            r["read_s"],
            r["replay_s"],
            r["spawn_s"],
            r["recover_s"],
            r["first_round_s"],
            r["ready_s"],
            " / ".join(f"{x:.2f}" for x in r["ready_runs"]),
            r["ready_cpu_s"],
            r["gc_s"],
            r["process_s"],
            r["live_after"],
            r["rss_ready_mib"],
            r["peak_rss_mib"],
        )
        key = ("before_" if label.endswith(" (before)") else "") + label.split(" (")[0].replace(
            ", ", "_"
        )
        report.figures.update(
            {
                f"{key}_ready_s": round(r["ready_s"], 3),
                f"{key}_recover_s": round(r["recover_s"], 3),
                f"{key}_process_s": round(r["process_s"], 3),
                f"{key}_peak_rss_mib": round(r["peak_rss_mib"], 1),
                f"{key}_rows_read": r["rows_read"],
            }
        )
    report.tables.append(rec)
    phases = list(recs[0][1]["gc_by_phase"])
    gct = Table(
        "cyclic GC inside each recovery phase, s (gen2 = full collections, all phases)",
        ["source", *phases, "all GC", "gen2 n", "gen2 s"],
    )
    for label, r in recs:
        gct.add(
            label,
            *[r["gc_by_phase"][k] for k in phases],
            r["gc_s"],
            r["gc2_n"],
            r["gc2_s"],
        )
    report.tables.append(gct)
    report.notes.append(
        "ready = recover() returned and every restored actor ran its first rule round;"
        " process = from Popen (interpreter, imports, EventStore open) to ready;"
        " 'load' = the store's load_all (HSCAN / SELECT), 'decode' = decode_state of every"
        " snapshot, 'read ev' = the SELECT of events since the oldest snapshot,"
        " 'replay' = grouping rows into batches and apply_batch, 'spawn' = Registry.restore,"
        " '1st rounds' = from the last restore until every restored actor ran its rules once"
        " (recover() lets them run before it returns)"
    )

    rows = rounds["rounds"]
    spans = _ms((r["span_s"] for r in rows if r["kind"] == "10%"), 50)
    rt = Table(
        f"snapshot rounds with {rounds['live']:,} live actors"
        f" ({TIMERS} timers due during each; lag = 1 ms probe oversleep during the round)",
        [
            "round",
            "backend",
            "written",
            "round ms",
            "loop CPU ms",
            "lag p50 ms",
            "lag p99 ms",
            "lag max ms",
            "  (loop/proc CPU)",
            "preempt",
            "timers in",
            "wake max ms",
            "seen p50 ms",
            "seen max ms",
            "gc n",
            "gc max ms",
        ],
    )
    for r in rows:
        rt.add(
            r["kind"],
            r["backend"],
            r["written"],
            r["round_ms"],
            r["loop_cpu_ms"],
            r["lag_p50_ms"],
            r["lag_p99_ms"],
            r["lag_max_ms"],
            "{:.1f}/{:.1f}".format(*r["lag_max_cpu_ms"]),
            r["preempted"],
            r["timers_inside"],
            max(r["wake_ms"], default=math.nan),
            _ms(r["late_ms"], 50),
            max(r["late_ms"], default=math.nan),
            r["gc_n"],
            r["gc_max_ms"],
        )
    report.tables.append(rt)
    report.notes.append(
        "rounds: 'written' = states the round wrote; 'loop CPU' = CPU time of the trio thread"
        " during the round; '(loop/proc CPU)' = CPU of the trio thread / of the whole process"
        " during the worst oversleep (proc CPU well below the oversleep: the kernel ran another"
        " process; proc CPU >> loop CPU: a worker thread of ours held the GIL); 'preempt' ="
        " involuntary context switches of the process during the round; for the timers due"
        " inside the round: 'wake' = the actor's wake-up (TriggerFired.at) minus the deadline,"
        " 'seen' = when the Feed's trigger subscriber got it minus the deadline;"
        f" the {TIMERS} timers of a 10 % round come due at {TIMERS / spans:,.0f}/s on average"
        " (a dense burst: the Feed takes one message per scheduler batch);"
        " control = the same timers, no round"
    )

    def pooled(kind: str, backend: str) -> dict[str, float]:
        sel = [r for r in rows if r["kind"] == kind and r["backend"] == backend]
        lags_max = max((r["lag_max_ms"] for r in sel), default=math.nan)
        late = [x for r in sel for x in r["late_ms"]]
        wake = [x for r in sel for x in r["wake_ms"]]
        return {
            "n": len(sel),
            "round_ms": _ms((r["round_ms"] for r in sel), 50),
            "lag_p99_ms": _ms((r["lag_p99_ms"] for r in sel), 100),
            "lag_max_ms": lags_max,
            "late_p99_ms": _ms(late, 99),
            "late_max_ms": max(late, default=math.nan),
            "wake_p99_ms": _ms(wake, 99),
            "wake_max_ms": max(wake, default=math.nan),
            "timers": len(late),
        }

    summary = Table(
        "snapshot round summary (10 % dirty: pooled over rounds; full: one round)",
        [
            "round",
            "round ms (median)",
            "lag p99 ms (worst)",
            "lag max ms",
            "timers",
            "wake p99 ms",
            "wake max ms",
            "seen p99 ms",
            "seen max ms",
        ],
    )
    pooled_rows = [
        ("control (no round)", pooled("control", "-")),
        ("10% -> redis", pooled("10%", "redis")),
        ("10% -> sqlite", pooled("10%", "sqlite")),
        ("full -> redis", pooled("full", "redis")),
        ("full -> sqlite", pooled("full", "sqlite")),
    ]
    for label, p in pooled_rows:
        summary.add(
            label,
            p["round_ms"],
            p["lag_p99_ms"],
            p["lag_max_ms"],
            p["timers"],
            p["wake_p99_ms"],
            p["wake_max_ms"],
            p["late_p99_ms"],
            p["late_max_ms"],
        )
        key = label.split(" (")[0].replace("% -> ", "pct_").replace(" -> ", "_")
        report.figures.update(
            {
                f"round_{key}_ms": round(p["round_ms"], 2),
                f"round_{key}_lag_max_ms": round(p["lag_max_ms"], 2),
                f"round_{key}_late_max_ms": round(p["late_max_ms"], 2),
                f"round_{key}_wake_max_ms": round(p["wake_max_ms"], 2),
            }
        )
    report.tables.append(summary)
    report.notes.append(
        f"rounds process: {rounds['live']:,} actors spawned through Registry.deliver in"
        f" {rounds['spawn_s']:.1f} s, +{rounds['rss_actors_mib']:.0f} MiB;"
        f" peak RSS {rounds['peak_rss_mib']:.0f} MiB; registry {rounds['stats']};"
        f" after spawning: {rounds['gen2_n']} full (gen2) collections, max"
        f" {rounds['gen2_max_ms']:.0f} ms, total {rounds['gen2_total_ms']:.0f} ms,"
        f" {rounds['gen2_in_rounds']} of them inside a measured round"
    )

    targets = Table("targets (issues 4 and 17)", ["figure", "value", "target", "met"])
    by = dict(recs)
    for label in ("redis, graceful", "redis, crash"):
        v = by[label]["ready_s"]
        targets.add(f"ready from {label} s", v, f"< {TARGET_READY_S:g}", v < TARGET_READY_S)
        before = by.get(f"{label} (before)")
        if before is not None:
            ratio = v / before["ready_s"]
            targets.add(f"ready from {label}: after / before", ratio, "<= 1", ratio <= 1)
            report.figures[f"{label.replace(', ', '_')}_ready_vs_before"] = round(ratio, 3)
    for backend in ("redis", "sqlite"):
        p = pooled("10%", backend)
        targets.add(
            f"10% round -> {backend}: worst loop lag ms",
            p["lag_max_ms"],
            f"< {TARGET_DELAY_MS:g}",
            p["lag_max_ms"] < TARGET_DELAY_MS,
        )
        targets.add(
            f"10% round -> {backend}: worst actor wake lateness ms",
            p["wake_max_ms"],
            f"< {TARGET_DELAY_MS:g}",
            p["wake_max_ms"] < TARGET_DELAY_MS,
        )
        targets.add(
            f"10% round -> {backend}: worst trigger seen by Feed ms",
            p["late_max_ms"],
            f"< {TARGET_DELAY_MS:g}",
            p["late_max_ms"] < TARGET_DELAY_MS,
        )
    report.tables.append(targets)
    report.figures["ready_redis_target_met"] = all(
        by[x]["ready_s"] < TARGET_READY_S for x in ("redis, graceful", "redis, crash")
    )
    report.figures["round_delay_target_met"] = all(
        pooled("10%", b)["lag_max_ms"] < TARGET_DELAY_MS
        and pooled("10%", b)["wake_max_ms"] < TARGET_DELAY_MS
        and pooled("10%", b)["late_max_ms"] < TARGET_DELAY_MS
        for b in ("redis", "sqlite")
    )


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
