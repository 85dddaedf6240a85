"""Generated garbage against the ingest endpoint (hypothesis).

Whatever arrives, the answer is a 2xx or a 4xx with a JSON error body, never a
500, and the stored row count grows exactly by what was acknowledged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tippen_rt.config import Settings
from tippen_rt.http import TRACK_PATH, AppServices, TenantDirectory, create_app
from tippen_rt.persist import (
    EventStore,
    NoSuchTenant,
    count_events,
    create_tenant,
    get_tenant_by_name,
)
from tippen_rt.tenants import Tenant

from ..conftest import now_ms

NOW = now_ms()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
EVENT_TYPES = [
    "route",
    "click",
    "form_submit",
    "page_time",
    "error",
    "custom",
    "heartbeat",
    "visibility",
    "scroll",
    "",
    "ROUTE",
]
EVENT_KEYS = [
    "type",
    "timestamp",
    "route",
    "element",
    "text",
    "formId",
    "duration",
    "message",
    "source",
    "stack",
    "name",
    "data",
    "state",
    "input",
    "focused",
]


@st.composite
def plausible_events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": draw(st.sampled_from(EVENT_TYPES)),
        "timestamp": draw(
            st.one_of(st.integers(NOW - 2 * 86_400_000, NOW + 2 * 86_400_000), json_values)
        ),
    }
    for key in draw(st.lists(st.sampled_from(EVENT_KEYS[2:]), max_size=4)):
        event[key] = draw(st.one_of(st.text(max_size=3000), json_values, st.integers(-10, 10**10)))
    return event


@st.composite
def plausible_batches(draw: st.DrawFn, api_key: str) -> dict[str, Any]:
    batch: dict[str, Any] = {
        "apiKey": draw(st.sampled_from([api_key, "client_forged", ""])),
        "userId": draw(st.one_of(st.text(min_size=1, max_size=300), json_values)),
        "userEmail": draw(st.one_of(st.none(), st.text(max_size=50), json_values)),
        "subscriptionTier": draw(st.sampled_from(["free_trial", "paid", "enterprise", "gold"])),
        "events": draw(st.lists(plausible_events(), max_size=55)),
    }
    if draw(st.booleans()):
        batch["sentAt"] = draw(st.one_of(st.integers(0, 2 * NOW), json_values))
    if draw(st.booleans()):
        batch["batchId"] = draw(st.one_of(st.text(max_size=5), json_values))
    if draw(st.booleans()):
        del batch[draw(st.sampled_from(sorted(batch)))]
    return batch


@st.composite
def bodies(draw: st.DrawFn, api_key: str) -> bytes:
    kind = draw(st.sampled_from(["batch", "json", "bytes", "deep", "bignum"]))
    if kind == "bignum":
        return b'{"apiKey": "k", "userId": 1' + b"0" * draw(st.integers(18, 400)) + b"}"
    if kind == "batch":
        return orjson.dumps(draw(plausible_batches(api_key)))
    if kind == "json":
        return orjson.dumps(draw(json_values))
    if kind == "deep":
        depth = draw(st.integers(1, 5000))
        return b'{"apiKey":' + b"[" * depth + b"]" * depth + b"}"
    return draw(st.binary(max_size=2000))


async def check_one(client: Any, store: EventStore, body: bytes, content_type: str) -> None:
    before = await store.read(count_events)
    response = await client.post(TRACK_PATH, data=body, headers={"Content-Type": content_type})
    after = await store.read(count_events)
    payload = await response.get_json()
    assert response.status_code < 500, payload
    if response.status_code == 200:
        assert payload["success"] is True
        expected = 0 if payload.get("duplicate") else payload["stored"]
        assert after - before == expected
    else:
        assert 400 <= response.status_code < 500
        assert payload["success"] is False
        assert payload["error"]["code"] and payload["error"]["message"]
        assert after == before


@asynccontextmanager
async def live_app(db_path: Path) -> AsyncIterator[tuple[Any, EventStore, Tenant]]:
    """The app on a store over ``db_path``, which keeps its rows between examples."""
    async with trio.open_nursery() as nursery:
        store = EventStore(db_path)
        await nursery.start(store.run)
        tenant = await store.write(lambda c: _the_tenant(c))
        directory = TenantDirectory(store)
        await directory.reload()
        app = create_app(
            AppServices(settings=Settings(db_path=db_path), store=store, tenants=directory)
        )
        yield app.test_client(), store, tenant
        await store.close()


def _the_tenant(conn: sqlite3.Connection) -> Tenant:
    try:
        return get_tenant_by_name(conn, "acme")
    except NoSuchTenant:
        return create_tenant(conn, "acme", [])[0]


# Hypothesis runs each example in its own trio run, so the app is built per
# example (on the same SQLite file) rather than taken from async fixtures.
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_generated_bodies_never_break_the_store(tmp_path: Path, data: st.DataObject) -> None:
    async with live_app(tmp_path / "gen.db") as (client, store, tenant):
        body = data.draw(bodies(tenant.api_key))
        content_type = data.draw(
            st.sampled_from(
                [
                    "application/json",
                    "text/plain",
                    "text/plain; charset=utf-8",
                    "application/xml",
                    "",
                ]
            )
        )
        await check_one(client, store, body, content_type)
