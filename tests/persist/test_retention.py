"""Retention: old data goes, in small batches, at the time it expires."""

from __future__ import annotations

import trio
import trio.testing
from trio.testing import MockClock

from tippen_rt.clock import Clock
from tippen_rt.events import validate_batch
from tippen_rt.persist import (
    EventStore,
    RetentionService,
    count_events,
    create_tenant,
    insert_batch,
    update_tenant,
)
from tippen_rt.tenants import TenantSettings

DAY = 86_400.0
T0 = 1_750_000_000.0


async def add_events(
    store: EventStore, tenant_id: int, user: str, n: int, at: float, batch_id: str | None = None
) -> None:
    at_ms = int(at * 1000)
    doc: dict[str, object] = {
        "apiKey": "k",
        "userId": user,
        "subscriptionTier": "paid",
        "events": [{"type": "click", "element": f"e{i}", "timestamp": at_ms} for i in range(n)],
    }
    if batch_id:
        doc["batchId"] = batch_id
    batch = validate_batch(doc, at_ms)
    await store.write(lambda c: insert_batch(c, tenant_id, batch))


async def test_events_past_retention_are_deleted_when_they_expire(
    inline_store: EventStore, autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    store = inline_store
    clock = Clock.starting_at(T0)
    short, _ = await store.write(lambda c: create_tenant(c, "short", []))
    await store.write(
        lambda c: update_tenant(c, "short", settings=TenantSettings(retention_days=7))
    )
    long, _ = await store.write(lambda c: create_tenant(c, "long", []))  # default 90 days
    await add_events(store, short.id, "a", 30, T0 - 8 * DAY)  # already past 7 days
    await add_events(store, short.id, "b", 20, T0 - 6 * DAY)  # expires in 1 day
    await add_events(store, long.id, "c", 10, T0 - 8 * DAY)  # 82 days left

    service = await nursery.start(RetentionService(store, clock, batch_rows=7).run)
    await trio.testing.wait_all_tasks_blocked()
    assert await store.read(count_events) == 30
    assert service.sweeps == 1
    # It sleeps (at most an hour at a time) until "b" expires, not before.
    await trio.sleep(DAY - 120)
    assert await store.read(lambda c: count_events(c, short.id)) == 20
    await trio.sleep(3600 + 120)
    assert await store.read(lambda c: count_events(c, short.id)) == 0
    assert await store.read(lambda c: count_events(c, long.id)) == 10
    service.stop()


async def test_a_sweep_deletes_in_small_transactions(inline_store: EventStore) -> None:
    store = inline_store
    clock = Clock.starting_at(T0)
    tenant, _ = await store.write(lambda c: create_tenant(c, "t", []))
    for i in range(5):
        await add_events(store, tenant.id, f"u{i}", 50, T0 - 100 * DAY, batch_id=f"b{i}")
    await add_events(store, tenant.id, "new", 5, T0 - DAY, batch_id="fresh")
    report = await RetentionService(store, clock, batch_rows=40).sweep()
    assert report.events == 250
    assert report.transactions >= 250 // 40 + 1
    assert report.batch_ids == 5
    assert await store.read(count_events) == 5
    kept = await store.read(lambda c: c.execute("SELECT batch_id FROM ingest_batches").fetchall())
    assert kept == [("fresh",)]


async def test_ingest_commits_between_retention_batches(store: EventStore) -> None:
    # A threaded store, as in production: a write queued during a long sweep
    # commits long before the sweep ends.
    clock = Clock.starting_at(T0)
    tenant, _ = await store.write(lambda c: create_tenant(c, "t", []))
    for i in range(80):
        await add_events(store, tenant.id, f"u{i}", 50, T0 - 100 * DAY)
    service = RetentionService(store, clock, batch_rows=50)
    order: list[str] = []

    async def sweep() -> None:
        await service.sweep()
        order.append("sweep done")

    async def ingest() -> None:
        await trio.sleep(0.001)
        await add_events(store, tenant.id, "live", 1, clock.now())
        order.append("ingest committed")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sweep)
        nursery.start_soon(ingest)
    assert order == ["ingest committed", "sweep done"]
    assert await store.read(count_events) == 1
