"""Support agents in real Chromium: each signs in with a personal token, and
what they do is recorded under their own name, not one typed at login.

The tenant and its agents are made with the same functions ``tippen-rt
tenant add`` and ``tippen-rt agent add`` call, before the real service starts;
events come in through the real ingest API.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from ..support.client import Client
from .conftest import ORIGIN, TYPED_NAME, Acme, Snap, sign_in

pytestmark = pytest.mark.browser

TRACK_PATH = "/api/track/user-activity"


def send_errors(acme: Acme, user: str) -> None:
    """A burst of errors from ``user``'s page, as the tracker posts it."""
    now = int(time.time() * 1000)
    body = {
        "apiKey": acme.api_key,
        "userId": user,
        "userEmail": f"{user}@example.com",
        "subscriptionTier": "paid",
        "sentAt": now,
        "events": [
            {"type": "route", "route": "/reports", "timestamp": now},
            *({"type": "error", "message": f"E{i}", "timestamp": now} for i in range(4)),
        ],
    }
    client = Client(acme.url)
    try:
        status, answer = client.post_json(TRACK_PATH, body, headers={"Origin": ORIGIN})
    finally:
        client.close()
    assert status == 200, answer


def admin_get(page: Page, url: str) -> Any:
    """GET an admin API path with the page's own session."""
    response = page.request.get(url)
    assert response.ok, response.text()
    return response.json()


def test_an_agents_acknowledgement_is_attributed_to_that_agent(
    acme: Acme, page: Page, second_context: BrowserContext, snap: Snap
) -> None:
    ada = page
    bo = second_context.new_page()
    sign_in(ada, acme.url, acme.tokens["Ada Park"])
    sign_in(bo, acme.url, acme.tokens["Bo Chen"])

    # Each dashboard says who is signed in: the agent, not the typed name.
    expect(ada.locator(".topbar .who")).to_have_text("Signed in as Ada Park")
    expect(bo.locator(".topbar .who")).to_have_text("Signed in as Bo Chen")
    assert admin_get(ada, acme.url + "/api/admin/me")["name"] == "Ada Park"
    assert admin_get(bo, acme.url + "/api/admin/me")["name"] == "Bo Chen"

    send_errors(acme, "u-one")
    send_errors(acme, "u-two")
    for dashboard in (ada, bo):
        for user in ("u-one", "u-two"):
            expect(dashboard.locator(f'.alert[data-user="{user}"]')).to_contain_text(
                "Repeated errors"
            )

    ada.locator('.alert[data-user="u-one"]').get_by_role("button", name="Acknowledge").click()
    bo.locator('.alert[data-user="u-two"]').get_by_role("button", name="Acknowledge").click()

    # Both dashboards show who acknowledged what.
    for dashboard in (ada, bo):
        expect(dashboard.locator('.alert[data-user="u-one"]')).to_contain_text(
            "acknowledged by Ada Park"
        )
        expect(dashboard.locator('.alert[data-user="u-two"]')).to_contain_text(
            "acknowledged by Bo Chen"
        )
    snap(ada)

    # The stored alerts, through the admin API and in the database.
    alerts = admin_get(ada, acme.url + "/api/admin/alerts")["alerts"]
    by_user = {a["userId"]: a for a in alerts}
    assert by_user["u-one"]["acknowledgedBy"] == "Ada Park"
    assert by_user["u-two"]["acknowledgedBy"] == "Bo Chen"
    assert {a["status"] for a in alerts} == {"acknowledged"}
    assert stored_acknowledgements(acme.server.db_path) == {
        "u-one": "Ada Park",
        "u-two": "Bo Chen",
    }
    assert TYPED_NAME not in str(alerts)


def stored_acknowledgements(db: Path) -> dict[str, str]:
    """user id -> who acknowledged their alert, as the alert rows say."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(conn.execute("SELECT user_id, acknowledged_by FROM support_alerts").fetchall())
    finally:
        conn.close()
