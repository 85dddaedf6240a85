"""Issue 3's benchmark: 100,000 live user actors against a 1 s polling detector.

Everything runs in this process, on trio's default (real) clock, one phase
after the other (about 7 minutes; ``--quick``: 10,000 users, about 1.5):

(a) ``actors (GcGuard)``: a real :class:`Registry` (its :class:`GcGuard` as
    is) and a :class:`Feed`.  N users each get a first batch through
    ``Registry.deliver``, made the way ingest makes it (a JSON body through
    ``parse_batch``): a route event, a click for most, an error for some, a
    heartbeat (or, for 40 % of free-trial users, ``visibility: hidden``), with
    ``sentAt``.  Tiers are mixed (50 % free_trial, 35 % paid, 15 % enterprise).
    Then: RSS per live actor (VmRSS after minus before, over N), process CPU
    over 10 s of idling (nothing due, no load), and a 60 s window in which
    every user's trigger comes due while a background load runs.
(b) ``polling, 1 s scan``: what a cron-style design does.  The same kind of
    users' states in a dict (``new_state``/``apply_batch``), one task that
    every 1 s runs ``evaluate`` (the same rules) on all of them, the same
    background load applied to the dict.  Idle CPU and lateness as in (a);
    memory as the Python heap of the states (tracemalloc), since RSS does not
    shrink after (a).
(c) ``actors, no gc.freeze``: (a) with a GcGuard that never freezes after
    spawns or steps (only after generation 1 and 2 collections) and a 20 s
    window, to show what freezing buys (no idle or memory figures).
(c2) ``actors, young GC by count``: (a) exactly (same plan and seed) with
    a GcGuard whose young collections come only from CPython's allocation
    count, as before actor steps drove them too (``collect_every_steps``):
    the baseline of that change.
(d) tracemalloc over spawning 20,000 actors: heap per actor and the
    allocation sites it comes from.

How deadlines are placed.  Every user gets a planned deadline; the plan
spreads them evenly over ``[t0 + lead, t0 + lead + spread]`` (t0: spawning
starts; in (a) lead = spread = 60 s).  The tenants differ only in their
thresholds: ``stuck_on_page_s = inactivity_s = 5, 10, ..., 130 s`` (and
``presence_timeout_s`` above the largest, so presence holds without another
heartbeat).  A user's first batch covers its last 0-5 s, as the tracker's 5 s
batching makes it: its route (and click) events are stamped ``t_e <= now``,
and the user belongs to the tenant whose threshold ``X`` puts ``t_e + X`` on
the planned deadline.  Visible users then trigger "stuck on page" at
``t_e + X`` (free-trial ones also "long inactivity", same instant); hidden
free-trial users only "long inactivity".

Background load, during the window: ``LOAD_PER_S`` batches/s built with
``parse_batch``: 80 % heartbeats to random visible users (they wake the actor
but do not move its deadline), 20 % clicks or route changes to a fixed 5 %
"busy" subset (these move the busy users' deadlines).

Lateness of a trigger = the time a Feed subscriber sees the ``TriggerFired``
minus the rule's deadline, computed from the state in that message (so it
stays right for busy users whose deadline moved): stuck =
``max(route_entered_at, visible_since, present_since) + stuck_on_page_s``;
inactivity = ``(last_interaction_at or session_started_at) + inactivity_s``.
A planned trigger (any non-busy user's) not seen by the end of the window
counts as infinitely late.  "wake" uses the actor's own ``TriggerFired.at``
instead.  For the polling detector, detection is when its scan reaches the
user.

Loop lag: a task sleeping 1 ms in a loop records its oversleep (parked while
idle CPU is measured, where it would be the only thing using CPU).  GC pauses
come from ``gc.callbacks``.  Wall and CPU time of the worst of each are both
shown: the machine may be shared, and a pause with little CPU in it was the
kernel running someone else.

Targets (issue 3): p99 lateness < 10 ms, <= 8 KiB per live actor, idle CPU
< 2 % of one core.
"""

from __future__ import annotations

import gc
import math
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import trio

from tippen_rt.actors import (
    Feed,
    FeedMessage,
    GcGuard,
    Registry,
    Trigger,
    TriggerFired,
    UserState,
    apply_batch,
    evaluate,
    feed_channels,
    new_state,
)
from tippen_rt.clock import Clock
from tippen_rt.events import Batch, parse_batch
from tippen_rt.tenants import Tenant, TenantSettings

from ._compat import tenant_settings
from ._options import Options
from ._report import Report, Table

NAME = "actors"
DESCRIPTION = (
    "100k live user actors: trigger lateness, RSS per actor, idle CPU, GC; vs a 1 s polling scan"
)

TARGET_P99_MS = 10.0
TARGET_KIB_PER_ACTOR = 8.0
TARGET_IDLE_CPU_PCT = 2.0

#: Threshold step between bench tenants; also the most a first batch's events are backdated.
STEP_S = 5.0
LOAD_PER_S = 2000.0
LOAD_TICK_S = 0.01
BUSY_FRACTION = 0.05
INTERACTION_SHARE = 0.2
LAG_SLEEP_S = 0.001
#: After the last planned deadline, how long to wait for stragglers.
GRACE_S = 2.0
TIERS = (("free_trial", 0.50), ("paid", 0.35), ("enterprise", 0.15))
ROUTES = ("/dashboard", "/projects/{n}", "/projects/{n}/settings", "/billing", "/reports/{n}")


