"""``/ws/admin`` through quart-trio's test client: origin, snapshot, updates, resync."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
from quart.testing.connections import WebsocketDisconnectError

from tippen_rt.persist import rotate_admin_token

from .conftest import HOST, SITE, AdminEnv, refused_websocket

SAME_SITE = {"Origin": SITE, "Host": HOST}


async def receive(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await ws.receive())
    return message


async def receive_until(ws: Any, predicate: Any) -> list[dict[str, Any]]:
    """Messages up to and including the first that satisfies ``predicate``."""
    seen = []
    while True:
        message = await receive(ws)
        seen.append(message)
        if predicate(message):
            return seen


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": HOST},  # no Origin at all
        {"Origin": "https://evil.example", "Host": HOST},
        {"Origin": "http://localhost.evil.example", "Host": HOST},
        {"Origin": "null", "Host": HOST},
    ],
)
async def test_other_origins_are_refused(env: AdminEnv, headers: dict[str, str]) -> None:
    admin = await env.admin(env.acme_token)
    response = await refused_websocket(admin, headers)
    assert response.status_code == 403


async def test_a_snapshot_on_connect_then_live_updates(env: AdminEnv) -> None:
    await env.send(env.acme, "already-here", [{"type": "route", "route": "/a"}])
    admin = await env.admin(env.acme_token)
    async with admin.websocket("/ws/admin", headers=SAME_SITE) as ws:
        snapshot = await receive(ws)
        assert snapshot["type"] == "snapshot"
        assert [u["userId"] for u in snapshot["users"]] == ["already-here"]
        assert snapshot["users"][0]["currentRoute"] == "/a"
        assert isinstance(snapshot["serverTime"], int)

        await env.send(env.acme, "newcomer", [{"type": "route", "route": "/signup"}])
        update = await receive(ws)
        assert update["type"] == "user"
        assert update["user"]["userId"] == "newcomer"
        assert update["user"]["currentRoute"] == "/signup"

        await env.send(env.acme, "newcomer", [{"type": "error", "message": "x"}] * 4)
        seen = await receive_until(ws, lambda m: m["type"] == "trigger")
        assert seen[-1]["trigger"] == "multiple_errors" and seen[-1]["userId"] == "newcomer"
        seen = await receive_until(ws, lambda m: m["type"] == "user" and m["user"]["needsSupport"])
        assert seen[-1]["user"]["triggers"][0]["trigger"] == "multiple_errors"


async def test_erasing_a_user_is_announced(env: AdminEnv) -> None:
    await env.send(env.acme, "u1")
    admin = await env.admin(env.acme_token)
    async with admin.websocket("/ws/admin", headers=SAME_SITE) as ws:
        await receive(ws)
        response = await admin.post(
            "/api/admin/user/erase",
            json={"userId": "u1"},
            headers={"Host": HOST, "Origin": SITE},
        )
        assert response.status_code == 200
        message = await receive(ws)
        assert message == {
            "type": "user_left",
            "userId": "u1",
            "reason": "erased",
            "at": message["at"],
        }


async def test_a_client_that_stops_reading_is_resynced(env: AdminEnv) -> None:
    """The test client buffers 10 messages and the hub queue holds 64 here;
    100 users arriving while nobody reads overflow both."""
    admin = await env.admin(env.acme_token)
    async with admin.websocket("/ws/admin", headers=SAME_SITE) as ws:
        assert (await receive(ws))["type"] == "snapshot"
        for i in range(100):
            await env.send(env.acme, f"user-{i:03}")
        assert env.hub.stats()["resyncs"] == 1
        # What was already on its way arrives, then one fresh snapshot with
        # everyone instead of the dropped backlog, then live updates again.
        seen = await receive_until(ws, lambda m: m["type"] == "snapshot")
        assert len(seen) <= 10 + 64 + 1
        assert len(seen[-1]["users"]) == 100
        await env.send(env.acme, "after-resync")
        message = await receive(ws)
        assert message["type"] == "user" and message["user"]["userId"] == "after-resync"


async def test_the_page_can_ask_for_a_fresh_snapshot(env: AdminEnv) -> None:
    await env.send(env.acme, "u1")
    admin = await env.admin(env.acme_token)
    async with admin.websocket("/ws/admin", headers=SAME_SITE) as ws:
        await receive(ws)
        await ws.send("resync")
        message = await receive(ws)
        assert message["type"] == "snapshot" and [u["userId"] for u in message["users"]] == ["u1"]


def test_dashboards_are_pinged_before_the_read_timeout_would_cut_them_off() -> None:
    from tippen_rt.config import Settings
    from tippen_rt.http import hypercorn_config

    config = hypercorn_config(Settings())
    assert config.websocket_ping_interval is not None
    assert config.websocket_ping_interval < config.read_timeout


async def test_a_stopping_service_says_goodbye_to_dashboards(env: AdminEnv) -> None:
    from quart.testing.connections import WebsocketDisconnectError

    admin = await env.admin(env.acme_token)
    async with admin.websocket("/ws/admin", headers=SAME_SITE) as ws:
        await receive(ws)
        env.hub.close()  # what the service does when shutdown begins
        with pytest.raises(WebsocketDisconnectError) as caught:
            await ws.receive()
        assert caught.value.args[0] == 1001


async def test_the_public_url_counts_as_this_site(env: AdminEnv) -> None:
    """Behind a proxy that rewrites Host, TIPPEN_PUBLIC_URL names the site."""
    from dataclasses import replace

    env.services.settings = replace(env.settings, public_url="https://tippen.example.com/")
    admin = await env.admin(env.acme_token)
    headers = {"Origin": "https://tippen.example.com", "Host": "10.0.0.5:8080"}
    async with admin.websocket("/ws/admin", headers=headers) as ws:
        assert (await receive(ws))["type"] == "snapshot"
    response = await refused_websocket(admin, {"Origin": "https://other.example", "Host": HOST})
    assert response.status_code == 403


async def _closed_with(ws: Any) -> tuple[list[dict[str, Any]], int | None]:
    """Messages until the server closes the socket, and the close code."""
    seen: list[dict[str, Any]] = []
    with trio.fail_after(5):
        try:
            while True:
                seen.append(await receive(ws))
        except WebsocketDisconnectError as exc:
            return seen, exc.args[0] if exc.args else None


async def test_rotating_the_admin_token_closes_open_dashboards(env: AdminEnv) -> None:
    admin = await env.admin(env.acme_token)
    other = await env.admin(env.other_token)
    async with (
        admin.websocket("/ws/admin", headers=SAME_SITE) as ws,
        other.websocket("/ws/admin", headers=SAME_SITE) as other_ws,
    ):
        assert (await receive(ws))["type"] == "snapshot"
        assert (await receive(other_ws))["type"] == "snapshot"
        await env.store.write(lambda conn: rotate_admin_token(conn, "acme"))
        await env.services.tenants.reload()
        seen, code = await _closed_with(ws)
        assert seen == [{"type": "session_expired"}] and code == 4401
        # The other tenant's dashboard still streams.
        await env.send(env.other, "still-here")
        assert (await receive(other_ws))["user"]["userId"] == "still-here"


async def test_logging_out_closes_that_sessions_dashboards(env: AdminEnv) -> None:
    admin = await env.admin(env.acme_token)
    colleague = await env.admin(env.acme_token)
    async with (
        admin.websocket("/ws/admin", headers=SAME_SITE) as ws,
        colleague.websocket("/ws/admin", headers=SAME_SITE) as colleague_ws,
    ):
        await receive(ws)
        await receive(colleague_ws)
        response = await admin.post("/logout", headers={"Host": HOST})
        assert response.status_code == 303
        seen, code = await _closed_with(ws)
        assert seen == [{"type": "session_expired"}] and code == 4401
        await env.send(env.acme, "u1")
        assert (await receive(colleague_ws))["user"]["userId"] == "u1"
