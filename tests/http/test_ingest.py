"""POST /api/track/user-activity through the real app and a real SQLite store."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest
import trio

from tippen_rt.events import Batch
from tippen_rt.http import TRACK_PATH, AppServices
from tippen_rt.persist import EventStore, count_events, update_tenant
from tippen_rt.tenants import Tenant, TenantSettings

from ..conftest import ORIGIN, make_batch, now_ms


async def post(
    client: Any,
    body: object,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    origin: str | None = ORIGIN,
) -> Any:
    """POST as the tracker does: from a page at ``origin`` (None: as a server, without one)."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"Content-Type": content_type}
    if origin is not None:
        sent["Origin"] = origin
    return await client.post(TRACK_PATH, data=data, headers={**sent, **(headers or {})})


async def test_a_valid_batch_is_stored_and_acknowledged(
    client: Any, store: EventStore, tenant: Tenant
) -> None:
    response = await post(client, make_batch(tenant), headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert await response.get_json() == {"success": True, "stored": 2, "analyzed": True}
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    rows = await store.read(
        lambda c: c.execute(
            "SELECT tenant_id, user_id, user_email, subscription_tier, event_type, route, element"
            " FROM user_activity_events ORDER BY id"
        ).fetchall()
    )
    assert rows == [
        (tenant.id, "user-1", "user-1@example.com", "free_trial", "route", "/dashboard", None),
        (
            tenant.id,
            "user-1",
            "user-1@example.com",
            "free_trial",
            "click",
            "/dashboard",
            "button#save",
        ),
    ]


async def test_text_plain_beacon_bodies_are_accepted(client: Any, tenant: Tenant) -> None:
    response = await post(client, make_batch(tenant), content_type="text/plain;charset=UTF-8")
    assert response.status_code == 200


async def test_the_ack_comes_after_commit(
    client: Any, services: AppServices, store: EventStore, tenant: Tenant
) -> None:
    seen: list[int] = []

    class Probe:
        async def deliver(self, t: Tenant, batch: Batch) -> None:
            # Read through a different connection: only committed rows are visible.
            seen.append(await store.read(count_events))

    services.sink = Probe()
    response = await post(client, make_batch(tenant))
    assert response.status_code == 200
    assert seen == [2]


async def test_a_retried_batch_is_not_stored_twice(
    client: Any, store: EventStore, tenant: Tenant
) -> None:
    body = make_batch(tenant, batchId="batch-42")
    first = await post(client, body)
    second = await post(client, body)
    assert (await first.get_json())["stored"] == 2
    assert await second.get_json() == {
        "success": True,
        "stored": 2,
        "analyzed": True,
        "duplicate": True,
    }
    assert await store.read(count_events) == 2


async def error_of(response: Any) -> dict[str, Any]:
    body = await response.get_json()
    assert body["success"] is False
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("mutate", "status", "code", "field"),
    [
        (lambda b: {**b, "apiKey": "client_nope"}, 401, "unknown_api_key", "apiKey"),
        (lambda b: {**b, "subscriptionTier": "vip"}, 400, "invalid_field", "subscriptionTier"),
        (lambda b: {**b, "userId": 42}, 400, "invalid_field", "userId"),
        (
            lambda b: {**b, "events": [{"type": "scroll", "timestamp": now_ms()}]},
            400,
            "unknown_event_type",
            "events[0].type",
        ),
        (
            lambda b: {**b, "events": [{"type": "click", "element": "a", "timestamp": 0}]},
            400,
            "timestamp_out_of_range",
            "events[0].timestamp",
        ),
        (
            lambda b: {
                **b,
                "events": [{"type": "route", "route": "/x" * 2000, "timestamp": now_ms()}],
            },
            400,
            "field_too_long",
            "events[0].route",
        ),
        (
            lambda b: {
                **b,
                "events": [{"type": "click", "element": "a", "timestamp": now_ms()}] * 51,
            },
            413,
            "too_many_events",
            "events",
        ),
    ],
)
async def test_bad_batches_are_refused_and_nothing_is_stored(
    client: Any,
    store: EventStore,
    tenant: Tenant,
    mutate: Any,
    status: int,
    code: str,
    field: str,
) -> None:
    response = await post(client, mutate(make_batch(tenant)))
    assert response.status_code == status
    error = await error_of(response)
    assert (error["code"], error["field"]) == (code, field)
    assert await store.read(count_events) == 0


async def test_invalid_json_is_400(client: Any, store: EventStore) -> None:
    response = await post(client, b'{"apiKey": "x", "events": [')
    assert response.status_code == 400
    assert (await error_of(response))["code"] == "invalid_json"


async def test_wrong_content_type_is_415(client: Any, tenant: Tenant) -> None:
    response = await post(client, make_batch(tenant), content_type="application/xml")
    assert response.status_code == 415
    assert (await error_of(response))["code"] == "unsupported_media_type"


async def test_a_body_over_256_kib_is_413(client: Any, tenant: Tenant, store: EventStore) -> None:
    response = await post(client, b"[" + b" " * (256 * 1024) + b"]")
    assert response.status_code == 413
    assert (await error_of(response))["code"] == "body_too_large"