@dataclass(frozen=True)
class Plan:
    """Sizes and times of one run."""

    users: int = 100_000
    lead_s: float = 60.0
    spread_s: float = 60.0
    idle_s: float = 10.0
    nofreeze_spread_s: float = 20.0
    load_per_s: float = LOAD_PER_S

    @classmethod
    def for_options(cls, opts: Options) -> Plan:
        """The full plan, or a smoke-sized one under ``--quick`` (3 s phases)."""
        if opts.duration_s < 5:
            return cls(
                users=10_000,
                lead_s=20.0,
                spread_s=10.0,
                idle_s=3.0,
                nofreeze_spread_s=5.0,
                load_per_s=500.0,
            )
        return cls()


# ---- measuring ----------------------------------------------------------------


def rss_kib() -> int:
    """Resident set size of this process, KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Phase:
    """Loop lags and GC pauses seen while one phase ran.

    Both are wall time.  Beside the worst of each we keep the CPU time this
    thread got meanwhile: a pause much longer than its CPU time means the
    kernel ran someone else (the machine is shared), not that we were busy.
    """

    name: str
    lags: list[float] = field(default_factory=list)
    gc_pauses: dict[int, list[float]] = field(default_factory=lambda: {0: [], 1: [], 2: []})
    gc_worst: dict[int, tuple[float, float]] = field(
        default_factory=lambda: {0: (0.0, 0.0), 1: (0.0, 0.0), 2: (0.0, 0.0)}
    )
    #: CPU time spent in collections, all generations.
    gc_cpu_total: float = 0.0
    #: (wall, CPU) of the worst oversleep.
    lag_worst: tuple[float, float] = (0.0, 0.0)

    def lag_ms(self, q: float) -> float:
        return 1000 * pct(self.lags, q)

    def gc_max_ms(self, gen: int) -> float:
        return 1000 * self.gc_worst[gen][0]


class Watch:
    """The current phase, fed by a loop-lag task and a ``gc.callbacks`` hook."""

    def __init__(self) -> None:
        self.phase: Phase | None = None
        self.phases: list[Phase] = []
        self._gc_start = (0.0, 0.0)
        self._running = trio.Event()
        self._running.set()

    def enter(self, name: str) -> Phase:
        self.phase = Phase(name)
        self.phases.append(self.phase)
        return self.phase

    def pause_lag(self) -> None:
        self._running = trio.Event()

    def resume_lag(self) -> None:
        self._running.set()

    def gc_callback(self, event: str, info: dict[str, Any]) -> None:
        if event == "start":
            self._gc_start = (time.perf_counter(), time.thread_time())
            return
        phase = self.phase
        if phase is None:
            return
        gen = info["generation"]
        wall = time.perf_counter() - self._gc_start[0]
        cpu = time.thread_time() - self._gc_start[1]
        phase.gc_pauses[gen].append(wall)
        phase.gc_cpu_total += cpu
        if wall > phase.gc_worst[gen][0]:
            phase.gc_worst[gen] = (wall, cpu)

    async def lag_task(self) -> None:
        """Sleep 1 ms in a loop; record how much longer each sleep took."""
        while True:
            await self._running.wait()
            t, cpu = trio.current_time(), time.thread_time()
            await trio.sleep(LAG_SLEEP_S)
            phase = self.phase
            if phase is None or not self._running.is_set():
                continue
            lag = trio.current_time() - t - LAG_SLEEP_S
            phase.lags.append(lag)
            if lag > phase.lag_worst[0]:
                phase.lag_worst = (lag, time.thread_time() - cpu)


def cpu_s() -> float:
    """User + system CPU time of this process, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def involuntary_switches() -> int:
    """Times the kernel took the CPU away from this process: other processes competing."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


# ---- the users ------------------------------------------------------------------


def bench_tenants(plan: Plan) -> list[Tenant]:
    """Tenants that differ only in thresholds: X = 5, 10, ... s (stuck = inactivity = X)."""
    top = plan.lead_s + plan.spread_s + STEP_S
    count = math.ceil(top / STEP_S) + 1
    presence = STEP_S * count + 30.0
    tenants = []
    for k in range(count):
        x = STEP_S * (k + 1)
        # Presence and activity outlast every threshold: users stay "active"
        # (stuck needs input going on) and never go away during the run.
        settings = tenant_settings(
            stuck_on_page_s=x, inactivity_s=x, presence_timeout_s=presence, idle_after_s=presence
        )
        tenants.append(
            Tenant(
                id=k + 1,
                name=f"bench-{x:g}s",
                api_key=f"client_bench_{k}",
                admin_token_hash="-",
                settings=settings,
            )
        )
    return tenants


@dataclass
class Users:
    """Who the N users are; their tenants are chosen when their first batch is built."""

    ids: list[str]
    tiers: list[str]
    hidden: list[bool]
    busy: list[bool]
    errors: list[bool]
    clicks: list[bool]
    routes: list[str]
    tenant: list[int]
    index: dict[str, int]

    @classmethod
    def make(cls, n: int, seed: int) -> Users:
        rng = random.Random(seed)
        ids = [f"u{seed}-{i:06d}-{rng.getrandbits(32):08x}" for i in range(n)]
        tiers = rng.choices([t for t, _ in TIERS], weights=[w for _, w in TIERS], k=n)
        hidden = [t == "free_trial" and rng.random() < 0.4 for t in tiers]
        busy = [rng.random() < BUSY_FRACTION for _ in range(n)]
        errors = [rng.random() < 0.1 for _ in range(n)]
        clicks = [t == "free_trial" or rng.random() < 0.7 for t in tiers]
        routes = [rng.choice(ROUTES).format(n=rng.randrange(1, 5000)) for _ in range(n)]
        return cls(
            ids=ids,
            tiers=tiers,
            hidden=hidden,
            busy=busy,
            errors=errors,
            clicks=clicks,
            routes=routes,
            tenant=[0] * n,
            index={u: i for i, u in enumerate(ids)},
        )

    @property
    def n(self) -> int:
        return len(self.ids)


def planned_deadlines(n: int, start: float, spread: float, seed: int) -> list[float]:
    """``n`` deadlines evenly over ``[start, start + spread]``, in random order."""
    ranks = list(range(n))
    random.Random(seed).shuffle(ranks)
    return [start + spread * (r + 0.5) / n for r in ranks]


def first_batch(
    users: Users, i: int, tenants: Sequence[Tenant], target: float, now: float
) -> tuple[Tenant, Batch, bool]:
    """User ``i``'s first batch, built so its trigger comes due at ``target``.

    Returns (tenant, batch, on_plan); ``on_plan`` is False if ``target`` was
    already too close to make (spawning ran late).
    """
    need = target - now
    k = max(0, math.ceil(need / STEP_S) - 1)
    on_plan = need > 0 and k < len(tenants)
    k = min(k, len(tenants) - 1)
    tenant = tenants[k]
    users.tenant[i] = k
    now_ms = int(now * 1000)
    t_e = min(now_ms, math.ceil((target - tenant.settings.stuck_on_page_s) * 1000))
    events: list[dict[str, Any]] = [{"type": "route", "route": users.routes[i], "timestamp": t_e}]
    if users.clicks[i]:
        events.append({"type": "click", "element": "button#save", "text": "Save", "timestamp": t_e})
    if users.errors[i]:
        events.append(
            {
                "type": "error",
                "message": "TypeError: Cannot read properties of undefined (reading 'id')",
                "source": "https://app.example.com/static/app.js",
                "timestamp": t_e,
            }
        )
    if users.hidden[i]:
        events.append({"type": "visibility", "state": "hidden", "timestamp": t_e})
    else:
        events.append({"type": "heartbeat", "timestamp": now_ms})
    return tenant, _batch(users, i, tenant, events, now_ms), on_plan


def _batch(
    users: Users, i: int, tenant: Tenant, events: list[dict[str, Any]], now_ms: int
) -> Batch:
    body = orjson.dumps(
        {
            "apiKey": tenant.api_key,
            "userId": users.ids[i],
            "userEmail": f"user{i}@customer{tenant.id}.example.com",
            "subscriptionTier": users.tiers[i],
            "sentAt": now_ms,
            "events": events,
        }
    )
    return parse_batch(body, now_ms)


def deadline_of(s: UserState, trigger: Trigger, th: TenantSettings) -> float | None:
    """When ``trigger`` came due for a user in state ``s`` (DESIGN.md semantics).

    None for "multiple errors": it fires on the batch that brings the error, not on a timer.
    """
    there_since = max(s.visible_since, s.present_since)
    if trigger is Trigger.STUCK_ON_PAGE:
        return max(s.route_entered_at, s.input_since, there_since) + th.stuck_on_page_s
    if trigger is Trigger.LONG_INACTIVITY:
        last = s.last_input_at if s.last_input_at is not None else s.session_started_at
        return max(last, there_since) + th.inactivity_s
    if trigger is Trigger.LOW_ACTIVITY:
        window, needed = th.low_activity_window_s, th.low_activity_min_events
        recent = s.recent_interactions
        quiet = recent[-needed] + window if len(recent) >= needed else -math.inf
        return max(max(s.session_started_at, there_since) + window, quiet)
    return None


def expected_triggers(users: Users) -> set[tuple[int, Trigger]]:
    """The (user, trigger) pairs planned to fire: every non-busy user's, at its target.

    Busy users get clicks and route changes that move their deadlines, so
    whether theirs fire inside the window is not planned.
    """
    out: set[tuple[int, Trigger]] = set()
    for i in range(users.n):
        if users.busy[i]:
            continue
        if not users.hidden[i]:
            out.add((i, Trigger.STUCK_ON_PAGE))
        if users.tiers[i] == "free_trial":
            out.add((i, Trigger.LONG_INACTIVITY))
    return out


@dataclass
class Fires:
    """Triggers seen, with their lateness."""

    #: (lateness as seen by the subscriber, lateness at the actor's wake-up)
    rows: list[tuple[float, float]] = field(default_factory=list)
    seen: set[tuple[int, Trigger]] = field(default_factory=set)
    #: Planned triggers not seen by the end of the window (set by :meth:`close`).
    missing: int = 0
    untimed: int = 0
    #: Non-busy fires whose deadline is not the planned one (should be 0).
    off_plan: int = 0
    #: Fires seen while the idle-CPU window ran (should be 0).
    during_idle: int = 0
    idle: bool = False

    def add(
        self, user: int, trigger: Trigger, seen: float, at: float, deadline: float | None
    ) -> None:
        if self.idle:
            self.during_idle += 1
        self.seen.add((user, trigger))
        if deadline is None:
            self.untimed += 1
            return
        self.rows.append((seen - deadline, at - deadline))

    def close(self, users: Users) -> None:
        """Count the planned triggers that never showed up."""
        self.missing = len(expected_triggers(users) - self.seen)

    def ms(self, col: int = 0) -> list[float]:
        """Lateness in ms; a planned trigger that never fired counts as infinitely late."""
        return [1000 * r[col] for r in self.rows] + [math.inf] * self.missing


class Load:
    """The background load: batches at a fixed rate into ``sink``."""

    def __init__(self, users: Users, tenants: Sequence[Tenant], clock: Clock, rate: float):
        self.users = users
        self.tenants = tenants
        self.clock = clock
        self.rate = rate
        self.sent = 0
        self.started = 0.0
        self.stopped = 0.0
        n = users.n
        self._visible = [i for i in range(n) if not users.hidden[i]]
        self._busy = [i for i in range(n) if users.busy[i]] or [0]
        self._rng = random.Random(99)

    def next_batch(self) -> tuple[int, Tenant, Batch]:
        rng = self._rng
        now_ms = self.clock.now_ms()
        if rng.random() < INTERACTION_SHARE:
            i = rng.choice(self._busy)
            if rng.random() < 0.5:
                ev: dict[str, Any] = {
                    "type": "route",
                    "route": rng.choice(ROUTES).format(n=rng.randrange(1, 5000)),
                }
            else:
                ev = {"type": "click", "element": "a.nav", "text": "Next"}
            events = [{**ev, "timestamp": now_ms}]
        else:
            i = rng.choice(self._visible)
            events = [{"type": "heartbeat", "timestamp": now_ms}]
        tenant = self.tenants[self.users.tenant[i]]
        return i, tenant, _batch(self.users, i, tenant, events, now_ms)

    async def run(self, sink: Callable[[int, Tenant, Batch], Awaitable[None]]) -> None:
        self.started = trio.current_time()
        owed = 0.0
        next_t = self.started
        try:
            while True:
                next_t += LOAD_TICK_S
                await trio.sleep_until(next_t)
                owed += self.rate * LOAD_TICK_S
                while owed >= 1:
                    owed -= 1
                    i, tenant, batch = self.next_batch()
                    await sink(i, tenant, batch)
                    self.sent += 1
        finally:
            self.stopped = trio.current_time()

    def achieved_per_s(self) -> float:
        """Batches per second sent so far."""
        elapsed = (self.stopped or trio.current_time()) - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


@dataclass
class Outcome:
    """What one detector did."""

    label: str
    users: int
    fires: Fires
    spawn_s: float = math.nan
    rss_per_user_kib: float = math.nan
    #: Python heap per user by tracemalloc (the states alone, or a live actor's anatomy).
    heap_per_user_kib: float = math.nan
    idle_cpu_pct: float = math.nan
    idle_next_deadline_s: float | None = None
    window_cpu_pct: float = math.nan
    #: Window CPU time per trigger fired or batch delivered.
    cpu_us_per_event: float = math.nan
    window_involuntary_switches: int = 0
    load_per_s: float = 0.0
    off_plan_targets: int = 0
    spawn_phase: Phase | None = None
    window_phase: Phase | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def _idle_window(watch: Watch, fires: Fires, seconds: float) -> tuple[float, float | None]:
    """Process CPU (% of one core) over ``seconds`` of doing nothing; next trio deadline."""
    watch.pause_lag()
    await trio.sleep(0.2)  # let the lag task park
    watch.enter("idle")
    stats = trio.lowlevel.current_statistics()
    fires.idle = True
    c0, w0 = cpu_s(), time.perf_counter()
    await trio.sleep(seconds)
    c1, w1 = cpu_s(), time.perf_counter()
    fires.idle = False
    watch.resume_lag()
    return 100 * (c1 - c0) / (w1 - w0), stats.seconds_to_next_deadline


# ---- (a) and (c): the actors -------------------------------------------------------


async def actors_run(
    label: str,
    plan: Plan,
    spread_s: float,
    lead_s: float,
    guard: GcGuard,
    watch: Watch,
    *,
    measure_idle: bool,
    seed: int,
) -> Outcome:
    users = Users.make(plan.users, seed)
    tenants = bench_tenants(plan)
    fires = Fires()
    out = Outcome(label, plan.users, fires)
    clock = Clock()
    (t_send, t_recv), (c_send, c_recv) = feed_channels()

    async with trio.open_nursery() as nursery:
        feed: Feed = await nursery.start(Feed(t_recv, c_recv).run)
        registry: Registry = await nursery.start(
            Registry(clock, triggers_out=t_send, changes_out=c_send, gc_guard=guard).run
        )
        settings = {t.id: t.settings for t in tenants}
        targets: list[float] = []

        def on_message(m: FeedMessage) -> None:
            if isinstance(m, TriggerFired):
                seen = clock.now()
                s = m.state
                deadline = deadline_of(s, m.trigger, settings[s.tenant_id])
                i = users.index[s.user_id]
                if (
                    not users.busy[i]
                    and deadline is not None
                    and abs(deadline - targets[i]) > 0.002
                ):
                    fires.off_plan += 1
                fires.add(i, m.trigger, seen, m.at, deadline)

        feed.subscribe(on_message)
        gc.collect()
        await trio.sleep(0.5)
        rss0 = rss_kib()

        out.spawn_phase = watch.enter(f"{label}: spawn")
        t0 = clock.now()
        targets[:] = planned_deadlines(plan.users, t0 + lead_s, spread_s, seed)
        w0 = time.perf_counter()
        for i in range(plan.users):
            tenant, batch, on_plan = first_batch(users, i, tenants, targets[i], clock.now())
            out.off_plan_targets += not on_plan
            await registry.deliver(tenant, batch)
        # Wait until every actor has taken its first batch (a bench may poll).
        while sum(1 for s in registry.states() if s.total_events) < plan.users:  # noqa: ASYNC110
            await trio.sleep(0.05)
        out.spawn_s = time.perf_counter() - w0
        watch.enter(f"{label}: settle")
        await trio.sleep(0.5)
        rss1 = rss_kib()
        out.rss_per_user_kib = (rss1 - rss0) / plan.users
        out.extra["rss_before_mib"] = rss0 / 1024
        out.extra["rss_after_mib"] = rss1 / 1024
        out.extra["live"] = registry.live_count

        if measure_idle:
            out.idle_cpu_pct, out.idle_next_deadline_s = await _idle_window(
                watch, fires, plan.idle_s
            )

        # The window: from now until the last planned deadline, under load.
        load = Load(users, tenants, clock, plan.load_per_s)

        async def deliver(_i: int, tenant: Tenant, batch: Batch) -> None:
            await registry.deliver(tenant, batch)

        out.window_phase = watch.enter(f"{label}: window")
        c0, w0, sw0 = cpu_s(), time.perf_counter(), involuntary_switches()
        load_scope = trio.CancelScope()
        nursery.start_soon(_scoped, load_scope, load.run, deliver)
        await trio.sleep_until(clock.to_trio(t0 + lead_s + spread_s + GRACE_S))
        load_scope.cancel()
        c1, w1, sw1 = cpu_s(), time.perf_counter(), involuntary_switches()
        fires.close(users)
        out.window_cpu_pct = 100 * (c1 - c0) / (w1 - w0)
        out.window_involuntary_switches = sw1 - sw0
        out.cpu_us_per_event = 1e6 * (c1 - c0) / max(1, len(fires.rows) + load.sent)
        out.load_per_s = load.achieved_per_s()
        out.extra["stats"] = registry.stats()
        watch.enter(f"{label}: teardown")
        nursery.cancel_scope.cancel()
    return out


async def _scoped(
    scope: trio.CancelScope,
    fn: Callable[[Callable[[int, Tenant, Batch], Awaitable[None]]], Awaitable[None]],
    arg: Callable[[int, Tenant, Batch], Awaitable[None]],
) -> None:
    with scope:
        await fn(arg)


# ---- (b): the polling baseline ------------------------------------------------------


def build_state(
    users: Users, i: int, tenants: Sequence[Tenant], target: float, now: float
) -> tuple[UserState, bool]:
    """User ``i``'s state after its first batch, as the polling detector keeps it."""
    tenant, batch, on_plan = first_batch(users, i, tenants, target, now)
    s = apply_batch(new_state(tenant.id, batch, now), batch, now, tenant.settings)
    return evaluate(s, now, tenant.settings).state, on_plan


