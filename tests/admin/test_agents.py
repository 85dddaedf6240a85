"""Support agents: a login each, acknowledgements in their name, removal ends only theirs."""

from __future__ import annotations

from typing import Any

from tippen_rt.persist import create_agent, remove_agent

from .conftest import HOST, SITE, AdminEnv, api_headers
from .test_socket import _closed_with, receive

SAME_SITE = {"Origin": SITE, "Host": HOST}


async def post(client: Any, path: str, body: Any) -> tuple[int, Any]:
    response = await client.post(path, json=body, headers=api_headers(Origin=SITE))
    return response.status_code, await response.get_json()


async def me(client: Any) -> tuple[int, Any]:
    response = await client.get("/api/admin/me", headers=api_headers())
    return response.status_code, await response.get_json()


async def test_an_agent_logs_in_with_their_token_and_acknowledges_in_their_name(
    env: AdminEnv,
) -> None:
    _, token = await env.store.write(lambda c: create_agent(c, "acme", "Ada Park"))
    await env.send(env.acme, "u1", [{"type": "error", "message": "x"} for _ in range(4)])
    agent = await env.admin(token, name="Somebody Else")  # a typed name counts for nothing
    status, body = await me(agent)
    assert status == 200 and body["name"] == "Ada Park"
    assert body["tenant"]["name"] == "acme"
    status, answer = await post(agent, "/api/admin/user/acknowledge", {"userId": "u1"})
    assert (status, answer["by"]) == (200, "Ada Park")
    await env.send(env.acme, "u1", [{"type": "heartbeat"}])
    state = env.registry.state(env.acme.id, "u1")
    assert state is not None and state.acknowledged_by == "Ada Park"


async def test_an_agent_sees_only_their_own_tenant(env: AdminEnv) -> None:
    _, token = await env.store.write(lambda c: create_agent(c, "other", "Olu"))
    await env.send(env.acme, "acme-user")
    agent = await env.admin(token)
    response = await agent.get("/api/admin/users?scope=live", headers=api_headers())
    users = (await response.get_json())["users"]
    assert all(u["userId"] != "acme-user" for u in users)


async def test_removing_an_agent_ends_their_sessions_and_dashboards_only(env: AdminEnv) -> None:
    _, ada_token = await env.store.write(lambda c: create_agent(c, "acme", "Ada"))
    _, bo_token = await env.store.write(lambda c: create_agent(c, "acme", "Bo"))
    ada, bo = await env.admin(ada_token), await env.admin(bo_token)
    async with (
        ada.websocket("/ws/admin", headers=SAME_SITE) as ada_ws,
        bo.websocket("/ws/admin", headers=SAME_SITE) as bo_ws,
    ):
        assert (await receive(ada_ws))["type"] == "snapshot"
        assert (await receive(bo_ws))["type"] == "snapshot"
        await env.store.write(lambda c: remove_agent(c, "acme", "Ada"))
        await env.services.tenants.reload()
        seen, code = await _closed_with(ada_ws)
        assert seen == [{"type": "session_expired"}] and code == 4401
        await env.send(env.acme, "still-here")
        assert (await receive(bo_ws))["user"]["userId"] == "still-here"
    assert (await me(ada))[0] == 401
    assert (await me(bo))[0] == 200
    # The removed token no longer logs in.
    response = await env.client().post(
        "/login", form={"token": ada_token, "name": "Ada"}, headers={"Host": HOST}
    )
    assert response.status_code == 401
