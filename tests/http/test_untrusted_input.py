"""Identity and identifiers through the real ingest endpoint: refusals are 4xx naming the field."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from tippen_rt.http import AppServices
from tippen_rt.persist import EventStore, count_events, update_tenant
from tippen_rt.tenants import Tenant, TenantSettings, verify_user_hash

from ..conftest import make_batch, now_ms
from .test_ingest import error_of, post

SECRET = "s3cret"


@pytest.fixture
async def verifying(store: EventStore, tenant: Tenant, services: AppServices) -> Tenant:
    """The tenant, checking userHash with ``SECRET``."""
    updated = await store.write(
        lambda c: update_tenant(
            c, tenant.name, identity_secret=SECRET, settings=TenantSettings(require_user_hash=True)
        )
    )
    await services.tenants.reload()
    return updated


@pytest.mark.parametrize(
    "user_hash",
    [
        "é" * 64,  # non-ASCII: hmac.compare_digest raised TypeError, a 500
        "\uff10" * 64,  # fullwidth digits: not hex
        "Ω",
        "g" * 64,
        "0" * 63,
        "0" * 65,
        "",
        " " + "0" * 63,
    ],
)
async def test_a_malformed_user_hash_is_400_naming_user_hash(
    client: Any, store: EventStore, verifying: Tenant, user_hash: str
) -> None:
    response = await post(client, make_batch(verifying, userHash=user_hash))
    assert response.status_code == 400
    error = await error_of(response)
    assert (error["code"], error["field"]) == ("invalid_field", "userHash")
    assert "64 hex" in error["message"]
    assert await store.read(count_events) == 0


async def test_a_well_formed_wrong_user_hash_is_still_403(client: Any, verifying: Tenant) -> None:
    response = await post(client, make_batch(verifying, userHash="ab" * 32))
    assert response.status_code == 403
    assert (await error_of(response))["code"] == "bad_user_hash"
    good = hmac.new(SECRET.encode(), b"user-1", hashlib.sha256).hexdigest()
    assert (await post(client, make_batch(verifying, userHash=good.upper()))).status_code == 200


def test_verify_user_hash_never_raises() -> None:
    assert verify_user_hash(SECRET, "u", "é" * 64) is False
    assert verify_user_hash(SECRET, "u\u202e", "\x00") is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("userId", "ann\nINFO tippen_rt: admin login for tenant acme from 10.0.0.1"),
        ("userId", "\u202emoc.elpmaxe@nna"),
        ("userEmail", "ann@example.com\u200b"),
        ("batchId", "b\t1"),
    ],
)
async def test_identifiers_with_hidden_characters_are_400_naming_the_field(
    client: Any, store: EventStore, tenant: Tenant, field: str, value: str
) -> None:
    body = make_batch(tenant)
    body[field] = value
    response = await post(client, body)
    assert response.status_code == 400
    error = await error_of(response)
    assert (error["code"], error["field"]) == ("invalid_field", field)
    assert await store.read(count_events) == 0


async def test_an_api_key_with_hidden_characters_is_400_not_401(
    client: Any, tenant: Tenant
) -> None:
    body = {**make_batch(tenant), "apiKey": tenant.api_key + "\u200b"}
    response = await post(client, body)
    assert response.status_code == 400
    assert (await error_of(response))["field"] == "apiKey"


async def test_free_text_with_newlines_and_bidi_controls_is_stored_as_sent(
    client: Any, store: EventStore, tenant: Tenant
) -> None:
    message = "TypeError: x\n    at f (app.js:1)\u202e\u200b"
    events = [{"type": "error", "message": message, "timestamp": now_ms()}]
    response = await post(client, make_batch(tenant, events))
    assert response.status_code == 200
    stored = await store.read(
        lambda c: c.execute("SELECT error_message FROM user_activity_events").fetchone()[0]
    )
    assert stored == message
