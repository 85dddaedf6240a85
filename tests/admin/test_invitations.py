"""Call invitations through the real ingest endpoint and admin API: the channel
(X-Tippen-Poll on a flagged user's answers, an empty batch to ask), the
answers, time-outs, and what the dashboards and alerts hear."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import trio

from tippen_rt.calls import CallBoard
from tippen_rt.http import TRACK_PATH

from ..conftest import ORIGIN, now_ms
from .conftest import SITE, AdminEnv, api_headers, settle

ERRORS = [{"type": "error", "message": f"boom {i}"} for i in range(4)]


async def post(client: Any, path: str, body: Any) -> tuple[int, Any]:
    response = await client.post(path, json=body, headers=api_headers(Origin=SITE))
    return response.status_code, await response.get_json()


async def track(env: AdminEnv, user: str, **fields: Any) -> tuple[int, Any, Any]:
    """What the user's page sends: a batch (``events=[...]``) or, by default, the
    invitation script's empty one."""
    body = {
        "apiKey": env.acme.api_key,
        "userId": user,
        "subscriptionTier": "paid",
        "events": [],
        **fields,
    }
    response = await env.client().post(
        TRACK_PATH,
        data=orjson.dumps(body),
        headers={"Content-Type": "text/plain", "Origin": ORIGIN},
    )
    return response.status_code, response.headers, await response.get_json()


def calls_seen(messages: list[str]) -> list[tuple[str, str]]:
    out = []
    for text in messages:
        message = orjson.loads(text or "{}")
        if message.get("type") == "call":
            out.append((message["call"]["userId"], message["call"]["status"]))
    return out


async def drain(sub: Any) -> list[str]:
    seen = []
    with trio.move_on_after(0.2):
        while True:
            seen.append(await sub.next() or "")
    return seen


async def test_a_call_invites_the_users_page_and_the_answer_comes_back(
    alerts_env: AdminEnv,
) -> None:
    env = alerts_env
    admin = await env.admin(env.acme_token, name="Ada")
    await env.send(env.acme, "u1", ERRORS, tier="paid")
    # Flagged (an open support need): every answer says to ask for invitations.
    status, headers, body = await track(
        env, "u1", events=[{"type": "heartbeat", "timestamp": now_ms()}]
    )
    assert status == 200 and headers["X-Tippen-Poll"] == "2000"
    assert "X-Tippen-Poll" in headers["Access-Control-Expose-Headers"]
    status, headers, body = await track(env, "u1")
    assert body == {"success": True, "stored": 0, "analyzed": False}  # nothing waiting yet

    with env.hub.subscribe(env.acme.id) as dashboard:
        status, started = await post(admin, "/api/admin/user/video-call", {"userId": "u1"})
        assert status == 200
        invitation = started["invitation"]
        assert (invitation["status"], invitation["agent"]) == ("pending", "Ada")
        assert invitation["url"] == started["call"]["url"]
        # The page asks: the invitation, with the very room the agent got.
        _, headers, body = await track(env, "u1")
        invite = body["invite"]
        assert (invite["id"], invite["agent"], invite["url"]) == (
            started["call"]["id"],
            "Ada",
            started["call"]["url"],
        )
        assert 119_000 < invite["expiresInMs"] <= 120_000
        # The page says "Join".
        answer = {"id": invite["id"], "answer": "joined"}
        _, _, body = await track(env, "u1", inviteAnswer=answer)
        assert body["answered"] is True and "invite" not in body
        _, _, again = await track(env, "u1", inviteAnswer=answer)
        assert again["answered"] is False
        seen = await drain(dashboard)
    assert calls_seen(seen) == [("u1", "pending"), ("u1", "pending"), ("u1", "joined")]
    delivered = [orjson.loads(m)["call"] for m in seen if '"type":"call"' in m][1]
    assert delivered["deliveredAt"] is not None  # shown on the user's page
    # The alert's lifecycle: the first call, and how its invitation ended.
    await settle()
    [alert] = (
        await (await admin.get("/api/admin/alerts?userId=u1", headers=api_headers())).get_json()
    )["alerts"]
    assert (alert["callStatus"], alert["callBy"], alert["firstCallBy"]) == ("joined", "Ada", "Ada")
    assert alert["firstCallAt"] is not None
    calls = await (
        await admin.get("/api/admin/user/video-calls?id=u1", headers=api_headers())
    ).get_json()
    assert calls["calls"][0]["invitation"] == "joined"


