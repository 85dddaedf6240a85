"""Response times and the CSV exports through the admin API (the real Notifier)."""

from __future__ import annotations

import csv
import io
from typing import Any

from tippen_rt.persist import create_agent

from .conftest import SITE, AdminEnv, api_headers, settle

ERRORS = [{"type": "error", "message": f"boom {i}"} for i in range(4)]


async def get(client: Any, path: str) -> Any:
    response = await client.get(path, headers=api_headers())
    assert response.status_code == 200, await response.get_data()
    return response


async def post(client: Any, path: str, body: Any) -> int:
    response = await client.post(path, json=body, headers=api_headers(Origin=SITE))
    return int(response.status_code)


async def test_response_times_today_and_this_week_per_agent(alerts_env: AdminEnv) -> None:
    env = alerts_env
    _, token = await env.store.write(lambda c: create_agent(c, "acme", "Ada Park"))
    await env.services.tenants.reload()
    ada = await env.admin(token)
    kim = await env.admin(env.acme_token, name="Kim")
    for user in ("u1", "u2", "u3"):
        await env.send(env.acme, user, ERRORS, name=f"User {user}")
    assert await post(ada, "/api/admin/user/claim", {"userId": "u1"}) == 200
    assert await post(kim, "/api/admin/user/acknowledge", {"userId": "u2"}) == 200
    assert await post(ada, "/api/admin/user/video-call", {"userId": "u3"}) == 200
    await settle()
    body = await (await get(ada, "/api/admin/stats/response?tzOffsetMin=-60")).get_json()
    assert body["goalMs"] == 600_000
    for window in ("today", "last7Days"):
        figures = body[window]["overall"]
        assert (figures["alerts"], figures["answered"], figures["withinGoal"]) == (3, 3, 3)
        assert figures["p90Ms"] < 60_000 and figures["metGoal"] is True
        agents = {a["agent"]: a["answered"] for a in body[window]["agents"]}
        assert agents == {"Ada Park": 2, "Kim": 1}
    assert body["last7Days"]["from"] == body["serverTime"] - 7 * 86_400_000
    assert body["today"]["from"] <= body["serverTime"]
    assert (body["today"]["from"] + 3_600_000) % 86_400_000 == 0  # midnight at UTC+1: 23:00Z
    # The alerts carry their own times.
    alerts = (await (await get(ada, "/api/admin/alerts?userId=u3")).get_json())["alerts"]
    assert alerts[0]["timeToCallMs"] is not None and alerts[0]["respondedBy"] == "Ada Park"
    # Another tenant has none.
    other = await env.admin(env.other_token)
    theirs = await (await get(other, "/api/admin/stats/response")).get_json()
    assert theirs["last7Days"]["overall"]["alerts"] == 0
    response = await ada.get("/api/admin/stats/response?tzOffsetMin=9999", headers=api_headers())
    assert response.status_code == 400


async def test_alerts_and_users_export_as_streamed_csv_for_the_tenant_only(
    alerts_env: AdminEnv,
) -> None:
    env = alerts_env
    admin = await env.admin(env.acme_token, name="Kim")
    await env.send(env.acme, '=HYPERLINK("http://evil")', ERRORS, name="@SUM(A1)")
    await env.send(env.acme, "u2", ERRORS, name='Bo, "the" tester')
    await env.send(env.other, "someone-elses", ERRORS)
    await post(admin, "/api/admin/user/acknowledge", {"userId": "u2"})
    await settle()

    response = await get(admin, "/api/admin/export/alerts.csv")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="tippen-acme-alerts-'
    )
    rows = list(csv.DictReader(io.StringIO((await response.get_data()).decode())))
    assert [r["user_id"] for r in rows] == ['\'=HYPERLINK("http://evil")', "u2"]
    assert rows[0]["user_name"] == "'@SUM(A1)" and rows[1]["user_name"] == 'Bo, "the" tester'
    assert rows[1]["acknowledged_by"] == "Kim" and rows[1]["responded_by"] == "Kim"
    assert rows[1]["status"] == "acknowledged" and rows[1]["trigger"] == "multiple_errors"
    assert rows[1]["opened_at"].endswith("Z") and float(rows[1]["seconds_to_response"]) >= 0
    assert rows[0]["seconds_to_response"] == ""
    # A range of opening times.
    late = await get(admin, f"/api/admin/export/alerts.csv?from={2**52}")
    assert (await late.get_data()).decode().count("\r\n") == 1  # the header only
    assert (await admin.get("/api/admin/export/alerts.csv?from=x")).status_code == 400

    # Users: from their stored summaries (written by the summary writer).
    from tippen_rt.persist import SummaryRow, upsert_summaries

    await env.store.write(
        lambda c: upsert_summaries(
            c,
            [
                SummaryRow(env.acme.id, f"user-{i:04d}", None, "paid", 1, 2, "/", 0, 1, 0, None,
                           False, (), None, True, 3, name=f"N{i}")
                for i in range(1200)
            ],
        )
    )  # fmt: skip
    response = await get(admin, "/api/admin/export/users.csv")
    rows = list(csv.DictReader(io.StringIO((await response.get_data()).decode())))
    assert len(rows) == 1200 and rows[0]["user_id"] == "user-0000"
    assert rows[-1]["user_name"] == "N1199" and rows[0]["tier"] == "paid"
    assert all(not r["user_id"].startswith("someone") for r in rows)
    # Logged out: nothing.
    assert (await env.client().get("/api/admin/export/users.csv")).status_code == 401
