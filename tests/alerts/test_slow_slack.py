"""A Slack that never answers slows neither ingest nor the actors.

Here the notifier runs its Slack calls in real worker threads, as in
production, against a stand-in that holds every request.  Everything else
(HTTP ingest, SQLite inline, the actors) runs on the autojump clock; the
channels between actors, feed and notifier hold a single message, so if the
notifier waited for Slack anywhere on the trigger path, actors and then
ingest would stall and the test would hit its deadline.
"""

from __future__ import annotations

from typing import Any

import orjson
import trio
from trio.testing import MockClock

from tippen_rt.actors import Feed, Registry, Trigger, TriggerFired, feed_channels
from tippen_rt.alerts import DeliveryPolicy, Notifier, SlackDefaults
from tippen_rt.clock import Clock
from tippen_rt.config import Settings
from tippen_rt.http import TRACK_PATH, AppServices, TenantDirectory, create_app
from tippen_rt.persist import EventStore, create_tenant, list_alerts
from tippen_rt.tenants import TenantSettings

from ..conftest import ORIGIN, TRACKER_HEADERS
from .conftest import FAST_CLIENT, PUBLIC_URL, T0
from .slack_server import SlackStandIn

USERS = [f"user-{i}" for i in range(12)]


async def test_a_hanging_slack_blocks_neither_ingest_nor_actors(
    autojump_clock: MockClock,
    inline_store: EventStore,
    settings: Settings,
    nursery: trio.Nursery,
    slack: SlackStandIn,
) -> None:
    store = inline_store
    tenant_settings = TenantSettings(slack_webhook_url=slack.webhook_url)
    tenant, _ = await store.write(lambda c: create_tenant(c, "acme", [ORIGIN], tenant_settings))
    clock = Clock.starting_at(T0)
    directory = TenantDirectory(store)
    await directory.reload()
    (t_send, t_recv), (c_send, c_recv) = feed_channels(capacity=1)
    feed = await nursery.start(Feed(t_recv, c_recv).run)
    registry = Registry(clock, triggers_out=t_send, changes_out=c_send, mailbox_size=1)
    notifier = Notifier(
        store,
        directory,
        registry,
        clock,
        public_url=PUBLIC_URL,
        slack=SlackDefaults(api_url=slack.api_url),
        policy=DeliveryPolicy(delivery_tasks=2, queue_size=3, client=FAST_CLIENT),
    )
    feed.subscribe_triggers(notifier.on_trigger)
    await nursery.start(notifier.run)
    await nursery.start(registry.run)
    app = create_app(
        AppServices(
            settings=settings,
            store=store,
            tenants=directory,
            sink=registry,
            wall_ms=clock.now_ms,
            registry=registry,
            feed=feed,
        )
    )
    client: Any = app.test_client()
    slack.hang_next(10_000)

    async def post(user: str, *events: dict[str, Any]) -> None:
        body = {
            "apiKey": tenant.api_key,
            "userId": user,
            "subscriptionTier": "paid",
            "events": [{"timestamp": clock.now_ms(), **e} for e in events],
        }
        response = await client.post(TRACK_PATH, data=orjson.dumps(body), headers=TRACKER_HEADERS)
        assert response.status_code == 200, await response.get_data()

    errors = [{"type": "error", "message": f"boom {i}"} for i in range(4)]
    with trio.fail_after(600):
        for user in USERS:  # four errors: "multiple errors" fires at once for each
            await post(user, {"type": "route", "route": "/billing"}, *errors)
        for t in range(30, 331, 30):  # and they stay on /billing: "stuck" at 5 min
            await trio.sleep_until(clock.to_trio(T0 + t))
            for user in USERS:
                await post(user, {"type": "heartbeat", "input": 2, "focused": True})

    fired = {
        (m.trigger, round(m.at - T0, 3))
        for m in feed.recent_triggers[tenant.id]
        if isinstance(m, TriggerFired)
    }
    assert fired == {(Trigger.MULTIPLE_ERRORS, 0.0), (Trigger.STUCK_ON_PAGE, 300.0)}
    alerts = await store.read(lambda c: list_alerts(c, tenant.id, limit=1000))
    assert len(alerts) == 2 * len(USERS)  # every trigger recorded, none waited for Slack
    assert {a.delivery_status for a in alerts if a.trigger == "multiple_errors"} == {"pending"}
    assert {a.delivery_status for a in alerts if a.trigger == "stuck_on_page"} == {"suppressed"}
    assert slack.posts == []
    assert notifier.backlog <= 2 + 3  # in flight + queued; the rest wait in SQLite
    assert slack.held <= 2  # at most one request per delivery task is on the wire
