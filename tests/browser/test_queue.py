"""The needs-help queue and claiming, in real Chromium, with two agents signed in.

Tenant ``acme`` and its agents (Ada Park, Bo Chen) are made as the CLI makes
them; users come in through the real ingest API, with display names.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, expect

from ..support.client import Client
from .conftest import ORIGIN, Acme, Snap, sign_in

pytestmark = pytest.mark.browser

TRACK_PATH = "/api/track/user-activity"


def send(acme: Acme, user: str, tier: str, events: list[dict[str, Any]], name: str = "") -> None:
    """One batch from ``user``'s page, as the tracker posts it."""
    now = int(time.time() * 1000)
    body: dict[str, Any] = {
        "apiKey": acme.api_key,
        "userId": user,
        "userEmail": f"{user}@example.com",
        "subscriptionTier": tier,
        "sentAt": now,
        "events": [{"timestamp": now, **e} for e in events],
    }
    if name:
        body["userName"] = name
    client = Client(acme.url)
    try:
        status, answer = client.post_json(TRACK_PATH, body, headers={"Origin": ORIGIN})
    finally:
        client.close()
    assert status == 200, answer


def errors(route: str = "/reports") -> list[dict[str, Any]]:
    return [{"type": "route", "route": route}] + [
        {"type": "error", "message": f"TypeError: boom {i}"} for i in range(4)
    ]


def queue_order(page: Page) -> list[str]:
    return page.locator("#alerts .q-row").evaluate_all("rows => rows.map(r => r.dataset.user)")


def test_two_agents_one_queue_claims_warnings_keys_and_bulk_acknowledge(
    acme: Acme, page: Page, second_context: BrowserContext, snap: Snap
) -> None:
    ada, bo = page, second_context.new_page()
    sign_in(ada, acme.url, acme.tokens["Ada Park"])
    sign_in(bo, acme.url, acme.tokens["Bo Chen"])
    send(acme, "trial-1", "free_trial", errors(), name="Tia Trial")
    send(acme, "paid-1", "paid", errors("/billing"), name="Pat Paid")
    send(acme, "ent-1", "enterprise", errors(), name="Eve Enterprise")

    # One ranked row per user, the same order on both dashboards: enterprise,
    # then paid, then the free trial, each saying who they are.
    for dashboard in (ada, bo):
        expect(dashboard.locator("#alerts .q-row")).to_have_count(3)
        assert queue_order(dashboard) == ["ent-1", "paid-1", "trial-1"]
        row = dashboard.locator('.q-row[data-user="paid-1"]')
        expect(row.locator(".rank")).to_have_text("#2")
        expect(row.locator(".q-who a")).to_have_text("Pat Paid (paid-1@example.com)")
        expect(row).to_contain_text("Repeated errors")
        expect(row).to_contain_text("/billing")
        expect(row.locator(".q-claim")).to_have_text("Unclaimed")
    api_queue = ada.request.get(acme.url + "/api/admin/queue").json()["users"]
    assert [u["userId"] for u in api_queue] == queue_order(ada)

    # Ada claims Pat; Bo's dashboard shows it within a second.
    ada.locator('.q-row[data-user="paid-1"]').get_by_role("button", name="I\u2019m on it").click()
    clicked = time.monotonic()
    expect(bo.locator('.q-row[data-user="paid-1"] .q-claim')).to_contain_text(
        "Claimed by Ada Park", timeout=1_000
    )
    seen_after_s = time.monotonic() - clicked
    expect(ada.locator('.q-row[data-user="paid-1"] .q-claim')).to_contain_text("You are on it")
    release = ada.locator('.q-row[data-user="paid-1"]').get_by_role("button", name="Release")
    expect(release).to_be_visible()
    assert seen_after_s < 1.0

    # Bo starts a call with Pat: warned that Ada is on it; he says no, no call.
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    bo.once("dialog", dismiss)
    bo.locator('.q-row[data-user="paid-1"]').get_by_role("button", name="Start video call").click()
    expect(bo.locator('.q-row[data-user="paid-1"] [data-action="call"]')).to_be_enabled()
    assert len(dialogs) == 1 and dialogs[0].startswith("Ada Park is on it (claimed ")
    calls = bo.request.get(acme.url + "/api/admin/user/video-calls?id=paid-1").json()["calls"]
    assert calls == []
    # ... and "Unclaimed only" leaves Pat out of his queue.
    bo.locator("#q-unclaimed").check()
    expect(bo.locator("#alerts .q-row")).to_have_count(2)
    assert queue_order(bo) == ["ent-1", "trial-1"]
    expect(bo.locator("#alerts-count")).to_contain_text("2 of 3 shown")
    bo.locator("#q-unclaimed").uncheck()
    bo.select_option("#q-tier", "free_trial")
    expect(bo.locator("#alerts .q-row")).to_have_count(1)  # re-rendered (on the next frame)
    assert queue_order(bo) == ["trial-1"]
    bo.select_option("#q-tier", "")
    bo.select_option("#q-trigger", "stuck_on_page")
    expect(bo.locator("#alerts")).to_contain_text("Nobody here matches these filters.")
    bo.select_option("#q-trigger", "")

    # Ada by keyboard: j to the first row, c claims it; j, x, j, x select the
    # other two, and one click acknowledges the selection.
    ada.locator("body").click(position={"x": 5, "y": 300})
    ada.keyboard.press("j")
    expect(ada.locator(".q-row.cursor")).to_have_attribute("data-user", "ent-1")
    ada.keyboard.press("c")
    expect(bo.locator('.q-row[data-user="ent-1"] .q-claim')).to_contain_text("Claimed by Ada Park")
    ada.keyboard.press("j")
    ada.keyboard.press("x")
    ada.keyboard.press("j")
    ada.keyboard.press("x")
    expect(ada.locator(".q-row.selected")).to_have_count(2)
    ada.get_by_role("button", name="Acknowledge selected (2)").click()
    for dashboard in (ada, bo):
        for user in ("paid-1", "trial-1"):
            expect(dashboard.locator(f'.q-row[data-user="{user}"]')).to_contain_text(
                "acknowledged by Ada Park"
            )
        # Acknowledged users sink below those nobody has seen.
        expect(dashboard.locator(".q-row").first).to_have_attribute("data-user", "ent-1")
    snap(ada)
    # a acknowledges the row under the cursor.
    ada.keyboard.press("k")
    ada.keyboard.press("k")
    expect(ada.locator(".q-row.cursor")).to_have_attribute("data-user", "ent-1")
    ada.keyboard.press("a")
    expect(bo.locator('.q-row[data-user="ent-1"]')).to_contain_text("acknowledged by Ada Park")

    # Response times: Ada answered all three today, within the goal.
    ada.reload()
    everyone = ada.locator('#response-rows tr[data-agent=""] td')
    expect(everyone.nth(1)).to_have_text("3")
    expect(everyone.nth(4)).to_have_text("100 %")
    expect(ada.locator('#response-rows tr[data-agent="Ada Park"] td').nth(1)).to_have_text("3")
    # The alerts as CSV, from the dashboard.
    with ada.expect_download() as download:
        ada.get_by_role("link", name="Export alerts (CSV)").click()
    lines = download.value.path().read_text().splitlines()
    assert lines[0].startswith("alert_id,opened_at,user_id,user_name,")
    assert sorted(line.split(",")[2] for line in lines[1:]) == ["ent-1", "paid-1", "trial-1"]
    assert all(",Ada Park," in line for line in lines[1:])


