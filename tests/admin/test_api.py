"""The admin JSON API: users, timeline, journey, errors, calls, acknowledge, erase."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tippen_rt.persist import SummaryRow, upsert_summaries
from tippen_rt.persist._admin import list_video_calls
from tippen_rt.tenants import TenantSettings

from ..conftest import now_ms
from .conftest import SITE, AdminEnv, api_headers


async def get(client: Any, path: str) -> tuple[int, Any]:
    response = await client.get(path, headers=api_headers())
    return response.status_code, await response.get_json()


async def post(client: Any, path: str, body: Any) -> tuple[int, Any]:
    response = await client.post(path, json=body, headers=api_headers(Origin=SITE))
    return response.status_code, await response.get_json()


def stored_summary(tenant_id: int, user_id: str, *, tier: str, last_active_at: int) -> SummaryRow:
    return SummaryRow(
        tenant_id=tenant_id,
        user_id=user_id,
        email=f"{user_id}@example.com",
        tier=tier,
        session_started_at=last_active_at - 60_000,
        last_active_at=last_active_at,
        current_route="/settings",
        time_on_current_page=5_000,
        session_events=7,
        session_errors=1,
        last_error_at=None,
        needs_support=False,
        support_reasons=(),
        support_triggered_at=None,
        session_open=False,
        updated_at=last_active_at,
    )


async def test_users_lists_live_users_with_filters(env: AdminEnv) -> None:
    await env.send(env.acme, "trial-1", tier="free_trial")
    await env.send(env.acme, "paid-1", [{"type": "route", "route": "/billing"}], tier="paid")
    errors = [{"type": "error", "message": f"boom {i}"} for i in range(4)]
    await env.send(env.acme, "broken-1", errors, tier="paid")
    admin = await env.admin(env.acme_token)

    status, body = await get(admin, "/api/admin/users?scope=live")
    assert status == 200
    ids = [u["userId"] for u in body["users"]]
    assert ids[0] == "broken-1"  # needing support comes first
    assert set(ids) == {"trial-1", "paid-1", "broken-1"}
    paid = next(u for u in body["users"] if u["userId"] == "paid-1")
    assert paid["live"] is True and paid["currentRoute"] == "/billing" and paid["tier"] == "paid"
    broken = body["users"][0]
    assert broken["needsSupport"] is True
    assert broken["triggers"][0]["trigger"] == "multiple_errors"
    assert broken["triggers"][0]["reason"]  # the rule's words, kept by the hub

    _, body = await get(admin, "/api/admin/users?scope=live&tier=paid")
    assert {u["userId"] for u in body["users"]} == {"paid-1", "broken-1"}
    _, body = await get(admin, "/api/admin/users?scope=live&needsSupport=true")
    assert [u["userId"] for u in body["users"]] == ["broken-1"]
    _, body = await get(admin, "/api/admin/users?scope=live&needsSupport=false&tier=paid")
    assert [u["userId"] for u in body["users"]] == ["paid-1"]
    _, body = await get(admin, "/api/admin/users?scope=live&q=TRIAL")
    assert [u["userId"] for u in body["users"]] == ["trial-1"]


async def test_recent_users_include_stored_ones_by_last_activity(env: AdminEnv) -> None:
    await env.send(env.acme, "live-1")
    now = now_ms()
    rows = [
        stored_summary(env.acme.id, "gone-10min", tier="paid", last_active_at=now - 600_000),
        stored_summary(
            env.acme.id, "gone-2days", tier="free_trial", last_active_at=now - 2 * 86_400_000
        ),
        stored_summary(env.other.id, "someone-elses", tier="paid", last_active_at=now - 1000),
    ]
    await env.store.write(lambda conn: upsert_summaries(conn, rows))
    admin = await env.admin(env.acme_token)

    _, body = await get(admin, "/api/admin/users")
    assert [u["userId"] for u in body["users"]] == ["live-1", "gone-10min", "gone-2days"]
    gone = body["users"][1]
    assert gone["live"] is False and gone["currentRoute"] == "/settings"
    _, body = await get(admin, "/api/admin/users?activeWithinMin=60")
    assert [u["userId"] for u in body["users"]] == ["live-1", "gone-10min"]
    _, body = await get(admin, "/api/admin/users?activeWithinMin=60&tier=paid")
    assert [u["userId"] for u in body["users"]] == ["gone-10min"]


@pytest.mark.parametrize(
    "query",
    ["scope=everyone", "tier=gold", "needsSupport=maybe", "activeWithinMin=0", "limit=100000"],
)
async def test_bad_filters_are_400(env: AdminEnv, query: str) -> None:
    admin = await env.admin(env.acme_token)
    status, body = await get(admin, f"/api/admin/users?{query}")
    assert status == 400 and body["error"]["code"] == "invalid_field"


async def test_one_user_live_and_stored(env: AdminEnv) -> None:
    await env.send(env.acme, "u/with slash?&#", [{"type": "route", "route": "/a"}])
    admin = await env.admin(env.acme_token)
    status, body = await get(admin, "/api/admin/user?id=u%2Fwith%20slash%3F%26%23")
    assert status == 200
    assert body["userId"] == "u/with slash?&#"
    assert body["live"]["currentRoute"] == "/a"
    assert body["videoCalls"] == []
    status, body = await get(admin, "/api/admin/user?id=nobody")
    assert status == 404
    status, _ = await get(admin, "/api/admin/user")
    assert status == 400


async def test_events_page_backwards_by_id_without_gaps(env: AdminEnv) -> None:
    for batch in range(5):
        events = [{"type": "click", "element": f"button#b{batch}-{i}"} for i in range(24)]
        await env.send(env.acme, "u1", events)
    await env.send(env.acme, "u1", [{"type": "heartbeat"}])
    admin = await env.admin(env.acme_token)

    seen: list[int] = []
    before = None
    pages = 0
    while True:
        path = "/api/admin/user/events?id=u1&limit=50" + (f"&before={before}" if before else "")
        status, body = await get(admin, path)
        assert status == 200
        ids = [e["id"] for e in body["events"]]
        assert ids == sorted(ids, reverse=True)
        seen += ids
        pages += 1
        before = body["nextBefore"]
        if before is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 121
    _, body = await get(admin, "/api/admin/user/events?id=u1&type=heartbeat")
    assert [e["type"] for e in body["events"]] == ["heartbeat"]
    click = next(
        iter((await get(admin, "/api/admin/user/events?id=u1&limit=1"))[1]["events"]), None
    )
    assert click is not None
    status, body = await get(admin, "/api/admin/user/events?id=u1&type=bogus")
    assert status == 400


async def test_events_after_one_catch_up_oldest_first_without_gaps(env: AdminEnv) -> None:
    await env.send(env.acme, "u1", [{"type": "route", "route": "/a"}])
    admin = await env.admin(env.acme_token)
    _, first = await get(admin, "/api/admin/user/events?id=u1")
    newest = first["events"][0]["id"]
    # Far more than one page arrives before the page looks again.
    for batch in range(5):
        events = [{"type": "click", "element": f"button#b{batch}-{i}"} for i in range(40)]
        await env.send(env.acme, "u1", events)
    seen: list[int] = []
    after = newest
    while after is not None:
        status, body = await get(admin, f"/api/admin/user/events?id=u1&limit=64&after={after}")
        assert status == 200
        ids = [e["id"] for e in body["events"]]
        assert ids == sorted(ids) and all(i > newest for i in ids)
        seen += ids
        after = body["nextAfter"]
        assert "nextBefore" not in body
    assert len(seen) == len(set(seen)) == 200
    _, errors = await get(admin, f"/api/admin/user/errors?id=u1&after={newest}")
    assert errors == {"events": [], "nextAfter": None}
    status, _ = await get(admin, f"/api/admin/user/events?id=u1&after=1&before={newest}")
    assert status == 400


async def test_users_have_their_display_name(env: AdminEnv) -> None:
    await env.send(env.acme, "u1", name="Ann Lee")
    await env.send(env.acme, "u1", [{"type": "heartbeat"}])  # a batch without it keeps it
    admin = await env.admin(env.acme_token)
    _, body = await get(admin, "/api/admin/users?scope=live")
    assert [(u["userId"], u["name"], u["email"]) for u in body["users"]] == [
        ("u1", "Ann Lee", "u1@example.com")
    ]
    _, found = await get(admin, "/api/admin/users?scope=live&q=ann%20l")
    assert [u["userId"] for u in found["users"]] == ["u1"]
    _, one = await get(admin, "/api/admin/user?id=u1")
    assert one["live"]["name"] == "Ann Lee"
    # Stored summaries keep it (a later row without one does not erase it).
    row = stored_summary(env.acme.id, "u2", tier="paid", last_active_at=now_ms())
    await env.store.write(lambda conn: upsert_summaries(conn, [replace(row, name="Bo Chen")]))
    await env.store.write(lambda conn: upsert_summaries(conn, [row]))
    _, stored = await get(admin, "/api/admin/users?q=bo%20chen")
    assert [(u["userId"], u["name"], u["live"]) for u in stored["users"]] == [
        ("u2", "Bo Chen", False)
    ]


async def test_errors_are_listed_newest_first(env: AdminEnv) -> None:
    await env.send(
        env.acme,
        "u1",
        [
            {"type": "route", "route": "/pay"},
            {"type": "error", "message": "first", "source": "app.js:1", "stack": "at a"},
            {"type": "click", "element": "button#pay"},
            {"type": "error", "message": "second"},
        ],
    )
    admin = await env.admin(env.acme_token)
    status, body = await get(admin, "/api/admin/user/errors?id=u1")
    assert status == 200
    assert [e["message"] for e in body["events"]] == ["second", "first"]
    assert body["events"][1]["source"] == "app.js:1"
    assert body["events"][1]["stack"] == "at a"
    assert body["nextBefore"] is None


async def test_the_journey_has_steps_with_time_spent(env: AdminEnv) -> None:
    t = now_ms() - 100_000
    await env.send(
        env.acme,
        "u1",
        [
            {"type": "route", "route": "/home", "timestamp": t},
            {"type": "route", "route": "/billing", "timestamp": t + 10_000},
            {"type": "page_time", "route": "/home", "duration": 9_000, "timestamp": t + 10_000},
            {"type": "route", "route": "/home", "timestamp": t + 40_000},
        ],
    )
    admin = await env.admin(env.acme_token)
    status, body = await get(admin, "/api/admin/user/journey?id=u1")
    assert status == 200 and body["live"] is True
    steps = body["steps"]
    assert [s["route"] for s in steps] == ["/home", "/billing", "/home"]
    assert steps[0]["timeSpentMs"] == 9_000  # as the tracker measured it
    assert steps[1]["timeSpentMs"] == 30_000
    assert steps[2]["ongoing"] is True
    assert {r["route"]: r["visits"] for r in body["routes"]} == {"/home": 2, "/billing": 1}


async def test_a_video_call_returns_the_link_and_is_recorded(env: AdminEnv) -> None:
    await env.send(env.acme, "ann & bob")
    admin = await env.admin(env.acme_token, name="Sam")
    status, body = await post(admin, "/api/admin/user/video-call", {"userId": "ann & bob"})
    assert status == 200
    room = env.acme.call_room("ann & bob")
    assert body["call"]["url"] == f"https://meet.jit.si/tippen-acme-{room}"
    # One room per user, the same every time, and not the user id in disguise.
    assert len(room) == 16 and room != env.acme.call_room("ann") and "ann" not in room
    assert room != env.other.call_room("ann & bob")
    assert body["call"]["startedBy"] == "Sam"
    calls = await env.store.read(lambda c: list_video_calls(c, env.acme.id, "ann & bob"))
    assert [(c.started_by, c.url) for c in calls] == [("Sam", body["call"]["url"])]
    _, user = await get(admin, "/api/admin/user?id=ann%20%26%20bob")
    assert user["videoCalls"][0]["startedBy"] == "Sam"
    status, body = await post(admin, "/api/admin/user/video-call", {"userId": "nobody"})
    assert status == 404


async def test_a_template_that_makes_no_web_link_is_refused(env: AdminEnv) -> None:
    await env.set_settings(env.acme, TenantSettings(video_call_template="javascript:alert({user})"))
    await env.send(env.acme, "u1")
    admin = await env.admin(env.acme_token)
    status, body = await post(admin, "/api/admin/user/video-call", {"userId": "u1"})
    assert status == 409 and body["error"]["code"] == "bad_video_call_template"


async def test_acknowledge_clears_needs_support(env: AdminEnv) -> None:
    await env.send(env.acme, "u1", [{"type": "error", "message": "x"} for _ in range(4)])
    state = env.registry.state(env.acme.id, "u1")
    assert state is not None and state.needs_support
    admin = await env.admin(env.acme_token, name="Sam")
    status, _ = await post(admin, "/api/admin/user/acknowledge", {"userId": "u1"})
    assert status == 200
    await env.send(env.acme, "u1", [{"type": "heartbeat"}])
    state = env.registry.state(env.acme.id, "u1")
    assert state is not None and not state.needs_support and state.acknowledged_by == "Sam"
    status, _ = await post(admin, "/api/admin/user/acknowledge", {"userId": "nobody"})
    assert status == 404


async def test_alerts_from_live_state_without_the_alerts_service(env: AdminEnv) -> None:
    await env.send(env.acme, "u1", [{"type": "error", "message": "x"} for _ in range(4)])
    await env.send(env.acme, "u2")
    admin = await env.admin(env.acme_token)
    status, body = await get(admin, "/api/admin/alerts?status=open")
    assert status == 200
    assert [(a["userId"], a["trigger"], a["status"]) for a in body["alerts"]] == [
        ("u1", "multiple_errors", "open")
    ]
    status, _ = await get(admin, "/api/admin/alerts?status=sideways")
    assert status == 400


async def test_erase_removes_everything_about_the_user(env: AdminEnv) -> None:
    await env.send(
        env.acme, "u1", [{"type": "route", "route": "/a"}, {"type": "error", "message": "e"}]
    )
    await env.send(env.acme, "keep")
    admin = await env.admin(env.acme_token)
    await post(admin, "/api/admin/user/video-call", {"userId": "u1"})
    await env.store.write(
        lambda c: upsert_summaries(
            c, [stored_summary(env.acme.id, "u1", tier="paid", last_active_at=now_ms())]
        )
    )
    # A state saved in the embedded (SQLite) snapshot table, as after a restart.
    await env.store.write(
        lambda c: c.execute(
            "INSERT INTO live_snapshots (tenant_id, user_id, state) VALUES (?, 'u1', x'00')",
            (env.acme.id,),
        )
    )
    with env.hub.subscribe(env.acme.id) as sub:
        status, body = await post(admin, "/api/admin/user/erase", {"userId": "u1"})
        assert status == 200
        assert body["wasLive"] is True
        erased = body["erased"]
        assert erased["events"] == 2 and erased["summaries"] == 1 and erased["videoCalls"] == 1
        assert erased["snapshots"] is True
        message = await sub.next()
        assert message is not None and '"user_left"' in message and '"erased"' in message
    assert env.registry.state(env.acme.id, "u1") is None
    assert env.snapshots.deleted == [(env.acme.id, "u1")]
    status, _ = await get(admin, "/api/admin/user?id=u1")
    assert status == 404
    counts = await env.store.read(
        lambda c: c.execute(
            "SELECT (SELECT count(*) FROM user_activity_events WHERE user_id = 'u1'),"
            " (SELECT count(*) FROM video_calls WHERE user_id = 'u1'),"
            " (SELECT count(*) FROM live_snapshots WHERE user_id = 'u1'),"
            " (SELECT count(*) FROM user_activity_events WHERE user_id = 'keep')"
        ).fetchone()
    )
    assert counts == (0, 0, 0, 1)
    # DELETE does the same.
    response = await admin.delete("/api/admin/user?id=keep", headers=api_headers(Origin=SITE))
    assert response.status_code == 200 and (await response.get_json())["erased"]["events"] == 1


async def test_stats_count_the_last_hour(env: AdminEnv) -> None:
    await env.send(
        env.acme, "u1", [{"type": "route", "route": "/a"}, {"type": "error", "message": "e"}]
    )
    await env.send(env.other, "x1", [{"type": "error", "message": "theirs"}])
    admin = await env.admin(env.acme_token)
    status, body = await get(admin, "/api/admin/stats")
    assert status == 200
    assert body["eventsLastHour"] == 2 and body["errorsLastHour"] == 1 and body["live"] == 1


async def test_pages_render_for_a_logged_in_admin(env: AdminEnv) -> None:
    admin = await env.admin(env.acme_token)
    response = await admin.get("/user-activity")
    page = await response.get_data(as_text=True)
    assert response.status_code == 200 and "Needs help" in page
    evil = "<script>alert(1)</script>"
    response = await admin.get("/user-activity/" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    page = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    static = await admin.get("/static/admin/dashboard.js")
    assert static.status_code == 200
    missing = await admin.get("/static/admin/..%2Fsecret.js")
    assert missing.status_code == 404