async def test_not_now_and_no_answer_reach_the_agent(alerts_env: AdminEnv) -> None:
    env = alerts_env
    quick = replace(env.acme.settings, invite_timeout_s=0.3)
    env.acme = await env.set_settings(env.acme, quick)
    admin = await env.admin(env.acme_token, name="Ada")
    await env.send(env.acme, "u1", ERRORS)
    await env.send(env.acme, "u2", ERRORS)
    with env.hub.subscribe(env.acme.id) as dashboard:
        _, first = await post(admin, "/api/admin/user/video-call", {"userId": "u1"})
        _, _, body = await track(env, "u1")
        await track(env, "u1", inviteAnswer={"id": body["invite"]["id"], "answer": "declined"})
        await post(admin, "/api/admin/user/video-call", {"userId": "u2"})
        await trio.sleep(0.5)  # nobody answers u2's page
        seen = await drain(dashboard)
    assert ("u1", "declined") in calls_seen(seen) and ("u2", "ignored") in calls_seen(seen)
    _, _, body = await track(env, "u2")
    assert "invite" not in body
    # A second call replaces a waiting first one.
    await post(admin, "/api/admin/user/video-call", {"userId": "u1"})
    await post(admin, "/api/admin/user/video-call", {"userId": "u1"})
    _, _, body = await track(env, "u1")
    assert body["invite"]["id"] != first["call"]["id"]
    board = env.services.calls
    assert board is not None
    statuses = {i.call_id: i.status for i in board.recent(env.acme.id) if i.user_id == "u1"}
    assert sorted(statuses.values()) == ["declined", "pending", "replaced"]


async def test_an_unflagged_user_is_not_asked_to_poll(alerts_env: AdminEnv) -> None:
    env = alerts_env
    await env.send(env.acme, "calm")
    _, headers, _ = await track(env, "calm", events=[{"type": "heartbeat", "timestamp": now_ms()}])
    assert "X-Tippen-Poll" not in headers
    # A call invites them all the same: the next answer says to ask.
    admin = await env.admin(env.acme_token)
    await post(admin, "/api/admin/user/video-call", {"userId": "calm"})
    _, headers, body = await track(env, "calm")
    assert headers["X-Tippen-Poll"] == "2000" and body["invite"]["agent"] == "Sam"
    # Someone else's call id is no answer.
    _, _, body = await track(env, "calm", inviteAnswer={"id": 999_999, "answer": "joined"})
    assert body["answered"] is False and "invite" in body
    for bad in ({"id": "1", "answer": "joined"}, {"id": 1, "answer": "maybe"}, "joined"):
        status, _, _ = await track(env, "calm", inviteAnswer=bad)
        assert status == 400


async def test_a_tenant_without_invitations_only_gets_the_link(alerts_env: AdminEnv) -> None:
    env = alerts_env
    env.acme = await env.set_settings(env.acme, replace(env.acme.settings, call_invitations=False))
    admin = await env.admin(env.acme_token, name="Ada")
    await env.send(env.acme, "u1", ERRORS)
    status, started = await post(admin, "/api/admin/user/video-call", {"userId": "u1"})
    assert status == 200 and started["invitation"] is None and started["call"]["url"]
    _, headers, body = await track(env, "u1")
    assert "X-Tippen-Poll" not in headers and "invite" not in body
    await settle()
    response = await admin.get("/api/admin/alerts?userId=u1", headers=api_headers())
    [alert] = (await response.get_json())["alerts"]
    assert alert["callStatus"] == "not_invited"


async def test_waiting_invitations_survive_a_restart(alerts_env: AdminEnv, nursery: Any) -> None:
    env = alerts_env
    admin = await env.admin(env.acme_token, name="Ada")
    await env.send(env.acme, "u1", ERRORS)
    _, started = await post(admin, "/api/admin/user/video-call", {"userId": "u1"})
    board = await nursery.start(CallBoard(env.store, env.registry.clock).run)
    waiting = board.pending(env.acme.id, "u1")
    assert waiting is not None and waiting.call_id == started["call"]["id"]
    assert waiting.url == started["call"]["url"] and waiting.agent == "Ada"
