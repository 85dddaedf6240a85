"""The Hub on virtual time: coalescing, lag and resync, triggers, leaving, tenants."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from tippen_rt.actors import Feed, Registry, UserChanged, feed_channels
from tippen_rt.alerts import SlackDefaults
from tippen_rt.clock import Clock
from tippen_rt.events import validate_batch
from tippen_rt.http import Hub
from tippen_rt.http._hub import Subscriber, alert_event
from tippen_rt.http._views import settings_json
from tippen_rt.tenants import Tenant, TenantSettings

T0 = 1_750_000_000.0
ACME = Tenant(id=1, name="acme", api_key="client_a", admin_token_hash="x")
OTHER = Tenant(id=2, name="other", api_key="client_b", admin_token_hash="y")


@dataclass
class HubEnv:
    clock: Clock
    registry: Registry
    feed: Feed
    hub: Hub

    async def send(self, tenant: Tenant, user: str, *events: dict[str, Any]) -> None:
        now_ms = self.clock.now_ms()
        doc = {
            "apiKey": tenant.api_key,
            "userId": user,
            "subscriptionTier": "free_trial",
            "events": [{"timestamp": now_ms, **e} for e in (events or ({"type": "heartbeat"},))],
        }
        await self.registry.deliver(tenant, validate_batch(doc, now_ms))
        await trio.testing.wait_all_tasks_blocked()

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)
        await trio.testing.wait_all_tasks_blocked()


@pytest.fixture
async def hub_env(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> AsyncIterator[HubEnv]:
    clock = Clock.starting_at(T0)
    (t_send, t_recv), (c_send, c_recv) = feed_channels()
    feed = await nursery.start(Feed(t_recv, c_recv).run)
    registry = await nursery.start(Registry(clock, triggers_out=t_send, changes_out=c_send).run)
    hub = await nursery.start(
        Hub(registry, feed, wall_ms=clock.now_ms, user_interval_s=0.25, queue_messages=8).run
    )
    yield HubEnv(clock, registry, feed, hub)


def drain(sub: Subscriber) -> list[dict[str, Any]]:
    """Every message queued now (None stands for "send a snapshot")."""
    out: list[dict[str, Any]] = []
    while True:
        try:
            text = sub._recv.receive_nowait()
        except trio.WouldBlock:
            return out
        if sub.resync:
            out.append({"type": "RESYNC"})
            sub.resync = False
            continue
        if text:
            out.append(orjson.loads(text))


async def test_the_first_change_goes_out_at_once_then_at_most_four_a_second(
    hub_env: HubEnv,
    autojump_clock: trio.testing.MockClock,
) -> None:
    with hub_env.hub.subscribe(ACME.id) as sub:
        await hub_env.send(ACME, "u1", {"type": "route", "route": "/a"})
        first = drain(sub)
        assert [m["type"] for m in first] == ["user"]
        assert first[0]["user"]["currentRoute"] == "/a"
        # 20 changes in one second: 0.05 s apart.
        for i in range(20):
            await hub_env.sleep(0.05)
            await hub_env.send(ACME, "u1", {"type": "click", "element": f"button#b{i}"})
        await hub_env.sleep(0.3)  # let the last coalesced update out
        updates = [m for m in drain(sub) if m["type"] == "user"]
        assert 4 <= len(updates) <= 5
        assert updates[-1]["user"]["totalEvents"] == 21  # the latest state wins
        times = [m["serverTime"] for m in updates]
        assert all(b - a >= 250 for a, b in itertools.pairwise(times))


async def test_users_are_coalesced_independently(
    hub_env: HubEnv, autojump_clock: trio.testing.MockClock
) -> None:
    with hub_env.hub.subscribe(ACME.id) as sub:
        for user in ("a", "b", "c"):
            await hub_env.send(ACME, user)
        assert sorted(m["user"]["userId"] for m in drain(sub)) == ["a", "b", "c"]


async def test_a_subscriber_that_lags_gets_one_snapshot_not_a_backlog(
    hub_env: HubEnv, autojump_clock: trio.testing.MockClock
) -> None:
    with hub_env.hub.subscribe(ACME.id) as sub:
        for i in range(30):  # 30 first changes for a queue of 8
            await hub_env.send(ACME, f"u{i}")
        assert sub.resync and sub.resyncs == 1
        assert await sub.next() is None  # "send a snapshot now", the stale backlog dropped
        assert not sub.resync
        snapshot = orjson.loads(hub_env.hub.snapshot(ACME.id))
        assert len(snapshot["users"]) == 30
        # And then live messages flow again.
        await hub_env.sleep(1)
        await hub_env.send(ACME, "u0", {"type": "route", "route": "/after"})
        message = await sub.next()
        assert message is not None and orjson.loads(message)["user"]["currentRoute"] == "/after"


async def test_a_slow_subscriber_never_slows_the_others(
    hub_env: HubEnv, autojump_clock: trio.testing.MockClock
) -> None:
    with hub_env.hub.subscribe(ACME.id) as slow, hub_env.hub.subscribe(ACME.id) as fast:
        for i in range(30):
            await hub_env.send(ACME, f"u{i}")
            assert len(drain(fast)) == 1
        assert slow.resync and not fast.resync


async def test_triggers_carry_their_reason_and_leaving_is_announced(
    hub_env: HubEnv, autojump_clock: trio.testing.MockClock
) -> None:
    settings = TenantSettings(session_timeout_s=60, presence_timeout_s=30, unload_grace_s=5)
    tenant = Tenant(id=1, name="acme", api_key="client_a", admin_token_hash="x", settings=settings)
    with hub_env.hub.subscribe(ACME.id) as sub:
        await hub_env.send(tenant, "u1", *({"type": "error", "message": "x"} for _ in range(4)))
        messages = drain(sub)
        trigger = next(m for m in messages if m["type"] == "trigger")
        assert trigger["event"] == "fired" and trigger["trigger"] == "multiple_errors"
        assert trigger["reason"]
        await hub_env.sleep(0.3)
        users = [m for m in messages + drain(sub) if m["type"] == "user"]
        assert users[-1]["user"]["needsSupport"] is True
        assert users[-1]["user"]["triggers"][0]["reason"] == trigger["reason"]
        await hub_env.send(tenant, "u1", {"type": "visibility", "state": "unload"})
        await hub_env.sleep(120)
        left = [m for m in drain(sub) if m["type"] == "user_left"]
        assert [(m["userId"], m["reason"]) for m in left] == [("u1", "page closed")]


async def test_tenants_see_only_their_own_users(
    hub_env: HubEnv, autojump_clock: trio.testing.MockClock
) -> None:
    with hub_env.hub.subscribe(OTHER.id) as other:
        await hub_env.send(ACME, "acme-user")
        await hub_env.send(OTHER, "other-user")
        assert [m["user"]["userId"] for m in drain(other)] == ["other-user"]
        snapshot = orjson.loads(hub_env.hub.snapshot(OTHER.id))
        assert [u["userId"] for u in snapshot["users"]] == ["other-user"]


async def test_changes_lost_upstream_resync_everyone(
    hub_env: HubEnv, autojump_clock: trio.testing.MockClock
) -> None:
    with hub_env.hub.subscribe(ACME.id) as sub:
        await hub_env.send(ACME, "u1")
        drain(sub)
        hub_env.registry.changes_dropped += 1  # as when the feed's channel was full
        state = hub_env.registry.state(ACME.id, "u1")
        assert state is not None
        hub_env.hub.on_feed(UserChanged(state, hub_env.clock.now()))
        assert await sub.next() is None


async def test_subscribers_end_when_the_hub_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = Clock.starting_at(T0)
    (t_send, t_recv), (c_send, c_recv) = feed_channels()
    async with trio.open_nursery() as nursery:
        feed = await nursery.start(Feed(t_recv, c_recv).run)
        registry = await nursery.start(Registry(clock, triggers_out=t_send, changes_out=c_send).run)
        hub = await nursery.start(Hub(registry, feed, wall_ms=clock.now_ms).run)
        with hub.subscribe(ACME.id) as sub:
            nursery.cancel_scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope(shield=True), pytest.raises(trio.EndOfChannel):
                await sub.next()


async def test_settings_reach_only_their_tenants_subscribers(
    hub_env: HubEnv, autojump_clock: trio.testing.MockClock
) -> None:
    view = settings_json(ACME, SlackDefaults())
    with (
        hub_env.hub.subscribe(ACME.id) as first,
        hub_env.hub.subscribe(ACME.id) as second,
        hub_env.hub.subscribe(OTHER.id) as other,
    ):
        hub_env.hub.settings_changed(ACME.id, view)
        assert drain(first) == drain(second) == [{"type": "settings", **view}]
        assert drain(other) == []
        hub_env.hub.settings_changed(3, view)  # a tenant with no dashboard open
        assert drain(first) == drain(other) == []


async def test_settings_never_wait_for_a_full_queue(
    hub_env: HubEnv, autojump_clock: trio.testing.MockClock
) -> None:
    view = settings_json(ACME, SlackDefaults())
    with hub_env.hub.subscribe(ACME.id) as slow, hub_env.hub.subscribe(ACME.id) as fast:
        for _ in range(20):  # a queue of 8 that nobody reads
            hub_env.hub.settings_changed(ACME.id, view)
            assert drain(fast) == [{"type": "settings", **view}]
        assert slow.resync  # it gets a snapshot, and the page reads the settings again
        assert await slow.next() is None


def test_alert_events_are_named_from_the_message() -> None:
    class AlertOpened:
        alert = None

    class AlertUpdated:
        alert = None

    class Custom:
        event = "resolved"

    assert alert_event(AlertOpened()) == "opened"
    assert alert_event(AlertUpdated()) == "updated"
    assert alert_event(Custom()) == "resolved"
