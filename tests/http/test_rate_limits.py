"""Load shedding on ingest: token buckets per key and address, and an in-flight ceiling."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
from trio.testing import MockClock

from tippen_rt.config import Settings
from tippen_rt.http import TRACK_PATH, AppServices, TenantDirectory, create_app
from tippen_rt.http._rate_limit import TokenBuckets
from tippen_rt.persist import EventStore, count_events
from tippen_rt.tenants import Tenant

from ..conftest import make_batch


def test_a_bucket_allows_the_burst_then_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate_per_s=2, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # keys are separate
    now[0] = 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_a_zero_rate_disables_limiting() -> None:
    buckets = TokenBuckets(rate_per_s=0, burst=1)
    assert all(buckets.take("a") == 0.0 for _ in range(1000))


def test_bucket_memory_stays_bounded() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate_per_s=1, burst=2, max_keys=1000, clock=lambda: now[0])
    for i in range(50_000):
        now[0] += 0.001
        buckets.take(i)
    assert len(buckets) <= 1001


async def app_with(settings: Settings, store: EventStore) -> Any:
    directory = TenantDirectory(store)
    await directory.reload()
    return create_app(AppServices(settings=settings, store=store, tenants=directory))


async def post(client: Any, body: object) -> Any:
    return await client.post(
        TRACK_PATH,
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Origin": "https://app.example.com"},
    )


async def test_too_many_requests_from_one_address_get_429_with_retry_after(
    settings: Settings, store: EventStore, tenant: Tenant, autojump_clock: MockClock
) -> None:
    app = await app_with(
        settings.replace(ingest_rate_per_address=1, ingest_burst_per_address=3), store
    )
    client = app.test_client()
    statuses = [(await post(client, make_batch(tenant))).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await post(client, make_batch(tenant))
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert (await limited.get_json())["error"]["code"] == "rate_limited"
    assert await store.read(count_events) == 6  # nothing of a refused batch
    await trio.sleep(1)
    assert (await post(client, make_batch(tenant))).status_code == 200


async def test_too_many_requests_for_one_key_get_429(
    settings: Settings, store: EventStore, tenant: Tenant, autojump_clock: MockClock
) -> None:
    app = await app_with(settings.replace(ingest_rate_per_key=0.5, ingest_burst_per_key=2), store)
    client = app.test_client()
    statuses = [(await post(client, make_batch(tenant))).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = await post(client, make_batch(tenant))
    assert response.headers["Retry-After"] == "2"


async def test_past_the_in_flight_ceiling_ingest_sheds_with_503(
    settings: Settings, store: EventStore, tenant: Tenant
) -> None:
    app = await app_with(settings.replace(max_inflight_requests=0), store)
    response = await post(app.test_client(), make_batch(tenant))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.get_json())["error"]["code"] == "overloaded"