def state_heap_kib(n: int, seed: int) -> float:
    """Python heap per user (tracemalloc) of the polling detector's dict of states."""
    plan = Plan(users=n)
    users = Users.make(n, seed)
    tenants = bench_tenants(plan)
    now = time.time()
    gc.collect()
    tracemalloc.start()
    states = {i: build_state(users, i, tenants, now + 600, now)[0] for i in range(n)}
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del states
    return size / 1024 / n


async def polling_run(plan: Plan, idle_s: float, watch: Watch, *, seed: int) -> Outcome:
    """The cron-style baseline; its deadlines start after building and ``idle_s``."""
    users = Users.make(plan.users, seed)
    tenants = bench_tenants(plan)
    fires = Fires()
    out = Outcome("polling, 1 s scan", plan.users, fires)
    clock = Clock()
    states: dict[int, UserState] = {}
    scans: list[float] = []

    def th(i: int) -> TenantSettings:
        return tenants[users.tenant[i]].settings

    async def scanner() -> None:
        next_t = trio.current_time() + 1.0
        while True:
            await trio.sleep_until(next_t)
            while next_t <= trio.current_time():
                next_t += 1.0
            now = clock.now()
            s0 = time.perf_counter()
            for i, s in states.items():
                t = th(i)
                step = evaluate(s, now, t)
                if step.fired:
                    seen = clock.now()
                    for trigger, _ in step.fired:
                        fires.add(i, trigger, seen, now, deadline_of(step.state, trigger, t))
                if step.state is not s:
                    states[i] = step.state
            scans.append(time.perf_counter() - s0)

    async with trio.open_nursery() as nursery:
        gc.collect()
        await trio.sleep(0.5)
        rss0 = rss_kib()
        # Time a sample build, so the first deadline comes after building and idling.
        sample = Users.make(1000, seed + 100)
        w0 = time.perf_counter()
        for i in range(sample.n):
            build_state(sample, i, tenants, clock.now() + 600, clock.now())
        build_est = (time.perf_counter() - w0) * plan.users / sample.n
        lead_s = 2 * build_est + idle_s + 5
        out.extra["lead_s"] = lead_s

        out.spawn_phase = watch.enter("polling: build")
        t0 = clock.now()
        targets = planned_deadlines(plan.users, t0 + lead_s, plan.spread_s, seed)
        w0 = time.perf_counter()
        for i in range(plan.users):
            states[i], on_plan = build_state(users, i, tenants, targets[i], clock.now())
            out.off_plan_targets += not on_plan
            if i % 500 == 0:
                await trio.lowlevel.checkpoint()
        out.spawn_s = time.perf_counter() - w0
        await trio.sleep(0.5)
        out.rss_per_user_kib = (rss_kib() - rss0) / plan.users
        nursery.start_soon(scanner)
        out.idle_cpu_pct, out.idle_next_deadline_s = await _idle_window(watch, fires, idle_s)

        load = Load(users, tenants, clock, plan.load_per_s)

        async def apply(i: int, tenant: Tenant, batch: Batch) -> None:
            now = clock.now()
            states[i] = apply_batch(states[i], batch, now, tenant.settings)

        out.window_phase = watch.enter("polling: window")
        c0, w0, sw0 = cpu_s(), time.perf_counter(), involuntary_switches()
        load_scope = trio.CancelScope()
        nursery.start_soon(_scoped, load_scope, load.run, apply)
        await trio.sleep_until(clock.to_trio(t0 + lead_s + plan.spread_s + GRACE_S))
        load_scope.cancel()
        c1, w1, sw1 = cpu_s(), time.perf_counter(), involuntary_switches()
        fires.close(users)
        out.window_cpu_pct = 100 * (c1 - c0) / (w1 - w0)
        out.window_involuntary_switches = sw1 - sw0
        out.cpu_us_per_event = 1e6 * (c1 - c0) / max(1, len(fires.rows) + load.sent)
        out.load_per_s = load.achieved_per_s()
        out.extra["scan_ms_p50"] = 1000 * pct(scans, 50)
        out.extra["scan_ms_max"] = 1000 * max(scans) if scans else math.nan
        nursery.cancel_scope.cancel()
    return out


