"""A notifier over a real SQLite store, talking to a real Slack stand-in.

Slack calls run inline in the trio thread (``run_inline``) against the stand-in
serving from its own thread, so tests on the autojump clock are deterministic:
virtual time cannot race ahead while a request is on the wire.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from tippen_rt.actors import Trigger, TriggerCleared, TriggerFired, UserState
from tippen_rt.alerts import (
    AlertMessage,
    ClientOptions,
    DeliveryPolicy,
    Notifier,
    SlackDefaults,
)
from tippen_rt.clock import Clock
from tippen_rt.http import TenantDirectory
from tippen_rt.persist import (
    Alert,
    EventStore,
    create_tenant,
    list_alerts,
    run_inline,
    update_tenant,
)
from tippen_rt.tenants import Tenant, TenantSettings

from .slack_server import CHANNEL_NAME, TOKEN, SlackStandIn, slack_stand_in

T0 = 1_750_000_000.0
PUBLIC_URL = "https://tippen.example.com"

#: Fast slack-sdk retries, so scripted trouble costs little real time.
FAST_CLIENT = ClientOptions(timeout_s=5, connection_retry_interval_s=0.01)


@dataclass
class Actors:
    """Records what the notifier tells the actors (the Registry's side of it)."""

    sent: list[tuple[int, str, float]] = field(default_factory=list)
    acknowledged: list[tuple[int, str, str]] = field(default_factory=list)
    claimed: list[tuple[int, str, str | None, int]] = field(default_factory=list)

    async def acknowledge(self, tenant_id: int, user_id: str, by: str) -> bool:
        self.acknowledged.append((tenant_id, user_id, by))
        return True

    async def alert_sent(self, tenant_id: int, user_id: str, at: float) -> bool:
        self.sent.append((tenant_id, user_id, at))
        return True

    async def claim(self, tenant_id: int, user_id: str, by: str | None, agent_id: int = 0) -> bool:
        self.claimed.append((tenant_id, user_id, by, agent_id))
        return True


def user_state(tenant_id: int, user: str, now: float, **changes: Any) -> UserState:
    """A live user on /billing for five minutes with some history."""
    state = UserState(
        tenant_id=tenant_id,
        user_id=user,
        email=f"{user}@example.com",
        tier="free_trial",
        session_started_at=now - 900,
        last_event_at=now - 20,
        current_route="/billing",
        route_entered_at=now - 300,
        total_events=42,
        total_errors=3,
    )
    return state.replace(**changes)


@dataclass
class Env:
    """A running notifier and what is around it."""

    store: EventStore
    clock: Clock
    directory: TenantDirectory
    tenant: Tenant
    actors: Actors
    notifier: Notifier
    seen: list[AlertMessage]

    def t(self) -> float:
        """Virtual seconds since the test started."""
        return self.clock.now() - T0

    async def fire(
        self,
        user: str = "ann",
        trigger: Trigger = Trigger.STUCK_ON_PAGE,
        reason: str = "on /billing for 5 min without moving on",
        **state: Any,
    ) -> Alert:
        """A trigger fires now for ``user``; return the alert recorded for it."""
        now = self.clock.now()
        await self.notifier.on_trigger(
            TriggerFired(user_state(self.tenant.id, user, now, **state), trigger, reason, now)
        )
        tid = self.tenant.id
        return (await self.store.read(lambda c: list_alerts(c, tid, user_id=user, limit=1)))[0]

    async def clear(
        self, user: str = "ann", trigger: Trigger = Trigger.STUCK_ON_PAGE, *, left: bool = False
    ) -> None:
        """The user recovers from ``trigger`` now (or leaves, with ``left``)."""
        now = self.clock.now()
        await self.notifier.on_trigger(
            TriggerCleared(user_state(self.tenant.id, user, now), trigger, now, user_left=left)
        )

    async def alerts(self, user: str | None = None) -> list[Alert]:
        """The tenant's alerts, newest first."""
        tid = self.tenant.id
        return await self.store.read(lambda c: list_alerts(c, tid, user_id=user, limit=10_000))

    async def settle(self) -> None:
        """Wait until every delivery is done (or waiting on nothing)."""
        with trio.fail_after(3600):
            await self.notifier.wait_settled()


async def configure(
    store: EventStore, directory: TenantDirectory, tenant: Tenant, **settings: Any
) -> Tenant:
    """Change the tenant's settings and make the directory see it."""
    new = dataclasses.replace(tenant.settings, **settings)
    updated = await store.write(lambda c: update_tenant(c, tenant.name, settings=new))
    await directory.reload()
    return updated


def webhook_settings(slack: SlackStandIn) -> dict[str, Any]:
    """Tenant settings for webhook mode."""
    return {"slack_webhook_url": slack.webhook_url}


def bot_settings(slack: SlackStandIn) -> dict[str, Any]:
    """Tenant settings for bot mode."""
    return {"slack_bot_token": TOKEN, "slack_channel": CHANNEL_NAME}


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with slack_stand_in() as stand_in:
        yield stand_in


async def start_notifier(
    nursery: trio.Nursery,
    store: EventStore,
    directory: TenantDirectory,
    clock: Clock,
    slack: SlackStandIn,
    *,
    actors: Actors | None = None,
    policy: DeliveryPolicy | None = None,
    seen: list[AlertMessage] | None = None,
    start: bool = True,
) -> Notifier:
    """A notifier whose Slack calls run inline, pointed at the stand-in."""
    notifier = Notifier(
        store,
        directory,
        actors or Actors(),
        clock,
        public_url=PUBLIC_URL,
        slack=SlackDefaults(api_url=slack.api_url),
        policy=policy or DeliveryPolicy(client=FAST_CLIENT),
        offload=run_inline,
    )
    if seen is not None:
        notifier.subscribe(seen.append)
    if start:
        await nursery.start(notifier.run)
    return notifier


@pytest.fixture
async def env(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    inline_store: EventStore,
    slack: SlackStandIn,
) -> AsyncIterator[Env]:
    """A notifier for tenant ``acme`` (no Slack yet: tests configure it)."""
    store = inline_store
    tenant, _ = await store.write(lambda c: create_tenant(c, "acme", [], TenantSettings()))
    directory = TenantDirectory(store)
    await directory.reload()
    clock = Clock.starting_at(T0)
    actors = Actors()
    seen: list[AlertMessage] = []
    notifier = await start_notifier(
        nursery, store, directory, clock, slack, actors=actors, seen=seen
    )
    yield Env(store, clock, directory, tenant, actors, notifier, seen)
