"""Numbers past SQLite's 64-bit integers: a 400 naming the parameter, never a 500."""

from __future__ import annotations

import pytest

from .conftest import SITE, AdminEnv, api_headers

HUGE = "99999999999999999999"  # past 2**63 - 1: SQLite cannot bind it


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/admin/user/events?id=u1&before=", "before"),
        ("/api/admin/user/errors?id=u1&before=", "before"),
        ("/api/admin/alerts?before=", "before"),
        ("/api/admin/user/events?id=u1&limit=", "limit"),
        ("/api/admin/users?activeWithinMin=", "activeWithinMin"),
    ],
)
@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "9223372036854775808", "1" + "0" * 5000])
async def test_out_of_range_integers_are_400_naming_the_parameter(
    alerts_env: AdminEnv, path: str, param: str, value: str
) -> None:
    admin = await alerts_env.admin(alerts_env.acme_token)
    response = await admin.get(path + value, headers=api_headers())
    assert response.status_code == 400, await response.get_data()
    body = await response.get_json()
    assert body["success"] is False
    assert body["error"]["field"] == param


@pytest.mark.parametrize("value", ["9223372036854775807", "1"])
async def test_the_largest_integers_sqlite_takes_still_work(
    alerts_env: AdminEnv, value: str
) -> None:
    env = alerts_env
    await env.send(env.acme, "u1")
    admin = await env.admin(env.acme_token)
    for path in (
        "/api/admin/user/events?id=u1",
        "/api/admin/user/errors?id=u1",
        "/api/admin/alerts?",
    ):
        response = await admin.get(f"{path}&before={value}", headers=api_headers())
        assert response.status_code == 200, await response.get_data()


@pytest.mark.parametrize("alert_id", [HUGE, "9223372036854775808"])
async def test_acknowledging_an_alert_id_out_of_range_is_404(
    alerts_env: AdminEnv, alert_id: str
) -> None:
    admin = await alerts_env.admin(alerts_env.acme_token)
    response = await admin.post(
        f"/api/admin/alerts/{alert_id}/acknowledge", headers=api_headers(Origin=SITE)
    )
    assert response.status_code == 404, await response.get_data()
    assert (await response.get_json())["error"]["code"] == "not_found"
