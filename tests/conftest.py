"""Shared fixtures: a real SQLite store on a temp file, a tenant, the app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from tippen_rt.config import Settings
from tippen_rt.http import AppServices, TenantDirectory, create_app
from tippen_rt.persist import EventStore, create_tenant, run_inline
from tippen_rt.tenants import Tenant

from .support.redis_server import RedisServer, running_redis

ORIGIN = "https://app.example.com"
#: What the tracker on a page at ORIGIN sends with a batch (tenants require an Origin).
TRACKER_HEADERS = {"Content-Type": "application/json", "Origin": ORIGIN}


def now_ms() -> int:
    """Wall-clock milliseconds, as the tracker sends them."""
    return int(time.time() * 1000)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tippen.db"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings(db_path=db_path)


@pytest.fixture
async def store(db_path: Path, nursery: trio.Nursery) -> AsyncIterator[EventStore]:
    event_store = EventStore(db_path)
    await nursery.start(event_store.run)
    yield event_store
    await event_store.close()


@pytest.fixture
async def inline_store(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[EventStore]:
    """A store that runs SQLite in the trio thread: for tests on virtual time."""
    event_store = EventStore(tmp_path / "inline.db", offload=run_inline)
    await nursery.start(event_store.run)
    yield event_store
    await event_store.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of our own on a free port."""
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
async def tenant_and_token(store: EventStore) -> tuple[Tenant, str]:
    return await store.write(lambda conn: create_tenant(conn, "acme", [ORIGIN]))


@pytest.fixture
def tenant(tenant_and_token: tuple[Tenant, str]) -> Tenant:
    return tenant_and_token[0]


@pytest.fixture
async def services(settings: Settings, store: EventStore, tenant: Tenant) -> AppServices:
    directory = TenantDirectory(store)
    await directory.reload()
    return AppServices(settings=settings, store=store, tenants=directory)


@pytest.fixture
def app(services: AppServices):  # type: ignore[no-untyped-def]
    return create_app(services)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def make_batch(
    tenant: Tenant,
    events: list[dict[str, object]] | None = None,
    *,
    user_id: str = "user-1",
    tier: str = "free_trial",
    **extra: object,
) -> dict[str, object]:
    """A valid batch body for ``tenant``."""
    ts = now_ms()
    if events is None:
        events = [
            {"type": "route", "route": "/dashboard", "timestamp": ts},
            {"type": "click", "element": "button#save", "route": "/dashboard", "timestamp": ts},
        ]
    return {
        "apiKey": tenant.api_key,
        "userId": user_id,
        "userEmail": f"{user_id}@example.com",
        "subscriptionTier": tier,
        "events": events,
        **extra,
    }
