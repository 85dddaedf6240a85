"""Snapshots and start-up recovery: a restart loses no live user and no timer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio.testing import MockClock

from tippen_rt.actors import (
    Feed,
    Presence,
    Registry,
    SnapshotError,
    Snapshotter,
    SummaryWriter,
    Trigger,
    UserState,
    decode_state,
    encode_state,
    feed_channels,
    recover,
)
from tippen_rt.clock import Clock
from tippen_rt.events import validate_batch
from tippen_rt.persist import (
    EventStore,
    RedisSnapshotStore,
    SnapshotStore,
    SqliteSnapshotStore,
    create_tenant,
    insert_batch,
)
from tippen_rt.tenants import Tenant, TenantSettings

from ..support.redis_server import RedisServer
from .conftest import T0, Live

times = st.floats(0, 2e9, allow_nan=False)


@given(
    state=st.builds(
        UserState,
        tenant_id=st.integers(1, 2**31),
        user_id=st.text(min_size=1, max_size=50),
        email=st.none() | st.text(max_size=30),
        tier=st.sampled_from(["free_trial", "paid", "enterprise"]),
        session_started_at=times,
        last_event_at=times,
        last_interaction_at=st.none() | times,
        current_route=st.none() | st.text(max_size=30),
        route_entered_at=times,
        visible=st.booleans(),
        visible_since=times,
        last_presence_at=times,
        present_since=times,
        unloaded_at=st.none() | times,
        recent_interactions=st.lists(times, max_size=5).map(tuple),
        recent_errors=st.lists(times, max_size=5).map(tuple),
        total_events=st.integers(0, 2**40),
        total_errors=st.integers(0, 2**40),
        last_error_at=st.none() | times,
        last_error_message=st.none() | st.text(max_size=30),
        active=st.lists(
            st.tuples(st.sampled_from(list(Trigger)), times, st.text(max_size=20)), max_size=4
        ).map(tuple),
        last_fired=st.lists(st.tuples(st.sampled_from(list(Trigger)), times), max_size=4).map(
            tuple
        ),
        needs_support=st.booleans(),
        support_triggered_at=st.none() | times,
        acknowledged_at=st.none() | times,
        acknowledged_by=st.none() | st.text(max_size=30),
        last_alert_sent_at=st.none() | times,
        clock_offset_ms=st.integers(-(2**40), 2**40),
        last_input_at=st.none() | times,
        input_since=times,
        focused=st.none() | st.booleans(),
        presence=st.sampled_from([p.value for p in Presence]),
        presence_since=times,
        observed_from=times,
        name=st.none() | st.text(max_size=30),
        claimed_by=st.none() | st.text(max_size=30),
        claimed_by_agent=st.integers(0, 2**31),
        claimed_at=st.none() | times,
    ),
    taken=times,
)
def test_snapshots_round_trip(state: UserState, taken: float) -> None:
    assert decode_state(encode_state(state, taken)) == (state, taken)


def test_a_version_1_snapshot_is_read_with_presence_from_what_it_knew() -> None:
    # Written by the release before presence: 28 fields, episodes without reasons.
    v1 = [1, T0 + 60, 1, "ann", "ann@example.com", "paid", T0, T0 + 50, T0 + 40, "/billing"]
    v1 += [T0, True, T0, T0 + 50, T0, None, [T0 + 40], [], 3, 0, None, None]
    v1 += [[["stuck_on_page", T0 + 45]], [["stuck_on_page", T0 + 45]], True, T0 + 45]
    v1 += [None, None, None, 0]
    state, taken = decode_state(orjson.dumps(v1))
    assert taken == T0 + 60
    assert state.active == ((Trigger.STUCK_ON_PAGE, T0 + 45, "Stuck on a page"),)
    assert state.last_fired == ((Trigger.STUCK_ON_PAGE, T0 + 45),)
    assert (state.last_input_at, state.input_since) == (T0 + 40, T0 + 40)
    assert (state.presence, state.presence_since, state.focused) == ("active", T0 + 50, None)
    assert state.current_route == "/billing" and state.total_events == 3


def test_a_version_2_snapshot_is_read_without_the_fields_added_since() -> None:
    state = UserState(
        1, "ann", "ann@example.com", "paid", T0, T0 + 50, name="Ann Lee", claimed_by="Ada"
    )
    v3 = orjson.loads(encode_state(state, T0 + 60))
    fields = list(UserState._fields)
    v2_count = fields.index("observed_from") + 1  # the release before display names
    v2 = [2, *v3[1 : 2 + v2_count]]
    bare = state.replace(name=None, claimed_by=None)
    assert decode_state(orjson.dumps(v2)) == (bare, T0 + 60)
    # A version 3 snapshot from before the claim fields were appended: their defaults.
    before_claims = v3[: 2 + fields.index("claimed_by")]
    assert decode_state(orjson.dumps(before_claims)) == (state.replace(claimed_by=None), T0 + 60)
    assert decode_state(orjson.dumps(v3)) == (state, T0 + 60)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"{",
        b"[2, 1.0]",
        b"[1, 1.0, 2]",
        b"[3, 1.0]",
        b'"x"',
        b"[1, 1.0" + b", null" * 28 + b"]",
        b"[2, 1.0" + b", null" * 34 + b"]",
        b"[2, 1.0" + b", 1" * 35 + b"]",
        b"[4, 1.0" + b", 1" * 35 + b"]",
    ],
)
def test_unreadable_snapshots_are_refused(blob: bytes) -> None:
    with pytest.raises(SnapshotError):
        decode_state(blob)


# ---- the stores ------------------------------------------------------------


async def check_store(store: SnapshotStore) -> None:
    assert await store.load_all() == ({}, None)
    await store.save({(1, "a"): b"A", (1, "b:c"): b"B", (2, "a"): b"C"}, watermark=100.5)
    assert await store.load_all() == (
        {(1, "a"): b"A", (1, "b:c"): b"B", (2, "a"): b"C"},
        100.5,
    )
    await store.save({(1, "a"): b"A2"}, deleted=[(2, "a")], watermark=102.5)
    await store.delete([(1, "b:c")])
    assert await store.load_all() == ({(1, "a"): b"A2"}, 102.5)
    await store.ping()


async def test_sqlite_snapshot_store(store: EventStore) -> None:
    await check_store(SqliteSnapshotStore(store))


async def test_redis_snapshot_store(redis_server: RedisServer) -> None:
    store = RedisSnapshotStore(redis_server.url, prefix="t1")
    await check_store(store)
    many = {(1, f"user-{i}"): b"x" * 100 for i in range(12_000)}
    await store.save(many)
    assert len((await store.load_all())[0]) == 12_001
    store.close()


# ---- one process lifetime on virtual time ------------------------------------


@asynccontextmanager
async def incarnation(
    store: EventStore, snapshots: SnapshotStore, tenant: Tenant, clock: Clock
) -> AsyncIterator[Live]:
    """Everything a process runs around the registry, then a graceful stop."""
    async with trio.open_nursery() as nursery:
        (t_send, t_recv), (c_send, c_recv) = feed_channels()
        feed = await nursery.start(Feed(t_recv, c_recv, keep_per_tenant=10_000).run)
        registry = await nursery.start(Registry(clock, triggers_out=t_send, changes_out=c_send).run)
        snapshotter = Snapshotter(registry, snapshots, clock)
        summaries = SummaryWriter(registry, store, clock)
        report = await recover(registry, store, snapshots, {tenant.id: tenant}, clock)
        await nursery.start(snapshotter.run)
        await nursery.start(summaries.run)
        live = Live(clock=clock, registry=registry, feed=feed, tenant=tenant, summaries=summaries)
        live.sent.extend([snapshotter, report])
        await trio.testing.wait_all_tasks_blocked()
        yield live
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def crashing(
    snapshots: SnapshotStore, tenant: Tenant, clock: Clock
) -> AsyncIterator[tuple[Live, Snapshotter]]:
    """A process that dies without its final snapshot (kill -9) when the block ends.

    Its snapshotter writes only when the test calls ``save_round()``.
    """
    async with trio.open_nursery() as nursery:
        (t_send, _), (c_send, _) = feed_channels(capacity=1000)
        registry = await nursery.start(Registry(clock, triggers_out=t_send, changes_out=c_send).run)
        live = Live(clock=clock, registry=registry, feed=None, tenant=tenant)  # type: ignore[arg-type]
        yield live, Snapshotter(registry, snapshots, clock)
        nursery.cancel_scope.cancel()


async def send_stored(
    live: Live, store: EventStore, user: str, *events: dict[str, Any], tier: str = "paid"
) -> None:
    """Store a batch, then deliver it, as ingest does (so replay can find it)."""
    now_ms = live.clock.now_ms()
    batch = validate_batch(
        {
            "apiKey": "k",
            "userId": user,
            "subscriptionTier": tier,
            "events": [{"timestamp": now_ms, **e} for e in events],
        },
        now_ms,
    )
    await store.write(lambda c: insert_batch(c, live.tenant.id, batch))
    await live.registry.deliver(live.tenant, batch)
    await trio.testing.wait_all_tasks_blocked()


ROUTE = {"type": "route", "route": "/billing"}
CLICK = {"type": "click", "element": "b"}
BEAT = {"type": "heartbeat", "input": 0}
TYPING = {"type": "heartbeat", "input": 5, "focused": True}


@pytest.fixture
async def world(inline_store: EventStore) -> tuple[EventStore, SnapshotStore, Tenant, Clock]:
    tenant, _ = await inline_store.write(lambda c: create_tenant(c, "acme", []))
    return inline_store, SqliteSnapshotStore(inline_store), tenant, Clock.starting_at(T0)


async def test_graceful_restart_keeps_state_and_remaining_timer(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, tenant, clock = world
    async with incarnation(store, snapshots, tenant, clock) as live:
        await send_stored(live, store, "ann", ROUTE, CLICK)
        for t in (30, 60, 90, 120):
            await live.at(t)
            await send_stored(live, store, "ann", TYPING)
        before = live.registry.state(tenant.id, "ann")
    await trio.sleep_until(clock.to_trio(T0 + 150))  # 30 s of downtime
    async with incarnation(store, snapshots, tenant, clock) as live:
        assert live.registry.state(tenant.id, "ann") == before.replace(observed_from=T0 + 150)
        for t in (150, 180, 210, 240, 270, 300, 330):
            await live.at(t)
            await send_stored(live, store, "ann", TYPING)
        # 5 minutes of trying on the page, counted across the restart: fires at 300.
        assert live.fired("ann") == [(Trigger.STUCK_ON_PAGE, 300.0)]


async def test_a_trigger_due_during_downtime_fires_once_the_user_is_seen_again(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, tenant, clock = world
    async with incarnation(store, snapshots, tenant, clock) as live:
        await send_stored(live, store, "fay", ROUTE, CLICK, CLICK, tier="free_trial")
        for t in (30, 60, 90):
            await live.at(t)
            await send_stored(live, store, "fay", BEAT, tier="free_trial")
        await live.at(100)
    await trio.sleep_until(clock.to_trio(T0 + 1000))  # inactivity was due at 900
    async with incarnation(store, snapshots, tenant, clock) as live:
        # Restored, but nothing from the browser yet: no alert on a guess.
        await live.at(1010)
        assert live.fired("fay") == []
        state = live.registry.state(tenant.id, "fay")
        assert state is not None and state.presence == "idle"
        # The tracker's retry arrives with the heartbeats it kept meanwhile.
        await send_stored(live, store, "fay", BEAT, tier="free_trial")
        assert (Trigger.LONG_INACTIVITY, 1010.0) in live.fired("fay")


async def test_a_restored_user_never_heard_from_again_leaves(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, tenant, clock = world
    async with incarnation(store, snapshots, tenant, clock) as live:
        await send_stored(live, store, "fay", ROUTE, tier="free_trial")
        await live.at(30)
    await trio.sleep_until(clock.to_trio(T0 + 1000))
    async with incarnation(store, snapshots, tenant, clock) as live:
        await live.at(3000)
        assert live.fired("fay") == []
        # Away 90 s after the restart, gone 5 min later.
        assert live.left() == [("fay", 1390.0, "no heartbeat for 23 min")]


async def test_a_fired_trigger_does_not_fire_again_after_restart(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, tenant, clock = world
    async with incarnation(store, snapshots, tenant, clock) as live:
        await send_stored(live, store, "eve", *[{"type": "error", "message": "x"}] * 4)
        assert live.fired("eve") == [(Trigger.MULTIPLE_ERRORS, 0.0)]
        await live.at(10)
    async with incarnation(store, snapshots, tenant, clock) as live:
        await live.at(20)
        assert live.fired("eve") == []
        state = live.registry.state(tenant.id, "eve")
        assert state is not None and state.needs_support


async def test_a_session_that_timed_out_during_downtime_ends(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, tenant, clock = world
    async with incarnation(store, snapshots, tenant, clock) as live:
        await send_stored(live, store, "ann", ROUTE)
        await live.at(100)
    await trio.sleep_until(clock.to_trio(T0 + 5000))
    async with incarnation(store, snapshots, tenant, clock) as live:
        assert live.left() == [("ann", 5000.0, "session timed out")]
        assert live.registry.live_count == 0
        await live.at(5010)
    assert (await snapshots.load_all())[0] == {}
    row = await store.read(
        lambda c: c.execute(
            "SELECT session_open FROM user_activity_summary WHERE user_id = 'ann'"
        ).fetchone()
    )
    assert row == (0,)


async def test_events_after_the_last_snapshot_are_replayed(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, tenant, clock = world
    async with crashing(snapshots, tenant, clock) as (live, snapshotter):
        await send_stored(live, store, "ann", ROUTE)
        await snapshotter.save_round()  # the last snapshot round before the crash
        await live.at(5)
        await send_stored(live, store, "ann", CLICK, {"type": "route", "route": "/next"})
        await send_stored(live, store, "bob", ROUTE)  # first seen after the snapshot
    async with incarnation(store, snapshots, tenant, clock) as live:
        ann = live.registry.state(tenant.id, "ann")
        bob = live.registry.state(tenant.id, "bob")
        assert ann is not None and bob is not None
        assert (ann.total_events, ann.current_route) == (3, "/next")
        assert ann.route_entered_at == T0 + 5
        assert bob.total_events == 1


async def test_without_snapshots_recent_events_are_replayed(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, tenant, clock = world
    async with crashing(snapshots, tenant, clock) as (live, _):
        await send_stored(live, store, "old", ROUTE)
        await live.at(2000)  # "old" is more than 30 min back: not live any more
        await send_stored(live, store, "ann", ROUTE, CLICK)
    await snapshots.delete([(tenant.id, "old"), (tenant.id, "ann")])
    async with incarnation(store, snapshots, tenant, clock) as live:
        assert {s.user_id for s in live.registry.states()} == {"ann"}
        ann = live.registry.state(tenant.id, "ann")
        assert ann is not None and ann.total_events == 2


async def test_only_changed_users_are_written_each_round(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, tenant, clock = world
    async with incarnation(store, snapshots, tenant, clock) as live:
        snapshotter: Snapshotter = live.sent[0]
        for user in ("a", "b", "c"):
            await send_stored(live, store, user, ROUTE)
        # The first change is written at once ("a"), the next ones ("b", "c")
        # one interval later, together.
        await live.at(3)
        assert (snapshotter.rounds, snapshotter.written) == (2, 3)
        await send_stored(live, store, "b", CLICK)
        await live.at(6)
        assert (snapshotter.rounds, snapshotter.written) == (3, 4)
        await live.at(59)
        assert snapshotter.rounds == 3  # nothing changed: nothing written, no wake-ups
        await live.at(62)
        # a and c go idle at 60 s (b at 63 s): a change of presence is a change
        assert (snapshotter.rounds, snapshotter.written) == (4, 6)


async def test_after_a_crash_only_events_after_the_watermark_are_read(
    world: Any, autojump_clock: MockClock
) -> None:
    # An idle user's snapshot is old, but the last round's watermark says it
    # is still current: recovery reads only the recent events.
    store, snapshots, _, clock = world
    # Presence that lasts an hour: nothing about "idle" changes without events.
    patient = TenantSettings(presence_timeout_s=3600, idle_after_s=3600)
    tenant, _ = await store.write(lambda c: create_tenant(c, "patient", [], patient))
    async with crashing(snapshots, tenant, clock) as (live, snapshotter):
        await send_stored(live, store, "idle", ROUTE)
        await snapshotter.save_round()
        await live.at(600)
        await send_stored(live, store, "busy", ROUTE)
        await snapshotter.save_round()  # watermark at 600
        await live.at(605)
        await send_stored(live, store, "busy", CLICK)  # after the last round: replayed
    async with incarnation(store, snapshots, tenant, clock) as live:
        idle = live.registry.state(tenant.id, "idle")
        busy = live.registry.state(tenant.id, "busy")
        assert idle is not None and idle.total_events == 1
        assert busy is not None and busy.total_events == 2
        report = live.sent[1]
        assert report.replayed_events == 1  # the click; nothing of "idle"


async def test_replayed_heartbeats_keep_their_input_and_focus(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, tenant, clock = world
    async with crashing(snapshots, tenant, clock) as (live, _):
        await send_stored(live, store, "ann", ROUTE)
        await live.at(30)
        await send_stored(live, store, "ann", TYPING)
        await live.at(40)
        await send_stored(live, store, "ann", {"type": "heartbeat", "input": 0, "focused": False})
        before = live.registry.state(tenant.id, "ann")
    await snapshots.delete([(tenant.id, "ann")])
    async with incarnation(store, snapshots, tenant, clock) as live:
        ann = live.registry.state(tenant.id, "ann")
        assert before is not None and ann is not None
        assert (ann.last_input_at, ann.focused) == (T0 + 30, False)
        assert (ann.last_input_at, ann.input_since, ann.focused) == (
            before.last_input_at,
            before.input_since,
            before.focused,
        )
