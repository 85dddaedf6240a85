"""Recovery never forgets a live user (issue 17): one test per way it used to.

Each scenario is a sequence of process lifetimes on virtual time sharing one
SQLite file (the source of truth) and one snapshot store.  A lifetime ends
gracefully (final snapshot) or by a crash (kill -9: nothing more is written).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager

import trio
import trio.testing
from trio.testing import MockClock

from tippen_rt.actors import (
    Feed,
    RecoveryReport,
    Registry,
    Snapshotter,
    Trigger,
    encode_state,
    feed_channels,
    recover,
)
from tippen_rt.clock import Clock
from tippen_rt.persist import (
    EventStore,
    RedisSnapshotStore,
    SnapshotStore,
    SqliteSnapshotStore,
    create_tenant,
)
from tippen_rt.tenants import Tenant, TenantSettings

from ..support.redis_server import RedisServer
from .conftest import T0, Live
from .test_snapshots import ROUTE, send_stored

Key = tuple[int, str]
#: Nobody goes away or times out during these tests: only restarts lose users.
PATIENT = TenantSettings(
    presence_timeout_s=7200, idle_after_s=7200, session_timeout_s=7200, away_end_s=7200
)


class Killable:
    """A snapshot store that a crash cuts off: after ``kill()`` nothing reaches it."""

    def __init__(self, inner: SnapshotStore) -> None:
        self.inner = inner
        self.name = inner.name
        self.dead = False

    def kill(self) -> None:
        self.dead = True

    async def save(
        self,
        snapshots: Mapping[Key, bytes],
        deleted: Iterable[Key] = (),
        watermark: float | None = None,
    ) -> bool:
        if self.dead:
            raise ConnectionError("the process was killed")
        return await self.inner.save(snapshots, deleted, watermark)

    async def load_all(self) -> tuple[dict[Key, bytes], float | None]:
        return await self.inner.load_all()

    async def delete(self, keys: Iterable[Key]) -> None:
        if self.dead:
            raise ConnectionError("the process was killed")
        await self.inner.delete(keys)

    async def ping(self) -> None:
        await self.inner.ping()


@asynccontextmanager
async def lifetime(
    store: EventStore,
    snapshots: SnapshotStore,
    tenant: Tenant,
    clock: Clock,
    *,
    crash: bool,
    snapshotter: bool = True,
) -> AsyncIterator[tuple[Live, RecoveryReport]]:
    """One process: recover, serve with a snapshotter every 2 s, then stop or crash."""
    killable = Killable(snapshots)
    async with trio.open_nursery() as nursery:
        (t_send, t_recv), (c_send, c_recv) = feed_channels()
        feed = await nursery.start(Feed(t_recv, c_recv, keep_per_tenant=10_000).run)
        registry = await nursery.start(Registry(clock, triggers_out=t_send, changes_out=c_send).run)
        report = await recover(registry, store, killable, {tenant.id: tenant}, clock)
        if snapshotter:
            await nursery.start(Snapshotter(registry, killable, clock, interval_s=2.0).run)
        await trio.testing.wait_all_tasks_blocked()
        yield Live(clock=clock, registry=registry, feed=feed, tenant=tenant), report
        if crash:
            killable.kill()
        nursery.cancel_scope.cancel()


async def patient_tenant(store: EventStore) -> Tenant:
    tenant, _ = await store.write(lambda c: create_tenant(c, "acme", [], PATIENT))
    return tenant


def live_users(live: Live) -> set[str]:
    return {s.user_id for s in live.registry.states()}


async def test_users_restored_by_replay_are_snapshotted_before_the_next_crash(
    inline_store: EventStore, autojump_clock: MockClock
) -> None:
    store, clock = inline_store, Clock.starting_at(T0)
    snapshots = SqliteSnapshotStore(store)
    tenant = await patient_tenant(store)
    # Three users send once; the process dies before any snapshot round.
    async with lifetime(store, snapshots, tenant, clock, crash=True, snapshotter=False) as (
        live,
        _,
    ):
        for user in ("a", "b", "c"):
            await send_stored(live, store, user, ROUTE)
    # They come back by replay.  A quiet minute, then one other user sends,
    # a round writes that user and a watermark, and the process dies again.
    async with lifetime(store, snapshots, tenant, clock, crash=True) as (live, _):
        assert live_users(live) == {"a", "b", "c"}
        await live.at(65)
        await send_stored(live, store, "d", ROUTE)
        await live.at(70)
    async with lifetime(store, snapshots, tenant, clock, crash=False) as (live, _):
        assert live_users(live) == {"a", "b", "c", "d"}


async def test_a_user_with_a_garbage_snapshot_is_rebuilt_from_all_their_events(
    inline_store: EventStore, autojump_clock: MockClock
) -> None:
    store, clock = inline_store, Clock.starting_at(T0)
    snapshots = SqliteSnapshotStore(store)
    tenant = await patient_tenant(store)
    async with lifetime(store, snapshots, tenant, clock, crash=False) as (live, _):
        await send_stored(live, store, "ann", ROUTE, {"type": "click", "element": "b"})
        await send_stored(live, store, "bob", ROUTE)
        await live.at(300)
        await send_stored(live, store, "bob", {"type": "click", "element": "b"})
    # ann's snapshot is garbage; the watermark (300 s) is far newer than her events.
    await snapshots.save({(tenant.id, "ann"): b"\x00not a snapshot"})
    async with lifetime(store, snapshots, tenant, clock, crash=False) as (live, report):
        assert live_users(live) == {"ann", "bob"}
        ann = live.registry.state(tenant.id, "ann")
        assert ann is not None and (ann.total_events, ann.current_route) == (2, "/billing")
        assert report.snapshots_bad == 1


async def test_a_snapshot_filed_under_another_user_never_stops_the_start(
    inline_store: EventStore, autojump_clock: MockClock
) -> None:
    store, clock = inline_store, Clock.starting_at(T0)
    snapshots = SqliteSnapshotStore(store)
    tenant = await patient_tenant(store)
    async with lifetime(store, snapshots, tenant, clock, crash=False) as (live, _):
        await send_stored(live, store, "ann", ROUTE)
        await send_stored(live, store, "bob", ROUTE, {"type": "click", "element": "b"})
        await live.at(10)
        ann = live.registry.state(tenant.id, "ann")
    assert ann is not None
    # ann's snapshot copied under bob's key (and under a user nobody knows).
    blob = encode_state(ann, clock.now())
    await snapshots.save({(tenant.id, "bob"): blob, (tenant.id, "zed"): blob})
    async with lifetime(store, snapshots, tenant, clock, crash=False) as (live, report):
        assert live_users(live) == {"ann", "bob"}
        bob = live.registry.state(tenant.id, "bob")
        assert bob is not None and bob.total_events == 2
        assert report.snapshots_bad == 2


async def test_redis_that_lost_its_data_gets_no_watermark_before_the_full_rewrite(
    redis_server: RedisServer,
) -> None:
    store = RedisSnapshotStore(redis_server.url, prefix="t17")
    try:
        await store.save({(1, "a"): b"A", (1, "b"): b"B"}, watermark=100.0)
        redis_server.client().flushall()  # restarted empty
        lost = await store.save({(1, "c"): b"C"}, watermark=200.0)
        assert lost
        # Only c is there: a watermark now would say a and b need no replay.
        assert await store.load_all() == ({(1, "c"): b"C"}, None)
        # The full rewrite that follows may set it.
        assert not await store.save({(1, "a"): b"A", (1, "b"): b"B"}, watermark=201.0)
        assert (await store.load_all())[1] == 201.0
    finally:
        store.close()


async def wait_for_snapshots(snapshots: SnapshotStore, count: int) -> None:
    """Until the store holds ``count`` snapshots: Redis is outside trio, nothing to wait on."""
    with trio.fail_after(15):
        while len((await snapshots.load_all())[0]) != count:  # noqa: ASYNC110
            await trio.sleep(0.1)


async def test_after_redis_lost_its_data_the_next_round_rewrites_every_live_user(
    inline_store: EventStore, redis_server: RedisServer
) -> None:
    store, clock = inline_store, Clock()
    tenant = await patient_tenant(store)
    snapshots = RedisSnapshotStore(redis_server.url, prefix="t17b")
    try:
        async with lifetime(store, snapshots, tenant, clock, crash=True) as (live, _):
            for user in ("a", "b", "c"):
                await send_stored(live, store, user, ROUTE)
            await wait_for_snapshots(snapshots, 3)
            redis_server.client().flushall()
            with trio.fail_after(10):
                while True:  # the service notices at once, before the next round
                    try:
                        await snapshots.ping()
                    except ConnectionError:
                        break
                    await trio.sleep(0.1)
            await send_stored(live, store, "d", ROUTE)
            await wait_for_snapshots(snapshots, 4)
            await snapshots.ping()  # intact again
        blobs, watermark = await snapshots.load_all()
        assert len(blobs) == 4 and watermark is not None
    finally:
        snapshots.close()


async def test_a_trigger_that_fired_before_a_crash_is_open_after_replay_not_fired_again(
    inline_store: EventStore, autojump_clock: MockClock
) -> None:
    store, clock = inline_store, Clock.starting_at(T0)
    snapshots = SqliteSnapshotStore(store)
    tenant = await patient_tenant(store)
    errors = [{"type": "error", "message": "boom"}] * 4
    async with lifetime(store, snapshots, tenant, clock, crash=True, snapshotter=False) as (
        live,
        _,
    ):
        await send_stored(live, store, "eve", ROUTE, *errors)
        assert [t for t, _ in live.fired("eve")] == [Trigger.MULTIPLE_ERRORS]
        await live.at(20)
        await send_stored(live, store, "eve", {"type": "heartbeat", "input": 1})
    async with lifetime(store, snapshots, tenant, clock, crash=False) as (live, _):
        await live.at(30)
        await send_stored(live, store, "eve", {"type": "heartbeat", "input": 1})
        eve = live.registry.state(tenant.id, "eve")
        assert eve is not None and eve.active_triggers == {Trigger.MULTIPLE_ERRORS}
        assert eve.reason(Trigger.MULTIPLE_ERRORS) == "4 errors in 5 min"
        assert live.fired("eve") == []  # replayed as open: no second alert
        await live.at(400)  # the burst leaves the window: the episode ends, as it would have
        assert [t for t, _ in live.cleared("eve")] == [Trigger.MULTIPLE_ERRORS]