# ---- (d): what a live actor is made of ---------------------------------------------


async def anatomy_run(users_n: int, *, seed: int) -> tuple[float, list[tuple[str, float, float]]]:
    """Python heap per live actor by tracemalloc, and the allocation sites it comes from.

    Returns (KiB per actor, [(site, bytes per actor, objects per actor)]).
    """
    plan = Plan(users=users_n)
    users = Users.make(users_n, seed)
    tenants = bench_tenants(plan)
    clock = Clock()
    (t_send, t_recv), (c_send, c_recv) = feed_channels()
    async with trio.open_nursery() as nursery:
        await nursery.start(Feed(t_recv, c_recv).run)
        registry: Registry = await nursery.start(
            Registry(clock, triggers_out=t_send, changes_out=c_send).run
        )
        targets = planned_deadlines(users_n, clock.now() + 600, 60, seed)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for i in range(users_n):
            tenant, batch, _ = first_batch(users, i, tenants, targets[i], clock.now())
            await registry.deliver(tenant, batch)
        while sum(1 for s in registry.states() if s.total_events) < users_n:  # noqa: ASYNC110
            await trio.sleep(0.05)
        gc.collect()
        after = tracemalloc.take_snapshot()
        traced = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        nursery.cancel_scope.cancel()
    sites = []
    for stat in after.compare_to(before, "lineno")[:14]:
        frame = stat.traceback[0]
        where = frame.filename
        for marker in ("site-packages/", "/src/", "lib/python3.11/"):
            if marker in where:
                where = where.split(marker, 1)[1]
        sites.append(
            (f"{where}:{frame.lineno}", stat.size_diff / users_n, stat.count_diff / users_n)
        )
    return traced / 1024 / users_n, sites


