"""A tenant removed while the service runs: its key, dashboards and live users stop."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from tippen_rt.actors import Trigger, TriggerFired
from tippen_rt.http import TRACK_PATH
from tippen_rt.persist import remove_tenant

from ..conftest import ORIGIN, now_ms
from .conftest import AdminEnv, api_headers
from .test_socket import SAME_SITE, _closed_with, receive


async def alert_rows(env: AdminEnv, tenant_id: int) -> int:
    return int(
        (
            await env.store.read(
                lambda c: c.execute(
                    "SELECT count(*) FROM support_alerts WHERE tenant_id = ?", (tenant_id,)
                ).fetchone()
            )
        )[0]
    )


async def heartbeat(env: AdminEnv, api_key: str) -> Any:
    """Post one heartbeat of user ann with ``api_key`` through the real ingest endpoint."""
    body = {
        "apiKey": api_key,
        "userId": "ann",
        "subscriptionTier": "paid",
        "events": [{"type": "heartbeat", "timestamp": now_ms()}],
    }
    return await env.client().post(
        TRACK_PATH,
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Origin": ORIGIN},
    )


async def test_removing_a_tenant_stops_its_key_dashboards_and_live_users(
    alerts_env: AdminEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = alerts_env
    await env.send(env.acme, "ann", [{"type": "error", "message": "x"} for _ in range(4)])
    await env.send(env.acme, "al")
    await env.send(env.other, "olu")
    assert await alert_rows(env, env.acme.id) == 1
    ann = env.registry.state(env.acme.id, "ann")
    assert ann is not None
    admin, other_admin = await env.admin(env.acme_token), await env.admin(env.other_token)
    async with (
        admin.websocket("/ws/admin", headers=SAME_SITE) as ws,
        other_admin.websocket("/ws/admin", headers=SAME_SITE) as other_ws,
    ):
        assert (await receive(ws))["type"] == "snapshot"
        assert (await receive(other_ws))["type"] == "snapshot"
        await env.store.write(lambda c: remove_tenant(c, "acme", now_ms=now_ms()))
        await env.services.tenants.reload()  # what the service does within seconds
        seen, code = await _closed_with(ws)
        assert code == 4401 and seen[-1] == {"type": "session_expired"}
        assert all(m["type"] == "user_left" and m["reason"] == "removed" for m in seen[:-1])
        # Its live users are gone; the other tenant's stay and stream on.
        assert env.registry.live_count_of(env.acme.id) == 0
        assert env.registry.state(env.acme.id, "ann") is None
        assert env.registry.is_live(env.other.id, "olu")
        await env.send(env.other, "olu", [{"type": "route", "route": "/next"}])
        assert (await receive(other_ws))["user"]["currentRoute"] == "/next"
    # A trigger an actor had on its way when it was dropped pages nobody.
    assert env.services.notifier is not None
    await env.services.notifier.on_trigger(
        TriggerFired(ann, Trigger.MULTIPLE_ERRORS, "4 errors", ann.last_event_at)
    )
    await env.services.notifier.wait_settled()
    assert await alert_rows(env, env.acme.id) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    # The admin's session and the API key are refused.
    response = await admin.get("/api/admin/me", headers=api_headers())
    assert response.status_code == 401
    response = await heartbeat(env, env.acme.api_key)
    assert response.status_code == 401
    assert (await response.get_json())["error"]["code"] == "unknown_api_key"
    assert env.registry.live_count_of(env.acme.id) == 0


async def test_a_batch_that_races_the_removal_gets_401_not_500(env: AdminEnv) -> None:
    await env.send(env.acme, "ann")
    await env.store.write(lambda c: remove_tenant(c, "acme", now_ms=now_ms()))
    # The directory has not looked again yet: the key still resolves, the
    # insert finds no tenant row.
    response = await heartbeat(env, env.acme.api_key)
    assert response.status_code == 401
    assert (await response.get_json())["error"]["code"] == "unknown_api_key"
    assert env.registry.live_count_of(env.acme.id) == 0  # it looked again
