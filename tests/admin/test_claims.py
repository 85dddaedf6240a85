"""Claims ("I'm on it"), the needs-help queue and bulk acknowledge, through the admin API
with the real Notifier, Registry and Hub."""

from __future__ import annotations

from typing import Any

import orjson
import trio

from tippen_rt.persist import create_agent

from .conftest import SITE, AdminEnv, api_headers, settle

ERRORS = [{"type": "error", "message": f"boom {i}"} for i in range(4)]


async def get(client: Any, path: str) -> tuple[int, Any]:
    response = await client.get(path, headers=api_headers())
    return response.status_code, await response.get_json()


async def post(client: Any, path: str, body: Any) -> tuple[int, Any]:
    response = await client.post(path, json=body, headers=api_headers(Origin=SITE))
    return response.status_code, await response.get_json()


async def agents(env: AdminEnv) -> tuple[Any, Any]:
    """Ada and Bo, each logged in with their own agent token."""
    clients = []
    for name in ("Ada Park", "Bo Chen"):
        _, token = await env.store.write(lambda c, n=name: create_agent(c, "acme", n))
        await env.services.tenants.reload()
        clients.append(await env.admin(token))
    return clients[0], clients[1]


async def test_a_claim_reaches_every_dashboard_and_warns_the_second_agent(
    alerts_env: AdminEnv,
) -> None:
    env = alerts_env
    ada, bo = await agents(env)
    await env.send(env.acme, "u1", ERRORS, tier="paid", name="Ann Lee")
    with env.hub.subscribe(env.acme.id) as dashboard:
        status, body = await post(ada, "/api/admin/user/claim", {"userId": "u1"})
        assert (status, body["claimedBy"], body["takenOverFrom"]) == (200, "Ada Park", None)
        with trio.fail_after(1):  # within a second, through the hub
            while True:
                message = orjson.loads(await dashboard.next() or "{}")
                if message.get("type") == "user" and message["user"]["claimedBy"]:
                    break
    assert message["user"]["claimedBy"] == "Ada Park" and message["user"]["claimedAt"]
    # The alerts say so too (and Slack would be updated in bot mode).
    _, listed = await get(bo, "/api/admin/alerts?userId=u1")
    assert [(a["claimedBy"], a["firstClaimedBy"]) for a in listed["alerts"]] == [
        ("Ada Park", "Ada Park")
    ]

    # Bo is told Ada is on it, when claiming and when calling.
    status, body = await post(bo, "/api/admin/user/claim", {"userId": "u1"})
    assert (status, body["error"]["code"], body["claim"]["by"]) == (409, "claimed", "Ada Park")
    status, body = await post(bo, "/api/admin/user/video-call", {"userId": "u1"})
    assert (status, body["error"]["code"]) == (409, "claimed")
    assert "Ada Park is on it" in body["error"]["message"]
    status, body = await post(bo, "/api/admin/user/video-call", {"userId": "u1", "confirm": True})
    assert status == 200 and body["call"]["startedBy"] == "Bo Chen"
    # Ada is not warned about her own claim; Bo may take over.
    status, _ = await post(ada, "/api/admin/user/video-call", {"userId": "u1"})
    assert status == 200
    status, body = await post(bo, "/api/admin/user/claim", {"userId": "u1", "force": True})
    assert (status, body["takenOverFrom"]) == (200, "Ada Park")
    await settle()
    state = env.registry.state(env.acme.id, "u1")
    assert state is not None and state.claimed_by == "Bo Chen"
    status, body = await post(ada, "/api/admin/user/unclaim", {"userId": "u1"})
    assert (status, body["was"]) == (200, "Bo Chen")
    await settle()
    assert env.registry.state(env.acme.id, "u1").claimed_by is None  # type: ignore[union-attr]


async def test_calling_an_unclaimed_user_claims_them(alerts_env: AdminEnv) -> None:
    env = alerts_env
    ada, _ = await agents(env)
    await env.send(env.acme, "u1", ERRORS)
    await env.send(env.acme, "calm")  # no support need: calling claims nothing
    for user in ("u1", "calm"):
        status, _ = await post(ada, "/api/admin/user/video-call", {"userId": user})
        assert status == 200
    await settle()
    assert env.registry.state(env.acme.id, "u1").claimed_by == "Ada Park"  # type: ignore[union-attr]
    assert env.registry.state(env.acme.id, "calm").claimed_by is None  # type: ignore[union-attr]
    status, body = await post(ada, "/api/admin/user/claim", {"userId": "calm"})
    assert (status, body["error"]["code"]) == (409, "nothing_to_claim")
    status, _ = await post(ada, "/api/admin/user/claim", {"userId": "nobody"})
    assert status == 404
    status, _ = await post(ada, "/api/admin/user/claim", {"userId": "u1", "force": "yes"})
    assert status == 400