async def test_an_origin_the_tenant_does_not_allow_is_403(
    client: Any, tenant: Tenant, store: EventStore
) -> None:
    response = await post(client, make_batch(tenant), headers={"Origin": "https://evil.test"})
    assert response.status_code == 403
    assert (await error_of(response))["code"] == "origin_not_allowed"
    # The refusal itself is readable, so the tracker drops the batch.
    assert response.headers["Access-Control-Allow-Origin"] == "https://evil.test"
    assert await store.read(count_events) == 0


async def test_a_post_without_origin_is_refused_unless_the_tenant_allows_servers(
    client: Any, store: EventStore, tenant: Tenant, services: AppServices
) -> None:
    # Browsers always send Origin on a cross-origin POST; only a script or a
    # server leaves it out, and anyone can copy the public API key.
    refused = await post(client, make_batch(tenant), origin=None)
    assert refused.status_code == 403
    error = await error_of(refused)
    assert (error["code"], error["field"]) == ("origin_required", None)
    assert "require_origin" in error["message"]
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert await store.read(count_events) == 0
    # The preflight of a browser page is not affected.
    preflight = await client.options(
        TRACK_PATH, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    # `tippen-rt tenant set acme --require-origin off`: a server may post.
    await store.write(
        lambda c: update_tenant(c, tenant.name, settings=TenantSettings(require_origin=False))
    )
    await services.tenants.reload()
    accepted = await post(client, make_batch(tenant), origin=None)
    assert accepted.status_code == 200
    assert "Access-Control-Allow-Origin" not in accepted.headers
    # Pages are still held to the tenant's origins.
    evil = await post(client, make_batch(tenant), origin="https://evil.test")
    assert (await error_of(evil))["code"] == "origin_not_allowed"
    assert await store.read(count_events) == 2


async def test_origin_required_is_checked_after_the_api_key(
    client: Any, store: EventStore, tenant: Tenant
) -> None:
    # An unknown key is a 401 whatever the headers: the tenant decides about Origin.
    response = await post(client, {**make_batch(tenant), "apiKey": "client_nope"}, origin=None)
    assert response.status_code == 401
    assert (await error_of(response))["code"] == "unknown_api_key"


async def test_origins_match_after_normalisation(client: Any, tenant: Tenant) -> None:
    response = await post(
        client, make_batch(tenant), headers={"Origin": "https://APP.example.com:443"}
    )
    assert response.status_code == 200


async def test_errors_carry_cors_headers_for_known_origins(client: Any, tenant: Tenant) -> None:
    # The tracker must be able to read a 400 to know it should drop the batch.
    response = await post(
        client, {**make_batch(tenant), "subscriptionTier": "x"}, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_preflight_only_for_known_origins(client: Any, tenant: Tenant) -> None:
    ok = await client.options(
        TRACK_PATH, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]
    refused = await client.options(
        TRACK_PATH, headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"}
    )
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


async def test_a_post_gets_only_the_cors_headers_it_needs(client: Any, tenant: Tenant) -> None:
    preflight = await client.options(
        TRACK_PATH, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert preflight.headers["Access-Control-Max-Age"] == "600"
    response = await post(client, make_batch(tenant), headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Expose-Headers"] == "Retry-After, X-Tippen-Poll"
    assert response.headers["Vary"] == "Origin"
    # Preflight-only headers mean nothing on the POST itself.
    for name in ("Access-Control-Allow-Methods", "Access-Control-Allow-Headers"):
        assert name not in response.headers


async def test_tenants_added_while_running_are_found(
    client: Any, store: EventStore, services: AppServices, autojump_clock: Any
) -> None:
    from tippen_rt.persist import create_tenant

    new, _ = await store.write(lambda c: create_tenant(c, "later", [ORIGIN]))
    # An unknown key reloads the tenants at most once a second.
    await trio.sleep(1)
    response = await post(client, make_batch(new))
    assert response.status_code == 200


async def test_identity_verification_with_user_hash(
    client: Any, store: EventStore, tenant: Tenant, services: AppServices
) -> None:
    secret = "s3cret"
    await store.write(
        lambda c: update_tenant(
            c, tenant.name, identity_secret=secret, settings=TenantSettings(require_user_hash=True)
        )
    )
    await services.tenants.reload()
    good = hmac.new(secret.encode(), b"user-1", hashlib.sha256).hexdigest()

    missing = await post(client, make_batch(tenant))
    assert missing.status_code == 401
    assert (await error_of(missing))["code"] == "user_hash_required"
    forged = await post(client, make_batch(tenant, userHash="0" * 64))
    assert forged.status_code == 403
    assert (await error_of(forged))["code"] == "bad_user_hash"
    ok = await post(client, make_batch(tenant, userHash=good))
    assert ok.status_code == 200
    assert await store.read(count_events) == 2


async def test_unknown_routes_and_methods_answer_json(client: Any) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert (await error_of(missing))["code"] == "not_found"
    wrong = await client.get(TRACK_PATH)
    assert wrong.status_code == 405
