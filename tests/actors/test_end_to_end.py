"""Batches posted over HTTP reach the actors, and a trigger fires on time."""

from __future__ import annotations

from typing import Any

import orjson
import trio
from trio.testing import MockClock

from tippen_rt.actors import Feed, Registry, SummaryWriter, Trigger, TriggerFired, feed_channels
from tippen_rt.clock import Clock
from tippen_rt.config import Settings
from tippen_rt.http import TRACK_PATH, AppServices, TenantDirectory, create_app
from tippen_rt.persist import EventStore, create_tenant

from ..conftest import ORIGIN, TRACKER_HEADERS
from .conftest import T0


async def test_a_trigger_fires_at_the_right_time_after_http_posts(
    autojump_clock: MockClock,
    inline_store: EventStore,
    settings: Settings,
    nursery: trio.Nursery,
) -> None:
    # SQLite runs inline: a worker thread would let virtual time race ahead.
    store = inline_store
    tenant, _ = await store.write(lambda c: create_tenant(c, "acme", [ORIGIN]))
    clock = Clock.starting_at(T0)
    (t_send, t_recv), (c_send, c_recv) = feed_channels()
    feed = await nursery.start(Feed(t_recv, c_recv).run)
    registry = await nursery.start(Registry(clock, triggers_out=t_send, changes_out=c_send).run)
    await nursery.start(SummaryWriter(registry, store, clock).run)
    directory = TenantDirectory(store)
    await directory.reload()
    app = create_app(
        AppServices(
            settings=settings,
            store=store,
            tenants=directory,
            sink=registry,
            wall_ms=clock.now_ms,
            registry=registry,
        )
    )
    client: Any = app.test_client()

    async def post(*events: dict[str, Any]) -> None:
        body = {
            "apiKey": tenant.api_key,
            "userId": "ann",
            "subscriptionTier": "paid",
            "events": [{"timestamp": clock.now_ms(), **e} for e in events],
        }
        response = await client.post(TRACK_PATH, data=orjson.dumps(body), headers=TRACKER_HEADERS)
        assert response.status_code == 200, await response.get_data()

    await post({"type": "route", "route": "/billing"})
    for t in range(30, 331, 30):
        await trio.sleep_until(clock.to_trio(T0 + t))
        await post({"type": "heartbeat", "input": 3, "focused": True})
    fired = [
        (m.trigger, m.at - T0)
        for m in feed.recent_triggers[tenant.id]
        if isinstance(m, TriggerFired)
    ]
    state = registry.state(tenant.id, "ann")
    assert fired == [(Trigger.STUCK_ON_PAGE, 300.0)], (state, clock.now() - T0)
    state = registry.state(tenant.id, "ann")
    assert state is not None and state.total_events == 12 and state.needs_support