async def test_the_queue_is_one_ranked_row_per_user_with_filters(alerts_env: AdminEnv) -> None:
    env = alerts_env
    admin = await env.admin(env.acme_token)
    await env.send(env.acme, "trial", ERRORS, tier="free_trial")
    await env.send(env.acme, "ent", ERRORS, tier="enterprise", name="Eve Ent")
    await env.send(env.acme, "paid", ERRORS, tier="paid")
    await env.send(env.acme, "fine", tier="enterprise")
    await env.send(env.acme, "paid", [{"type": "error", "message": "more"}], tier="paid")
    status, body = await get(admin, "/api/admin/queue")
    assert status == 200
    assert [(u["rank"], u["userId"]) for u in body["users"]] == [
        (1, "ent"),
        (2, "paid"),
        (3, "trial"),
    ]
    assert body["total"] == 3
    ent = body["users"][0]
    assert (ent["person"], ent["tierWeight"], ent["severity"]) == (
        "Eve Ent (ent@example.com)",
        3,
        3,
    )
    assert ent["waitingSince"] and ent["triggers"][0]["trigger"] == "multiple_errors"
    _, paged = await get(admin, "/api/admin/queue?limit=1&offset=1")
    assert [(u["rank"], u["userId"]) for u in paged["users"]] == [(2, "paid")]
    _, paid = await get(admin, "/api/admin/queue?tier=paid")
    assert [u["userId"] for u in paid["users"]] == ["paid"]
    _, stuck = await get(admin, "/api/admin/queue?trigger=stuck_on_page")
    assert stuck["users"] == []
    await post(admin, "/api/admin/user/claim", {"userId": "ent"})
    await settle()
    _, open_ = await get(admin, "/api/admin/queue?unclaimed=true")
    assert [u["userId"] for u in open_["users"]] == ["paid", "trial"]
    # The tenant weighs free trials most: they come first.
    weights = env.acme.settings.with_tier_weights({"free_trial": 9})
    await env.set_settings(env.acme, weights)
    admin = await env.admin(env.acme_token)
    _, body = await get(admin, "/api/admin/queue")
    assert [u["userId"] for u in body["users"]] == ["trial", "ent", "paid"]
    _, settings = await get(admin, "/api/admin/settings")
    assert settings["queue"]["tierWeights"] == {"free_trial": 9, "paid": 2, "enterprise": 3}
    assert settings["queue"]["severity"]["multiple_errors"] == 3
    for bad in ("tier=gold", "trigger=bored", "offset=-1", "unclaimed=maybe"):
        status, _ = await get(admin, f"/api/admin/queue?{bad}")
        assert status == 400, bad
    # Another tenant's queue is its own.
    other = await env.admin(env.other_token)
    _, theirs = await get(other, "/api/admin/queue")
    assert theirs["users"] == []


async def test_bulk_acknowledge_of_a_selection(alerts_env: AdminEnv) -> None:
    env = alerts_env
    admin = await env.admin(env.acme_token, name="Kim")
    for user in ("u1", "u2", "u3"):
        await env.send(env.acme, user, ERRORS)
    await env.send(env.other, "theirs", ERRORS)
    status, body = await post(
        admin, "/api/admin/users/acknowledge", {"userIds": ["u1", "u3", "u1", "theirs"]}
    )
    assert status == 200
    assert (body["acknowledged"], body["notFound"]) == (["u1", "u3"], ["theirs"])
    _, listed = await get(admin, "/api/admin/alerts?status=open")
    assert [a["userId"] for a in listed["alerts"]] == ["u2"]
    for bad in ({"userIds": []}, {"userIds": "u1"}, {"userIds": ["x"] * 501}, {"userIds": [5]}):
        status, _ = await post(admin, "/api/admin/users/acknowledge", bad)
        assert status == 400
