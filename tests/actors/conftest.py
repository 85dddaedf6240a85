"""A live registry on virtual time, and helpers to drive users through it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import trio
import trio.testing

from tippen_rt.actors import (
    Feed,
    Registry,
    SummaryWriter,
    Trigger,
    TriggerCleared,
    TriggerFired,
    UserLeft,
    feed_channels,
)
from tippen_rt.clock import Clock
from tippen_rt.events import validate_batch
from tippen_rt.persist import EventStore
from tippen_rt.tenants import Tenant, TenantSettings

T0 = 1_750_000_000.0  # the wall clock at the start of every test


@dataclass
class Live:
    """The registry and everything around it, at virtual time."""

    clock: Clock
    registry: Registry
    feed: Feed
    tenant: Tenant
    summaries: SummaryWriter | None = None
    sent: list[Any] = field(default_factory=list)

    def t(self) -> float:
        """Seconds since the test started."""
        return self.clock.now() - T0

    async def send(
        self,
        user: str,
        *events: dict[str, Any],
        tier: str = "free_trial",
        sent_at_ms: int | None = None,
        settings: TenantSettings | None = None,
    ) -> None:
        """Deliver one batch now and let the actor process it."""
        now_ms = self.clock.now_ms()
        doc: dict[str, Any] = {
            "apiKey": self.tenant.api_key,
            "userId": user,
            "userEmail": f"{user}@example.com",
            "subscriptionTier": tier,
            "events": [{"timestamp": now_ms, **e} for e in events],
        }
        if sent_at_ms is not None:
            doc["sentAt"] = sent_at_ms
        tenant = self.tenant if settings is None else replace(self.tenant, settings=settings)
        await self.registry.deliver(tenant, validate_batch(doc, now_ms))
        await trio.testing.wait_all_tasks_blocked()

    async def at(self, seconds: float) -> None:
        """Advance virtual time to ``seconds`` after the start."""
        await trio.sleep_until(self.clock.to_trio(T0 + seconds))
        await trio.testing.wait_all_tasks_blocked()

    def fired(self, user: str | None = None) -> list[tuple[Trigger, float]]:
        """(trigger, seconds since start) for every trigger that fired."""
        return [
            (m.trigger, round(m.at - T0, 3))
            for m in self.feed.recent_triggers[self.tenant.id]
            if isinstance(m, TriggerFired) and (user is None or m.state.user_id == user)
        ]

    def cleared(self, user: str | None = None) -> list[tuple[Trigger, float]]:
        """(trigger, seconds since start) for every episode that ended."""
        return [
            (m.trigger, round(m.at - T0, 3))
            for m in self.feed.recent_triggers[self.tenant.id]
            if isinstance(m, TriggerCleared) and (user is None or m.state.user_id == user)
        ]

    def left_triggers(self, user: str | None = None) -> list[tuple[Trigger, float]]:
        """(trigger, seconds since start) for every episode that ended as "user left"."""
        return [
            (m.trigger, round(m.at - T0, 3))
            for m in self.feed.recent_triggers[self.tenant.id]
            if isinstance(m, TriggerCleared)
            and m.user_left
            and (user is None or m.state.user_id == user)
        ]

    def left(self) -> list[tuple[str, float, str]]:
        """(user, seconds since start, reason) for every session that ended."""
        return [
            (m.state.user_id, round(m.at - T0, 3), m.reason)
            for m in self.feed.recent_changes[self.tenant.id]
            if isinstance(m, UserLeft)
        ]


TENANT = Tenant(id=1, name="acme", api_key="client_test", admin_token_hash="x")


@pytest.fixture
async def live(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> AsyncIterator[Live]:
    clock = Clock.starting_at(T0)
    (t_send, t_recv), (c_send, c_recv) = feed_channels(capacity=10_000)
    feed = await nursery.start(Feed(t_recv, c_recv, keep_per_tenant=10_000).run)
    registry = await nursery.start(Registry(clock, triggers_out=t_send, changes_out=c_send).run)
    yield Live(clock=clock, registry=registry, feed=feed, tenant=TENANT)


@pytest.fixture
async def live_with_store(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, inline_store: EventStore
) -> AsyncIterator[Live]:
    store = inline_store
    from tippen_rt.persist import create_tenant

    tenant, _ = await store.write(lambda c: create_tenant(c, "acme", []))
    clock = Clock.starting_at(T0)
    (t_send, t_recv), (c_send, c_recv) = feed_channels(capacity=10_000)
    feed = await nursery.start(Feed(t_recv, c_recv, keep_per_tenant=10_000).run)
    registry = await nursery.start(Registry(clock, triggers_out=t_send, changes_out=c_send).run)
    summaries = await nursery.start(SummaryWriter(registry, store, clock).run)
    yield Live(clock=clock, registry=registry, feed=feed, tenant=tenant, summaries=summaries)
