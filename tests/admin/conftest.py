"""Two tenants, a live registry, the hub and the real app: what admin tests drive.

The app runs in-process (quart-trio's test client) on a real SQLite file and
a real registry on the real clock; events go in through the real ingest
endpoint.  Each tenant's admin logs in with their own test client (their own
cookie jar).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from quart.testing import WebsocketResponseError

from tippen_rt.actors import Feed, Registry, feed_channels
from tippen_rt.alerts import Notifier
from tippen_rt.calls import CallBoard
from tippen_rt.clock import Clock
from tippen_rt.config import Settings
from tippen_rt.http import TRACK_PATH, AppServices, Hub, TenantDirectory, create_app
from tippen_rt.persist import EventStore, create_tenant, update_tenant
from tippen_rt.tenants import Tenant, TenantSettings

from ..conftest import ORIGIN, now_ms

HOST = "localhost"
SITE = f"http://{HOST}"

Key = tuple[int, str]


class MemorySnapshots:
    """A SnapshotStore kept in a dict: records what the admin API deletes."""

    name = "memory"

    def __init__(self) -> None:
        self.saved: dict[Key, bytes] = {}
        self.deleted: list[Key] = []

    async def save(
        self,
        snapshots: Mapping[Key, bytes],
        deleted: Iterable[Key] = (),
        watermark: float | None = None,
    ) -> bool:
        """Keep ``snapshots``; forget ``deleted``."""
        self.saved.update(snapshots)
        for key in deleted:
            self.saved.pop(key, None)
        return False

    async def load_all(self) -> tuple[dict[Key, bytes], float | None]:
        """Everything kept."""
        return dict(self.saved), None

    async def delete(self, keys: Iterable[Key]) -> None:
        """Forget ``keys`` and remember that they were asked for."""
        for key in keys:
            self.deleted.append(key)
            self.saved.pop(key, None)

    async def ping(self) -> None:
        """Always reachable."""


@dataclass
class AdminEnv:
    """The app, its services, and two tenants with their admin tokens."""

    app: Any
    services: AppServices
    store: EventStore
    registry: Registry
    hub: Hub
    snapshots: MemorySnapshots
    acme: Tenant
    acme_token: str
    other: Tenant
    other_token: str
    settings: Settings
    clients: list[Any] = field(default_factory=list)

    def client(self) -> Any:
        """A fresh test client (its own cookie jar)."""
        return self.app.test_client()

    async def admin(self, token: str, name: str = "Sam") -> Any:
        """A client logged in with ``token``."""
        client = self.client()
        response = await client.post(
            "/login", form={"token": token, "name": name}, headers={"Host": HOST}
        )
        assert response.status_code == 303, await response.get_data()
        return client

    async def send(
        self,
        tenant: Tenant,
        user_id: str,
        events: list[dict[str, Any]] | None = None,
        *,
        tier: str = "free_trial",
        name: str | None = None,
    ) -> None:
        """Post one batch through the real ingest endpoint and let the actor take it."""
        ts = now_ms()
        if events is None:
            events = [{"type": "route", "route": "/dashboard"}]
        body = {
            "apiKey": tenant.api_key,
            "userId": user_id,
            "userEmail": f"{user_id}@example.com",
            "subscriptionTier": tier,
            "events": [{"timestamp": ts, **e} for e in events],
        }
        if name is not None:
            body["userName"] = name
        response = await self.client().post(
            TRACK_PATH,
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json", "Origin": ORIGIN},
        )
        assert response.status_code == 200, await response.get_data()
        await settle()
        if self.services.notifier is not None:
            await self.services.notifier.wait_settled()  # alerts recorded
            await settle()

    async def set_settings(self, tenant: Tenant, settings: TenantSettings) -> Tenant:
        """Change a tenant's thresholds (and reload the directory)."""
        updated = await self.store.write(
            lambda conn: update_tenant(conn, tenant.name, settings=settings)
        )
        await self.services.tenants.reload()
        return updated


async def settle() -> None:
    """Let every task that can run, run (actors, hub) until all wait."""
    await trio.testing.wait_all_tasks_blocked(cushion=0.01)


async def refused_websocket(client: Any, headers: dict[str, str]) -> Any:
    """Open ``/ws/admin`` expecting a refusal; the HTTP response it was refused with."""
    try:
        async with client.websocket("/ws/admin", headers=headers) as ws:
            await ws.receive()
    except BaseException as exc:  # trio wraps it in exception groups
        found = _find(exc, WebsocketResponseError)
        if found is None:
            raise
        return found.response
    raise AssertionError("the WebSocket was accepted")


def _find(exc: BaseException, kind: type[Exception]) -> Any:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None


def api_headers(**extra: str) -> dict[str, str]:
    """Headers of a same-site request from the dashboard."""
    return {"Host": HOST, **extra}


@pytest.fixture
def admin_settings(db_path: Any) -> Settings:
    return Settings(db_path=db_path, login_burst=3, login_refill_s=60.0, hub_queue_messages=64)


@pytest.fixture
async def env(
    admin_settings: Settings, store: EventStore, nursery: trio.Nursery
) -> AsyncIterator[AdminEnv]:
    yield await build_env(admin_settings, store, nursery, with_notifier=False)


@pytest.fixture
async def alerts_env(
    admin_settings: Settings, store: EventStore, nursery: trio.Nursery
) -> AsyncIterator[AdminEnv]:
    """The same, with the alerts Notifier wired in as the service wires it."""
    yield await build_env(admin_settings, store, nursery, with_notifier=True)


async def build_env(
    settings: Settings, store: EventStore, nursery: trio.Nursery, *, with_notifier: bool
) -> AdminEnv:
    acme, acme_token = await store.write(lambda c: create_tenant(c, "acme", [ORIGIN]))
    other, other_token = await store.write(lambda c: create_tenant(c, "other", [ORIGIN]))
    tenants = TenantDirectory(store)
    await tenants.reload()
    clock = Clock()
    (t_send, t_recv), (c_send, c_recv) = feed_channels()
    feed = await nursery.start(Feed(t_recv, c_recv).run)
    registry = Registry(clock, triggers_out=t_send, changes_out=c_send)
    notifier = None
    if with_notifier:
        notifier = Notifier.from_settings(settings, store, tenants, registry, clock)
        feed.subscribe_triggers(notifier.on_trigger)
        await nursery.start(notifier.run)
    await nursery.start(registry.run)
    hub = await nursery.start(
        Hub(
            registry,
            feed,
            notifier=notifier,
            wall_ms=clock.now_ms,
            user_interval_s=settings.hub_user_interval_s,
            queue_messages=settings.hub_queue_messages,
        ).run
    )
    calls = CallBoard(store, clock)
    if notifier is not None:
        calls.subscribe_changes(notifier.call_changed)
    calls.subscribe(hub.call_changed)
    await nursery.start(calls.run)
    snapshots = MemorySnapshots()
    services = AppServices(
        settings=settings,
        store=store,
        tenants=tenants,
        sink=registry,
        wall_ms=clock.now_ms,
        registry=registry,
        feed=feed,
        snapshots=snapshots,
        hub=hub,
        notifier=notifier,
        calls=calls,
    )
    return AdminEnv(
        app=create_app(services),
        services=services,
        store=store,
        registry=registry,
        hub=hub,
        snapshots=snapshots,
        acme=acme,
        acme_token=acme_token,
        other=other,
        other_token=other_token,
        settings=settings,
    )
