"""Alerts on the dashboard with the real Notifier: listed, acknowledged, streamed, erased."""

from __future__ import annotations

from typing import Any

import orjson

from .conftest import HOST, SITE, AdminEnv, api_headers

ERRORS = [{"type": "error", "message": f"boom {i}"} for i in range(4)]


async def get(client: Any, path: str) -> Any:
    response = await client.get(path, headers=api_headers())
    assert response.status_code == 200, await response.get_data()
    return await response.get_json()


async def post(client: Any, path: str, body: Any = None) -> Any:
    return await client.post(path, json=body, headers=api_headers(Origin=SITE))


async def test_a_trigger_is_listed_and_acknowledged_by_id(alerts_env: AdminEnv) -> None:
    env = alerts_env
    await env.send(env.acme, "u1", ERRORS, tier="paid")
    admin = await env.admin(env.acme_token, name="Sam")
    body = await get(admin, "/api/admin/alerts?status=open")
    assert body["source"] == "stored"
    [alert] = body["alerts"]
    assert (alert["userId"], alert["trigger"], alert["status"]) == ("u1", "multiple_errors", "open")
    assert alert["reason"]

    response = await post(admin, f"/api/admin/alerts/{alert['id']}/acknowledge")
    assert response.status_code == 200
    acked = (await response.get_json())["alert"]
    assert acked["status"] == "acknowledged" and acked["acknowledgedBy"] == "Sam"
    await env.send(env.acme, "u1", [{"type": "heartbeat"}])
    state = env.registry.state(env.acme.id, "u1")
    assert state is not None and not state.needs_support
    assert (await get(admin, "/api/admin/alerts?status=open"))["alerts"] == []
    listed = (await get(admin, "/api/admin/alerts?status=acknowledged"))["alerts"]
    assert [a["id"] for a in listed] == [alert["id"]]
    stats = await get(admin, "/api/admin/stats")
    assert stats["openAlerts"] == 0 and stats["acknowledgedAlerts"] == 1


async def test_acknowledging_the_user_acknowledges_their_alerts(alerts_env: AdminEnv) -> None:
    env = alerts_env
    await env.send(env.acme, "u1", ERRORS)
    admin = await env.admin(env.acme_token, name="Kim")
    response = await post(admin, "/api/admin/user/acknowledge", {"userId": "u1"})
    assert response.status_code == 200
    listed = (await get(admin, "/api/admin/alerts?userId=u1"))["alerts"]
    assert [(a["status"], a["acknowledgedBy"]) for a in listed] == [("acknowledged", "Kim")]


async def test_another_tenants_alerts_are_out_of_reach(alerts_env: AdminEnv) -> None:
    env = alerts_env
    await env.send(env.acme, "victim", ERRORS)
    acme = await env.admin(env.acme_token)
    [alert] = (await get(acme, "/api/admin/alerts"))["alerts"]
    other = await env.admin(env.other_token, name="Eve")
    assert (await get(other, "/api/admin/alerts"))["alerts"] == []
    assert (await get(other, "/api/admin/alerts?userId=victim"))["alerts"] == []
    response = await post(other, f"/api/admin/alerts/{alert['id']}/acknowledge")
    assert response.status_code == 404
    response = await post(other, "/api/admin/user/acknowledge", {"userId": "victim"})
    assert response.status_code == 404
    [still] = (await get(acme, "/api/admin/alerts"))["alerts"]
    assert still["status"] == "open"


async def test_alerts_reach_the_socket_and_the_snapshot(alerts_env: AdminEnv) -> None:
    env = alerts_env
    await env.send(env.acme, "early", ERRORS)
    admin = await env.admin(env.acme_token)
    async with admin.websocket("/ws/admin", headers={"Origin": SITE, "Host": HOST}) as ws:
        snapshot = orjson.loads(await ws.receive())
        assert [(a["userId"], a["status"]) for a in snapshot["alerts"]] == [("early", "open")]
        await env.send(env.acme, "late", ERRORS)
        while True:
            message = orjson.loads(await ws.receive())
            if message["type"] == "alert":
                break
        assert message["event"] == "opened"
        assert message["alert"]["userId"] == "late" and message["alert"]["status"] == "open"


async def test_erasing_a_user_deletes_their_alerts(alerts_env: AdminEnv) -> None:
    env = alerts_env
    await env.send(env.acme, "u1", ERRORS)
    admin = await env.admin(env.acme_token)
    response = await post(admin, "/api/admin/user/erase", {"userId": "u1"})
    assert (await response.get_json())["erased"]["alerts"] == 1
    assert (await get(admin, "/api/admin/alerts"))["alerts"] == []
