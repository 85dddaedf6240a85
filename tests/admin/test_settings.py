"""``GET /api/admin/settings`` and the ``settings`` message: the tenant's settings as
its support staff see them, secrets masked, for its own admins only, pushed to
open dashboards when they change."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson
import pytest
import trio

from tippen_rt.demo import DEMO_TENANT, SHORT_THRESHOLDS, ensure_demo_tenant
from tippen_rt.persist import rotate_api_key, update_tenant
from tippen_rt.tenants import Tenant

from .conftest import HOST, SITE, AdminEnv, api_headers, build_env

SAME_SITE = {"Origin": SITE, "Host": HOST}
BOT_TOKEN = "xoxb-1111-2222-very-secret-bot-token"
WEBHOOK = "https://hooks.slack.com/services/T0SECRET/B0SECRET/webhook-secret-part"
IDENTITY_SECRET = "identity-secret-" + "9" * 48


async def get_settings(client: Any) -> dict[str, Any]:
    response = await client.get("/api/admin/settings", headers=api_headers())
    assert response.status_code == 200, await response.get_data()
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = await response.get_json()
    return body


def trigger(body: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [t for t in body["triggers"] if t["trigger"] == name]
    return found


async def test_the_default_settings_in_numbers_and_words(env: AdminEnv) -> None:
    body = await get_settings(await env.admin(env.acme_token))
    assert body["tenant"] == "acme"
    assert [t["trigger"] for t in body["triggers"]] == [
        "stuck_on_page",
        "low_activity",
        "multiple_errors",
        "long_inactivity",
    ]
    low = trigger(body, "low_activity")
    assert low["title"] == "Low activity" and low["on"] is True
    assert low["tiers"] == ["free_trial"] and low["tiersInWords"] == "free_trial"
    assert low["thresholds"] == [
        {"name": "low_activity_min_events", "value": 3, "inWords": "3 interactions"},
        {"name": "low_activity_window_s", "value": 600, "inWords": "10 min"},
    ]
    assert low["firesWhen"].startswith("fewer than 3 interactions in the last 10 min")
    errors = trigger(body, "multiple_errors")
    assert errors["tiersInWords"] == "all tiers"
    assert errors["firesWhen"] == "more than 3 errors within 5 min"
    presence = {p["name"]: p for p in body["presence"]}
    assert presence["presence_timeout_s"]["value"] == 90
    assert presence["session_timeout_s"]["inWords"] == "30 min"
    assert body["retention"] == {"name": "retention_days", "value": 90, "inWords": "90 days"}
    assert body["origins"] == ["https://app.example.com"]
    assert body["requireOrigin"] is True and body["identity"] == "off"
    assert body["slack"]["mode"] == "off"
    assert body["alertRateLimit"]["value"] == 600
    assert body["alertRateLimit"]["inWords"] == "one Slack alert per user per 10 min"
    assert body["slackMaxPerMinute"]["value"] == 10
    assert body["maxLiveUsers"]["inWords"] == "20,000 live users"
    assert body["videoCallTemplate"] == "https://meet.jit.si/tippen-{tenant}-{room}"


async def test_changes_show_and_no_secret_leaves_in_clear(env: AdminEnv) -> None:
    changed = env.acme.settings.with_triggers({"low_activity": False}, {"stuck_on_page": ("paid",)})
    changed = replace(
        changed,
        slack_bot_token=BOT_TOKEN,
        slack_channel="#support",
        slack_webhook_url=WEBHOOK,
        require_user_hash=True,
        require_origin=False,
        alert_rate_limit_s=0,
        max_live_users=0,
    )

    def write(conn: Any) -> Tenant:
        update_tenant(conn, "acme", settings=changed, identity_secret=IDENTITY_SECRET)
        return rotate_api_key(conn, "acme", overlap_s=3600, now_ms=int(time.time() * 1000))

    acme = await env.store.write(write)
    await env.services.tenants.reload()
    assert acme.previous_api_key

    response = await (await env.admin(env.acme_token)).get(
        "/api/admin/settings", headers=api_headers()
    )
    raw = (await response.get_data()).decode()
    for secret in (
        BOT_TOKEN,
        BOT_TOKEN[5:-4],
        WEBHOOK,
        "T0SECRET",
        "webhook-secret-part",
        IDENTITY_SECRET,
        acme.admin_token_hash,
        acme.admin_token_hash.removeprefix("sha256$"),
        acme.previous_api_key,
        env.acme_token,
    ):
        assert secret not in raw, secret
    body = orjson.loads(raw)
    assert body["slack"]["mode"] == "bot" and body["slack"]["source"] == "tenant"
    assert body["slack"]["target"] == "bot token xoxb-…oken posting to #support"
    assert body["slack"]["updatesMessages"] is True
    assert body["identity"] == "required"
    assert body["requireOrigin"] is False and body["originRule"].startswith("not required")
    assert body["alertRateLimit"]["inWords"] == "none"
    assert body["maxLiveUsers"]["inWords"] == "no limit"
    assert trigger(body, "low_activity")["on"] is False
    stuck = trigger(body, "stuck_on_page")
    assert stuck["on"] is True and stuck["tiers"] == ["paid"]


async def test_a_webhook_is_shown_as_its_host_only(env: AdminEnv) -> None:
    url = "https://user:pass@hooks.example.com/services/T1/B2/secret?token=abc"
    await env.set_settings(env.acme, replace(env.acme.settings, slack_webhook_url=url))
    body = await get_settings(await env.admin(env.acme_token))
    assert body["slack"]["target"] == "incoming webhook https://hooks.example.com/…"
    raw = orjson.dumps(body).decode()
    assert "pass" not in raw and "secret" not in raw and "token=abc" not in raw


async def test_login_is_required(env: AdminEnv) -> None:
    response = await env.client().get("/api/admin/settings", headers=api_headers())
    assert response.status_code == 401
    assert "triggers" not in await response.get_data(as_text=True)


async def test_each_admin_sees_only_their_own_tenant(env: AdminEnv) -> None:
    await env.set_settings(
        env.acme,
        replace(
            env.acme.settings.with_triggers({"multiple_errors": False}, {}),
            slack_bot_token=BOT_TOKEN,
            slack_channel="#acme-only-channel",
        ),
    )
    other = await env.admin(env.other_token)
    # Whatever the request names, the tenant is the logged-in admin's.
    for path in ("/api/admin/settings", f"/api/admin/settings?tenant={env.acme.id}&id=acme"):
        response = await other.get(path, headers=api_headers())
        assert response.status_code == 200
        raw = (await response.get_data()).decode()
        body = orjson.loads(raw)
        assert body["tenant"] == "other"
        assert trigger(body, "multiple_errors")["on"] is True
        assert body["slack"]["mode"] == "off"
        assert "acme-only-channel" not in raw and "xoxb" not in raw
    acme = await get_settings(await env.admin(env.acme_token))
    assert trigger(acme, "multiple_errors")["on"] is False


async def receive(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await ws.receive())
    return message


async def test_a_change_reaches_the_tenants_open_dashboards_only(env: AdminEnv) -> None:
    acme = await env.admin(env.acme_token)
    other = await env.admin(env.other_token)
    async with (
        acme.websocket("/ws/admin", headers=SAME_SITE) as acme_ws,
        other.websocket("/ws/admin", headers=SAME_SITE) as other_ws,
    ):
        assert (await receive(acme_ws))["type"] == "snapshot"
        assert (await receive(other_ws))["type"] == "snapshot"
        await env.set_settings(
            env.acme, env.acme.settings.with_triggers({"low_activity": False}, {})
        )
        with trio.fail_after(10):
            message = await receive(acme_ws)
        assert message["type"] == "settings"
        assert trigger(message, "low_activity")["on"] is False
        # The same JSON as the GET.
        assert {k: v for k, v in message.items() if k != "type"} == await get_settings(acme)

        # The other tenant's dashboard got nothing of it: its next message is its own user.
        await env.send(env.other, "other-user")
        with trio.fail_after(10):
            message = await receive(other_ws)
        assert message["type"] == "user" and message["user"]["userId"] == "other-user"


async def test_a_reload_without_changes_sends_nothing(env: AdminEnv) -> None:
    acme = await env.admin(env.acme_token)
    async with acme.websocket("/ws/admin", headers=SAME_SITE) as ws:
        assert (await receive(ws))["type"] == "snapshot"
        await env.services.tenants.reload()
        await env.send(env.acme, "u1")
        with trio.fail_after(10):
            message = await receive(ws)
        assert message["type"] == "user"


async def test_new_origins_are_pushed_too(env: AdminEnv) -> None:
    acme = await env.admin(env.acme_token)
    async with acme.websocket("/ws/admin", headers=SAME_SITE) as ws:
        assert (await receive(ws))["type"] == "snapshot"
        await env.store.write(
            lambda conn: update_tenant(
                conn, "acme", origins=[*env.acme.origins, "https://beta.example.com"]
            )
        )
        await env.services.tenants.reload()
        with trio.fail_after(10):
            message = await receive(ws)
        assert message["type"] == "settings"
        assert message["origins"] == ["https://app.example.com", "https://beta.example.com"]


@pytest.fixture
async def demo_env(admin_settings: Any, store: Any, nursery: trio.Nursery) -> AdminEnv:
    env = await build_env(admin_settings.replace(demo=True), store, nursery, with_notifier=False)
    await store.write(lambda conn: ensure_demo_tenant(conn, "http://localhost"))
    await env.services.tenants.reload()
    return env


async def test_the_demo_switch_is_pushed_to_the_demo_dashboards(demo_env: AdminEnv) -> None:
    demo = next(t for t in demo_env.services.tenants.all() if t.name == DEMO_TENANT)
    with demo_env.hub.subscribe(demo.id) as sub:
        response = await demo_env.client().post(
            "/demo/thresholds", json={"short": True}, headers={"Host": HOST}
        )
        assert response.status_code == 200, await response.get_data()
        with trio.fail_after(10):
            text = await sub.next()
    assert text is not None
    message = orjson.loads(text)
    assert message["type"] == "settings" and message["tenant"] == DEMO_TENANT
    stuck = trigger(message, "stuck_on_page")
    assert stuck["thresholds"][0] == {
        "name": "stuck_on_page_s",
        "value": SHORT_THRESHOLDS["stuck_on_page_s"],
        "inWords": "30 s",
    }