# ---- running and reporting -------------------------------------------------------------


async def _main(
    plan: Plan,
) -> tuple[list[Outcome], Watch, tuple[float, list[tuple[str, float, float]]]]:
    watch = Watch()
    outcomes: list[Outcome] = []
    gc.callbacks.append(watch.gc_callback)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch.lag_task)
            a = await actors_run(
                "actors (GcGuard)",
                plan,
                plan.spread_s,
                plan.lead_s,
                GcGuard(),
                watch,
                measure_idle=True,
                seed=1,
            )
            outcomes.append(a)
            _cleanup()
            outcomes.append(await polling_run(plan, plan.idle_s, watch, seed=2))
            _cleanup()
            # Without freezing, spawning takes longer (full collections): leave room.
            lead = min(plan.lead_s, a.spawn_s * 2.5 + 10)
            outcomes.append(
                await actors_run(
                    "actors, no gc.freeze",
                    plan,
                    plan.nofreeze_spread_s,
                    lead,
                    GcGuard(freeze_every=sys.maxsize, collect_every_steps=sys.maxsize),
                    watch,
                    measure_idle=False,
                    seed=3,
                )
            )
            _cleanup()
            # The GcGuard before young collections were also driven by actor
            # steps (CPython's own allocation count only): the same plan as (a).
            outcomes.append(
                await actors_run(
                    "actors, young GC by count",
                    plan,
                    plan.spread_s,
                    plan.lead_s,
                    GcGuard(collect_every_steps=sys.maxsize),
                    watch,
                    measure_idle=False,
                    seed=1,
                )
            )
            _cleanup()
            anatomy = await anatomy_run(min(plan.users, 20_000), seed=4)
            _cleanup()
            outcomes[1].heap_per_user_kib = state_heap_kib(min(plan.users, 20_000), seed=5)
            nursery.cancel_scope.cancel()
    finally:
        gc.callbacks.remove(watch.gc_callback)
    return outcomes, watch, anatomy


