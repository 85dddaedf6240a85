"""A removed tenant (``tippen-rt tenant remove``) takes its live users with it:
their actors end without a summary or alert, their snapshots go, and no
restart brings them back."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from tippen_rt.actors import (
    Feed,
    Registry,
    Snapshotter,
    encode_state,
    feed_channels,
    recover,
    summary_row,
)
from tippen_rt.clock import Clock
from tippen_rt.persist import (
    EventStore,
    SqliteSnapshotStore,
    create_tenant,
    list_tenants,
    remove_tenant,
    upsert_summaries,
)

from .conftest import T0
from .test_snapshots import ROUTE, incarnation, send_stored


@pytest.fixture
async def world(inline_store: EventStore) -> tuple[Any, ...]:
    tenant, _ = await inline_store.write(lambda c: create_tenant(c, "acme", []))
    return inline_store, SqliteSnapshotStore(inline_store), tenant, Clock.starting_at(T0)


async def test_dropping_a_tenant_ends_only_its_actors_and_deletes_their_snapshots(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, acme, clock = world
    beta, _ = await store.write(lambda c: create_tenant(c, "beta", []))
    async with incarnation(store, snapshots, acme, clock) as live:
        snapshotter: Snapshotter = live.sent[0]
        await send_stored(live, store, "ann", ROUTE)
        await send_stored(live, store, "al", ROUTE)
        await send_stored(replace(live, tenant=beta), store, "bo", ROUTE)
        await snapshotter.save_round()
        assert set((await snapshots.load_all())[0]) == {
            (acme.id, "ann"),
            (acme.id, "al"),
            (beta.id, "bo"),
        }
        assert sorted(live.registry.drop_tenant(acme.id)) == ["al", "ann"]
        await trio.testing.wait_all_tasks_blocked()
        registry: Registry = live.registry
        assert registry.live_count_of(acme.id) == 0 and registry.state(acme.id, "ann") is None
        assert registry.is_live(beta.id, "bo") and registry.live_count == 1
        await snapshotter.save_round()
        assert set((await snapshots.load_all())[0]) == {(beta.id, "bo")}
        assert registry.drop_tenant(acme.id) == []  # once is enough
    # No goodbye: a dropped user did not "leave", so no summary says so.
    assert live.left() == []


async def test_a_removed_tenants_snapshots_are_not_restored_but_deleted(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, acme, clock = world
    beta, _ = await store.write(lambda c: create_tenant(c, "beta", []))
    async with incarnation(store, snapshots, acme, clock) as live:
        await send_stored(live, store, "ann", ROUTE)
        await send_stored(replace(live, tenant=beta), store, "bo", ROUTE)
        ann = live.registry.state(acme.id, "ann")
        bo = live.registry.state(beta.id, "bo")
        assert ann is not None and bo is not None
    await store.write(lambda c: remove_tenant(c, "acme", now_ms=int(T0 * 1000)))
    # The service wrote ann's snapshot once more before it learnt of the
    # removal (or Redis, which the CLI does not reach, still holds it).
    await snapshots.save(
        {ann.key: encode_state(ann, clock.now()), bo.key: encode_state(bo, clock.now())}
    )
    tenants = {t.id: t for t in await store.read(list_tenants)}
    async with trio.open_nursery() as nursery:
        (t_send, t_recv), (c_send, c_recv) = feed_channels()
        await nursery.start(Feed(t_recv, c_recv).run)
        registry = await nursery.start(Registry(clock, triggers_out=t_send, changes_out=c_send).run)
        report = await recover(registry, store, snapshots, tenants, clock)
        assert report.users_restored == 1
        assert registry.state(beta.id, "bo") is not None
        assert registry.state(acme.id, "ann") is None
        assert set((await snapshots.load_all())[0]) == {bo.key}
        nursery.cancel_scope.cancel()


async def test_a_summary_flushed_after_the_removal_is_left_out(
    world: Any, autojump_clock: MockClock
) -> None:
    store, snapshots, acme, clock = world
    async with incarnation(store, snapshots, acme, clock) as live:
        await send_stored(live, store, "ann", ROUTE)
        state = live.registry.state(acme.id, "ann")
        assert state is not None
        await store.write(lambda c: remove_tenant(c, "acme", now_ms=clock.now_ms()))
        # The service has not heard yet: its summary writer flushes ann once more.
        row = summary_row(state, clock.now(), True)
        assert await store.write(lambda c: upsert_summaries(c, [row])) == 0
        summaries = await store.read(
            lambda c: c.execute("SELECT count(*) FROM user_activity_summary").fetchone()[0]
        )
        assert summaries == 0
