"""Stopping the service while a Slack call is on the wire: no lost, no doubled message.

Real time and real worker threads here, as in production; every wait is bounded.
"""

from __future__ import annotations

from pathlib import Path

import trio

from tippen_rt.actors import Trigger, TriggerFired
from tippen_rt.alerts import DeliveryPolicy, Notifier, SlackDefaults
from tippen_rt.clock import Clock
from tippen_rt.http import TenantDirectory
from tippen_rt.persist import Alert, EventStore, create_tenant, list_alerts
from tippen_rt.tenants import TenantSettings

from .conftest import FAST_CLIENT, PUBLIC_URL, Actors, user_state
from .slack_server import SlackStandIn


async def fire_and_stop_while_on_the_wire(
    db: Path, slack: SlackStandIn, grace_s: float
) -> list[Alert]:
    """Fire one alert, stop the notifier while Slack is answering, return the alerts."""
    store = EventStore(db)
    async with trio.open_nursery() as outer:
        await outer.start(store.run)
        settings = TenantSettings(slack_webhook_url=slack.webhook_url)
        tenant, _ = await store.write(lambda c: create_tenant(c, "acme", [], settings))
        directory = TenantDirectory(store)
        await directory.reload()
        clock = Clock()
        notifier = Notifier(
            store,
            directory,
            Actors(),
            clock,
            public_url=PUBLIC_URL,
            slack=SlackDefaults(api_url=slack.api_url),
            policy=DeliveryPolicy(shutdown_grace_s=grace_s, client=FAST_CLIENT),
        )
        with trio.fail_after(10):
            async with trio.open_nursery() as live:
                await live.start(notifier.run)
                now = clock.now()
                state = user_state(tenant.id, "ann", now)
                await notifier.on_trigger(TriggerFired(state, Trigger.STUCK_ON_PAGE, "stuck", now))
                # Wait until the post is on the wire.
                assert await trio.to_thread.run_sync(slack.got_request.wait, 5)
                live.cancel_scope.cancel()
            alerts = await store.read(lambda c: list_alerts(c, tenant.id))
        await store.close()
    return alerts


async def test_a_post_on_the_wire_finishes_and_is_recorded_before_stopping(
    tmp_path: Path, slack: SlackStandIn
) -> None:
    slack.slow_next(1, 0.3)
    [alert] = await fire_and_stop_while_on_the_wire(tmp_path / "a.db", slack, grace_s=5.0)
    # Recorded as sent: the next start will not post it again.
    assert (alert.delivery_status, alert.attempts) == ("sent", 1)
    assert len(slack.posts) == 1


async def test_a_post_slower_than_the_grace_is_left_pending_for_the_next_start(
    tmp_path: Path, slack: SlackStandIn
) -> None:
    slack.hang_next(1)
    [alert] = await fire_and_stop_while_on_the_wire(tmp_path / "b.db", slack, grace_s=0.1)
    assert (alert.delivery_status, alert.attempts) == ("pending", 0)
    assert slack.posts == []