def _round(value: float) -> float | None:
    """For JSON: None for inf and NaN."""
    return round(value, 3) if math.isfinite(value) else None


def _cleanup() -> None:
    """Free the last phase's users (frozen cycles need an unfreeze) before the next one."""
    gc.unfreeze()
    gc.collect()


def run(opts: Options) -> Report:
    """Run the phases and return the report."""
    plan = Plan.for_options(opts)
    outcomes, watch, (anatomy_kib, sites) = trio.run(_main, plan)
    a, p, nf, bc = outcomes
    report = Report(
        NAME,
        params={
            "users": plan.users,
            "lead_s": plan.lead_s,
            "spread_s": plan.spread_s,
            "idle_s": plan.idle_s,
            "nofreeze_spread_s": plan.nofreeze_spread_s,
            "load_per_s": plan.load_per_s,
            "busy_fraction": BUSY_FRACTION,
            "interaction_share": INTERACTION_SHARE,
            "gc_threshold": gc.get_threshold(),
        },
    )

    lat = Table(
        f"trigger lateness at {plan.users:,} live users, deadlines spread evenly over the window,"
        f" background load {plan.load_per_s:,.0f} batches/s (ms; seen by a Feed subscriber"
        " minus the rule's deadline; a planned trigger that never fired counts as inf)",
        [
            "detector",
            "window s",
            "fired",
            "never",
            "p50",
            "p90",
            "p99",
            "max",
            "wake p99",
            "load/s",
            "CPU %",
            "CPU µs/event",
            "preempted",
        ],
    )
    for o, spread in (
        (a, plan.spread_s),
        (p, plan.spread_s),
        (nf, plan.nofreeze_spread_s),
        (bc, plan.spread_s),
    ):
        ms, wake = o.fires.ms(0), o.fires.ms(1)
        lat.add(
            o.label,
            spread,
            len(o.fires.rows),
            o.fires.missing,
            pct(ms, 50),
            pct(ms, 90),
            pct(ms, 99),
            max(ms) if ms else math.nan,
            pct(wake, 99),
            o.load_per_s,
            o.window_cpu_pct,
            o.cpu_us_per_event,
            o.window_involuntary_switches,
        )

    res = Table(
        "resources per live user (idle: 10 s, nothing due, no load, lag task parked)",
        [
            "detector",
            "build/spawn s",
            "RSS KiB",
            "Python heap KiB",
            "idle CPU % of one core",
            "next due s",
        ],
    )
    res.add(
        a.label,
        a.spawn_s,
        a.rss_per_user_kib,
        anatomy_kib,
        a.idle_cpu_pct,
        a.idle_next_deadline_s,
    )
    # RSS deltas after the first phase say nothing: freed memory is reused.
    res.add(p.label, p.spawn_s, None, p.heap_per_user_kib, p.idle_cpu_pct, p.idle_next_deadline_s)
    res.add(nf.label, nf.spawn_s, None, None, None, None)
    res.add(bc.label, bc.spawn_s, None, None, None, None)

    anat = Table(
        f"what a live actor is made of: tracemalloc over spawning {min(plan.users, 20_000):,}"
        " actors, top allocation sites",
        ["site", "bytes per actor", "blocks per actor"],
    )
    for site, size, count in sites:
        anat.add(site, size, count)

    gct = Table(
        "event-loop lag (1 ms sleeper's oversleep) and GC pauses per phase, ms"
        " (max as wall/CPU: wall >> CPU means preempted by other processes)",
        [
            "phase",
            "lag p50",
            "lag p99",
            "lag max",
            "gen0 n",
            "gen1 n",
            "gen2 n",
            "gen0 max",
            "gen1 max",
            "gen2 max",
            "GC CPU s",
        ],
    )

    def wall_cpu(pair: tuple[float, float]) -> str:
        return f"{1000 * pair[0]:.1f}/{1000 * pair[1]:.1f}" if pair[0] else "-"

    for ph in watch.phases:
        if ph.name == "idle" or ph.name.endswith(("settle", "teardown")):
            continue
        gct.add(
            ph.name,
            ph.lag_ms(50),
            ph.lag_ms(99),
            wall_cpu(ph.lag_worst),
            len(ph.gc_pauses[0]),
            len(ph.gc_pauses[1]),
            len(ph.gc_pauses[2]),
            wall_cpu(ph.gc_worst[0]),
            wall_cpu(ph.gc_worst[1]),
            wall_cpu(ph.gc_worst[2]),
            ph.gc_cpu_total,
        )

    a_ms = a.fires.ms(0)
    p99, p_p99 = pct(a_ms, 99), pct(p.fires.ms(0), 99)
    targets = Table(
        "targets (issue 3)",
        ["figure", "actors", "polling 1 s", "target", "actors met"],
    )
    targets.add("p99 trigger lateness ms", p99, p_p99, f"< {TARGET_P99_MS:g}", p99 < TARGET_P99_MS)
    targets.add(
        "KiB per live user (polling: heap of its states)",
        a.rss_per_user_kib,
        p.heap_per_user_kib,
        f"<= {TARGET_KIB_PER_ACTOR:g}",
        a.rss_per_user_kib <= TARGET_KIB_PER_ACTOR,
    )
    targets.add(
        "idle CPU % of one core",
        a.idle_cpu_pct,
        p.idle_cpu_pct,
        f"< {TARGET_IDLE_CPU_PCT:g}",
        a.idle_cpu_pct < TARGET_IDLE_CPU_PCT,
    )
    a_window = a.window_phase
    nf_spawn, a_spawn = nf.spawn_phase, a.spawn_phase
    bc_window = bc.window_phase
    assert a_window is not None and nf_spawn is not None and a_spawn is not None
    assert bc_window is not None
    report.tables += [lat, res, gct, anat, targets]

    for o in (a, p, nf, bc):
        if o.off_plan_targets:
            report.notes.append(
                f"{o.label}: {o.off_plan_targets} users' deadlines could not be placed as planned"
                " (spawning ran past them); they fired at once"
            )
        if o.fires.during_idle:
            report.notes.append(
                f"{o.label}: {o.fires.during_idle} triggers fired during the idle window"
            )
        if o.fires.off_plan:
            report.notes.append(
                f"{o.label}: {o.fires.off_plan} non-busy users fired with a deadline off plan"
            )
    report.notes.append(
        f"actors: {a.extra['stats']}; RSS {a.extra['rss_before_mib']:.0f} ->"
        f" {a.extra['rss_after_mib']:.0f} MiB"
    )
    report.notes.append(
        f"polling: a scan of {plan.users:,} states takes {p.extra['scan_ms_p50']:.0f} ms"
        f" (max {p.extra['scan_ms_max']:.0f} ms), blocking the loop meanwhile"
    )

    def lat_figs(prefix: str, o: Outcome) -> None:
        ms = o.fires.ms(0)
        report.figures.update(
            {
                f"{prefix}_fires": len(o.fires.rows),
                f"{prefix}_never_fired": o.fires.missing,
                f"{prefix}_cpu_us_per_event": round(o.cpu_us_per_event, 1),
                f"{prefix}_changes_dropped": o.extra.get("stats", {}).get("changes_dropped"),
                f"{prefix}_lateness_p50_ms": _round(pct(ms, 50)),
                f"{prefix}_lateness_p90_ms": _round(pct(ms, 90)),
                f"{prefix}_lateness_p99_ms": _round(pct(ms, 99)),
                f"{prefix}_lateness_max_ms": _round(max(ms)) if ms else None,
                f"{prefix}_wake_p99_ms": _round(pct(o.fires.ms(1), 99)),
                f"{prefix}_rss_kib_per_user": round(o.rss_per_user_kib, 3),
                f"{prefix}_idle_cpu_pct": None
                if math.isnan(o.idle_cpu_pct)
                else round(o.idle_cpu_pct, 3),
                f"{prefix}_window_cpu_pct": round(o.window_cpu_pct, 1),
                f"{prefix}_load_per_s": round(o.load_per_s, 1),
                f"{prefix}_spawn_s": round(o.spawn_s, 2),
            }
        )

    lat_figs("actors", a)
    lat_figs("polling", p)
    lat_figs("nofreeze", nf)
    lat_figs("bycount", bc)
    report.figures.update(
        actors_window_lag_max_ms=round(a_window.lag_ms(100), 2),
        actors_window_lag_p99_ms=round(a_window.lag_ms(99), 3),
        actors_window_gen0_max_ms=round(a_window.gc_max_ms(0), 2),
        actors_window_gen1_max_ms=round(a_window.gc_max_ms(1), 2),
        bycount_window_gen0_max_ms=round(bc_window.gc_max_ms(0), 2),
        bycount_window_gen1_max_ms=round(bc_window.gc_max_ms(1), 2),
        actors_spawn_lag_max_ms=round(a_spawn.lag_ms(100), 2),
        nofreeze_spawn_lag_max_ms=round(nf_spawn.lag_ms(100), 2),
        nofreeze_spawn_gen2_max_ms=round(nf_spawn.gc_max_ms(2), 2),
        actors_heap_kib_per_actor=round(anatomy_kib, 3),
        actors_spawn_gen2_max_ms=round(a_spawn.gc_max_ms(2), 2),
        p99_target_met=p99 < TARGET_P99_MS,
        rss_target_met=a.rss_per_user_kib <= TARGET_KIB_PER_ACTOR,
        idle_cpu_target_met=a.idle_cpu_pct < TARGET_IDLE_CPU_PCT,
    )
    return report