def test_five_hundred_open_alerts_are_paged_and_j_turns_the_page(
    acme: Acme, page: Page, snap: Snap
) -> None:
    sign_in(page, acme.url, acme.tokens["Bo Chen"])
    client = Client(acme.url)
    now = int(time.time() * 1000)
    try:
        for i in range(500):
            tier = ("free_trial", "paid", "enterprise")[i % 3]
            body = {
                "apiKey": acme.api_key,
                "userId": f"u{i:03d}",
                "subscriptionTier": tier,
                "sentAt": now,
                "events": [{"timestamp": now, **e} for e in errors()],
            }
            status, answer = client.post_json(TRACK_PATH, body, headers={"Origin": ORIGIN})
            assert status == 200, answer
    finally:
        client.close()
    expect(page.locator("#q-page")).to_have_text("1\u201325 of 500", timeout=30_000)
    expect(page.locator("#alerts .q-row")).to_have_count(25)
    # The first page is all enterprise users, the longest waiting first.
    tiers = page.locator("#alerts .q-row .q-who .badge").all_inner_texts()
    assert set(tiers) == {"Enterprise"}
    page.get_by_role("button", name="Next →").click()
    expect(page.locator("#q-page")).to_have_text("26\u201350 of 500")
    expect(page.locator(".q-row").first.locator(".rank")).to_have_text("#26")
    page.get_by_role("button", name="← Previous").click()
    page.locator("body").click(position={"x": 5, "y": 300})
    for _ in range(26):
        page.keyboard.press("j")
    expect(page.locator("#q-page")).to_have_text("26\u201350 of 500")
    expect(page.locator(".q-row.cursor .rank")).to_have_text("#26")
    renders = page.evaluate("window.tippenDashboard.renders.slice(-20)")
    assert renders and max(renders) < 1000  # a slow machine is not a broken page
    snap(page)
