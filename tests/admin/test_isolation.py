"""A second tenant's admin can neither read nor act on the first tenant's users,
by any route: the API, the pages' data, and the WebSocket."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tippen_rt.persist._admin import list_video_calls

from .conftest import HOST, SITE, AdminEnv, api_headers

VICTIM = "victim@acme"

READS = [
    "/api/admin/user?id={u}",
    "/api/admin/user/events?id={u}",
    "/api/admin/user/errors?id={u}",
    "/api/admin/user/journey?id={u}",
    "/api/admin/user/video-calls?id={u}",
    "/api/admin/alerts?userId={u}",
]


@pytest.fixture
async def victim(env: AdminEnv) -> AdminEnv:
    """acme has a live user with events, errors, a support need and a video call."""
    await env.send(
        env.acme,
        VICTIM,
        [
            {"type": "route", "route": "/secret-page"},
            *({"type": "error", "message": f"acme-only error {i}"} for i in range(4)),
        ],
        tier="paid",
    )
    acme = await env.admin(env.acme_token)
    response = await acme.post(
        "/api/admin/user/video-call", json={"userId": VICTIM}, headers=api_headers(Origin=SITE)
    )
    assert response.status_code == 200
    return env


def leaks(body: Any) -> bool:
    text = orjson.dumps(body).decode()
    return VICTIM in text.replace('"userId":"victim@acme"', "") or "acme-only" in text


@pytest.mark.parametrize("path", READS)
async def test_reads_of_another_tenants_user_find_nothing(victim: AdminEnv, path: str) -> None:
    other = await victim.admin(victim.other_token)
    response = await other.get(path.format(u=VICTIM), headers=api_headers())
    body = await response.get_json()
    assert response.status_code in (200, 404)
    if response.status_code == 200:
        for key in ("events", "steps", "calls", "alerts"):
            if key in body:
                assert body[key] == [], (path, body)
        assert body.get("live") in (None, False)
    assert "acme-only" not in orjson.dumps(body).decode()
    assert "/secret-page" not in orjson.dumps(body).decode()


async def test_lists_and_stats_hold_only_the_own_tenant(victim: AdminEnv) -> None:
    await victim.send(victim.other, "other-user")
    other = await victim.admin(victim.other_token)
    for path in ("/api/admin/users", "/api/admin/users?scope=live", "/api/admin/alerts"):
        response = await other.get(path, headers=api_headers())
        body = await response.get_json()
        assert VICTIM not in orjson.dumps(body).decode(), path
    body = await (await other.get("/api/admin/users", headers=api_headers())).get_json()
    assert [u["userId"] for u in body["users"]] == ["other-user"]
    stats = await (await other.get("/api/admin/stats", headers=api_headers())).get_json()
    assert stats["live"] == 1 and stats["errorsLastHour"] == 0 and stats["needSupport"] == 0


async def test_actions_on_another_tenants_user_change_nothing(victim: AdminEnv) -> None:
    env = victim
    other = await env.admin(env.other_token, name="Eve")
    headers = api_headers(Origin=SITE)

    ack = await other.post("/api/admin/user/acknowledge", json={"userId": VICTIM}, headers=headers)
    assert ack.status_code == 404
    call = await other.post("/api/admin/user/video-call", json={"userId": VICTIM}, headers=headers)
    assert call.status_code == 404
    alert = await other.post("/api/admin/alerts/1/acknowledge", headers=headers)
    assert alert.status_code == 404
    erase = await other.post("/api/admin/user/erase", json={"userId": VICTIM}, headers=headers)
    assert erase.status_code == 200
    assert (await erase.get_json())["erased"]["events"] == 0
    delete = await other.delete(f"/api/admin/user?id={VICTIM}", headers=headers)
    assert (await delete.get_json())["erased"]["events"] == 0

    state = env.registry.state(env.acme.id, VICTIM)
    assert state is not None and state.needs_support and state.acknowledged_by is None
    events = await env.store.read(
        lambda c: c.execute(
            "SELECT count(*) FROM user_activity_events WHERE user_id = ?", (VICTIM,)
        ).fetchone()[0]
    )
    assert events == 5
    calls = await env.store.read(lambda c: list_video_calls(c, env.acme.id, VICTIM))
    assert len(calls) == 1
    assert set(env.snapshots.deleted) == {(env.other.id, VICTIM)}  # never acme's key


async def test_the_user_page_of_another_tenants_user_shows_nothing(victim: AdminEnv) -> None:
    other = await victim.admin(victim.other_token)
    response = await other.get(f"/user-activity/{VICTIM}")
    page = await response.get_data(as_text=True)
    assert response.status_code == 200  # the page is a shell; its data comes from the API
    assert "acme-only" not in page and "/secret-page" not in page


async def test_the_websocket_carries_only_the_own_tenant(victim: AdminEnv) -> None:
    env = victim
    other = await env.admin(env.other_token)
    headers = {"Origin": SITE, "Host": HOST}
    async with other.websocket("/ws/admin", headers=headers) as ws:
        snapshot = orjson.loads(await ws.receive())
        assert snapshot["type"] == "snapshot" and snapshot["users"] == []
        # acme's user acts; then one of other's users does: the marker.
        await env.send(env.acme, VICTIM, [{"type": "route", "route": "/more-secrets"}])
        await env.send(env.acme, "acme-2")
        await env.send(env.other, "marker")
        seen = []
        while True:
            message = orjson.loads(await ws.receive())
            seen.append(message)
            if message.get("type") == "user" and message["user"]["userId"] == "marker":
                break
        text = orjson.dumps(seen).decode()
        assert VICTIM not in text and "acme-2" not in text and "secret" not in text
