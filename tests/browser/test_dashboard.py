"""The admin dashboard in real headless Chromium against the real service.

Each test logs in through ``/login`` with the admin token the service
printed, posts events through the real ingest API (as apps' trackers do), and
watches them arrive on the live pages.  Anything a test waits for has a
deadline (Playwright's default timeout of the context, 10 s, or longer where
a trigger has to fire first); nothing asserts how fast it happened.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Page, expect

from tippen_rt.persist import get_tenant_by_name, update_tenant

from ..alerts.slack_server import slack_stand_in
from ..support.client import Client
from ..support.server import ServerProcess, start_server
from .conftest import Demo, Snap

pytestmark = pytest.mark.browser

_TOKEN_LINE = re.compile(r"login token:\s+(\S+)")
TRACK_PATH = "/api/track/user-activity"
TRIGGER_WAIT_MS = 30_000
#: The app the plain (non-demo) server's tenant takes events from.
APP_ORIGIN = "https://app.acme.test"
TIPPEN_RT = [sys.executable, "-m", "tippen_rt"]


def login_token(server: ServerProcess) -> str:
    """The admin token ``serve --demo`` printed last (the same across restarts)."""
    matches = _TOKEN_LINE.findall(server.log())
    assert matches, server.log()
    return str(matches[-1])


def log_in(page: Page, base_url: str, token: str, name: str = "Sam") -> None:
    """Open the dashboard, get sent to the login page, log in, land back."""
    page.goto(base_url + "/user-activity")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("#token", token)
    page.fill("#name", name)
    page.click("button[type=submit]")
    expect(page).to_have_url(base_url + "/user-activity")
    expect(page.locator("#connection")).to_have_text("Live")


def send(base_url: str, api_key: str, user: str, events: list[dict[str, Any]], **kw: Any) -> None:
    """Post one batch as the tracker on the demo's sample app would (its Origin is
    the service's own, which the demo tenant allows; ``origin=`` for another)."""
    now = int(time.time() * 1000)
    body = {
        "apiKey": api_key,
        "userId": user,
        "userEmail": kw.get("email", f"{user}@example.com"),
        "subscriptionTier": kw.get("tier", "free_trial"),
        "sentAt": now,
        **({"userName": kw["name"]} if "name" in kw else {}),
        "events": [{"timestamp": now, **e} for e in events],
    }
    client = Client(base_url)
    try:
        status, answer = client.post_json(
            TRACK_PATH, body, headers={"Origin": kw.get("origin", base_url)}
        )
    finally:
        client.close()
    assert status == 200, answer


def set_demo_settings(demo: Demo, **changes: Any) -> None:
    """Change the demo tenant's settings in its SQLite file, then restart the service
    so it reads them (the demo prints a new login token on the way)."""
    demo.stop()
    conn = sqlite3.connect(demo.db_path, isolation_level=None)
    try:
        tenant = get_tenant_by_name(conn, "demo")
        update_tenant(conn, "demo", settings=replace(tenant.settings, **changes))
    finally:
        conn.close()
    demo.start()


def test_log_in_and_see_a_user_appear_live(demo: Demo, page: Page, snap: Snap) -> None:
    log_in(page, demo.url, login_token(demo.server))
    expect(page.locator("#users-empty")).to_contain_text("No one is online right now")
    expect(page.locator("#alerts")).to_contain_text("Nobody needs help right now")

    send(
        demo.url,
        demo.api_key,
        "ada@live",
        [{"type": "route", "route": "/pricing"}],
        tier="paid",
        name="Ada Lovelace",
    )
    row = page.locator('tr[data-user="ada@live"]')
    expect(row).to_be_visible()
    expect(row.locator(".names a")).to_have_text("Ada Lovelace (ada@live@example.com)")
    expect(row).to_contain_text("/pricing")
    expect(row).to_contain_text("Paid")
    expect(page.locator("#stat-live")).to_have_text("1")

    send(demo.url, demo.api_key, "ada@live", [{"type": "route", "route": "/pricing/team"}])
    expect(row).to_contain_text("/pricing/team")
    send(demo.url, demo.api_key, "bob@live", [{"type": "route", "route": "/docs"}])
    expect(page.locator("#stat-live")).to_have_text("2")
    # Filters work on the live list.
    page.select_option("#f-tier", "paid")
    expect(page.locator("tbody#users tr")).to_have_count(0)
    page.select_option("#f-tier", "free_trial")
    expect(page.locator("tbody#users tr")).to_have_count(2)
    page.select_option("#f-tier", "")
    page.fill("#f-q", "bob")
    expect(page.locator("tbody#users tr")).to_have_count(1)
    page.fill("#f-q", "lovelace")
    expect(page.locator("tbody#users tr")).to_have_count(1)
    page.fill("#f-q", "")
    snap(page)


def test_an_alert_appears_when_a_trigger_fires(demo: Demo, page: Page, snap: Snap) -> None:
    set_demo_settings(demo, stuck_on_page_s=3.0)
    log_in(page, demo.url, login_token(demo.server))

    send(
        demo.url,
        demo.api_key,
        "stuck@checkout",
        [{"type": "route", "route": "/billing/checkout"}, {"type": "heartbeat"}],
    )
    errors = [
        {"type": "error", "message": f"TypeError: total is undefined ({i})"} for i in range(4)
    ]
    send(
        demo.url,
        demo.api_key,
        "erring@reports",
        [{"type": "route", "route": "/reports"}, *errors],
        tier="paid",
    )

    erring = page.locator('.alert[data-user="erring@reports"]')
    expect(erring).to_contain_text("Repeated errors")
    stuck = page.locator('.alert[data-user="stuck@checkout"]')
    expect(stuck).to_contain_text("Stuck on a page", timeout=TRIGGER_WAIT_MS)
    expect(stuck).to_contain_text("/billing/checkout")
    expect(page.locator("#stat-support")).to_have_text("2")
    expect(page.locator('tr[data-user="stuck@checkout"]')).to_contain_text("Needs help")
    snap(page)

    erring.get_by_role("button", name="Acknowledge").click()
    expect(erring).to_contain_text("acknowledged by Sam")
    expect(page.locator("#stat-support")).to_have_text("1")


def test_the_dashboard_says_what_happened_on_slack(demo: Demo, page: Page, snap: Snap) -> None:
    with slack_stand_in() as slack:
        set_demo_settings(demo, slack_webhook_url=slack.webhook_url)
        log_in(page, demo.url, login_token(demo.server))
        errors = [{"type": "error", "message": f"E{i}"} for i in range(4)]
        send(demo.url, demo.api_key, "posted@x", [{"type": "route", "route": "/a"}, *errors])
        posted = page.locator('.alert[data-user="posted@x"]')
        expect(posted.locator(".delivery")).to_have_text("Slack: sent")
        slack.fail_next(1, status=404, error="no_service")  # the webhook was removed
        send(demo.url, demo.api_key, "lost@x", [{"type": "route", "route": "/b"}, *errors])
        lost = page.locator('.alert[data-user="lost@x"]')
        expect(lost.locator(".delivery")).to_contain_text("Slack: not delivered")
        expect(lost.locator(".delivery")).to_contain_text("no_service")
        expect(page.locator("#alerts-failed")).to_contain_text(
            "1 alert could not be delivered to Slack"
        )
        snap(page)
        assert len(slack.posts) == 1
        # The user page lists the user's alerts with what happened on Slack.
        lost.get_by_role("link", name="View").click()
        item = page.locator("#user-alerts li").first
        expect(item).to_contain_text("Repeated errors")
        expect(item).to_contain_text("not delivered to Slack (HTTP 404: no_service)")
        expect(page.locator("#user-alerts-count")).to_have_text("1 unresolved · 1 in all")


def test_the_user_page_shows_timeline_journey_and_errors(
    demo: Demo, page: Page, snap: Snap
) -> None:
    set_demo_settings(demo, video_call_template=demo.url + "/demo/app?call={user}")
    user = 'eve<img src=x onerror="window.pwned=1">'
    now = int(time.time() * 1000)
    events = [
        {"type": "route", "route": "/home", "timestamp": now - 90_000},
        {"type": "click", "element": "a.nav", "text": "Reports", "timestamp": now - 80_000},
        {"type": "route", "route": "/reports", "timestamp": now - 70_000},
        {"type": "page_time", "route": "/home", "duration": 19_000, "timestamp": now - 70_000},
        {
            "type": "error",
            "message": "<script>window.pwned=2</script> export failed",
            "source": "reports.js:12",
            "stack": "at exportReport\nat onClick",
            "timestamp": now - 60_000,
        },
        {"type": "error", "message": "NetworkError: 500", "timestamp": now - 50_000},
        {"type": "route", "route": "/settings", "timestamp": now - 40_000},
        {"type": "page_time", "route": "/reports", "duration": 29_000, "timestamp": now - 40_000},
    ]
    send(demo.url, demo.api_key, user, events, tier="enterprise")
    log_in(page, demo.url, login_token(demo.server))
    page.locator("tbody#users a", has_text="eve<img").click()
    expect(page).to_have_url(re.compile(r"/user-activity/eve"))

    expect(page.locator("#u-id")).to_have_text(user)
    # Present (the user's last route change was 40 s ago): a dot and the word.
    presence = page.locator("#u-live .presence")
    expect(presence.locator(".pdot")).to_be_visible()
    expect(presence.locator(".presence-word")).to_have_text(re.compile(r"^(active|idle)$"))
    expect(page.locator("#u-route")).to_have_text("/settings")
    timeline = page.locator("#timeline li")
    expect(timeline).to_have_count(8)
    expect(timeline.first).to_contain_text("Spent 29s on")
    bars = page.locator("#journey svg rect")
    expect(bars).to_have_count(3)
    expect(page.locator("#journey")).to_contain_text("/reports")
    errors = page.locator("#errors li")
    expect(errors).to_have_count(2)
    expect(errors.last).to_contain_text("<script>window.pwned=2</script> export failed")
    assert page.evaluate("window.pwned") is None  # shown as text, never run

    with page.context.expect_page() as popup_info:
        page.click("#u-call")
    popup = popup_info.value
    popup.wait_for_url(re.compile(re.escape(demo.url + "/demo/app?call=eve")))
    popup.close()
    expect(page.locator("#toasts")).to_contain_text("Video call started")
    expect(page.locator("#u-calls")).to_contain_text("started by Sam")
    calls = demo.query("SELECT user_id, started_by FROM video_calls")
    assert [tuple(r) for r in calls] == [(user, "Sam")]

    # New events show up on the open page.
    send(
        demo.url, demo.api_key, user, [{"type": "error", "message": "one more"}], tier="enterprise"
    )
    expect(errors).to_have_count(3)
    expect(page.locator("#u-errors")).to_have_text("3")
    snap(page)


def test_the_timeline_shows_every_event_however_fast_they_come(
    demo: Demo, page: Page, snap: Snap
) -> None:
    user = "fast@burst"
    send(demo.url, demo.api_key, user, [{"type": "route", "route": "/start"}])
    log_in(page, demo.url, login_token(demo.server))
    page.goto(demo.url + "/user-activity/" + user)
    timeline = page.locator("#timeline li")
    expect(timeline).to_have_count(1)
    # 250 events in five batches, far more than one page (100) between two looks.
    for batch in range(5):
        clicks = [{"type": "click", "element": f"button#b{batch}-{i}"} for i in range(50)]
        send(demo.url, demo.api_key, user, clicks)
    expect(timeline).to_have_count(251, timeout=15_000)
    ids = [int(i) for i in timeline.evaluate_all("items => items.map(li => li.dataset.id)")]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 251
    expect(timeline.first).to_contain_text("button#b4-49")
    expect(timeline.last).to_contain_text("/start")
    snap(page)


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str, str, Path]]:
    """A service without --demo (its admin token stays the same across restarts)."""
    db = tmp_path / "tippen.db"
    out = subprocess.run(
        [*TIPPEN_RT, "--db", str(db), "tenant", "add", "acme", "--json", "--origin", APP_ORIGIN],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    created = orjson.loads(out.stdout)
    server = start_server(db)
    try:
        yield server, created["admin_token"], created["api_key"], db
    finally:
        server.kill()


def test_the_page_reconnects_by_itself_after_a_restart(
    plain_server: tuple[ServerProcess, str, str, Path], page: Page, snap: Snap
) -> None:
    server, token, api_key, db = plain_server
    url = server.url
    log_in(page, url, token)
    send(url, api_key, "before", [{"type": "route", "route": "/a"}], origin=APP_ORIGIN)
    expect(page.locator('tr[data-user="before"]')).to_be_visible()

    assert server.stop() == 0
    expect(page.locator("#connection")).to_have_text("Disconnected")
    expect(page.locator("#banner")).to_contain_text("Reconnecting in")
    snap(page)

    again = start_server(db, port=server.port)
    try:
        # Same port, same stored secret: the session survives, the socket comes back.
        expect(page.locator("#connection")).to_have_text("Live", timeout=20_000)
        expect(page.locator("#banner")).to_be_hidden()
        send(url, api_key, "after", [{"type": "route", "route": "/b"}], origin=APP_ORIGIN)
        expect(page.locator('tr[data-user="after"]')).to_be_visible()
        expect(page.locator('tr[data-user="before"]')).to_be_visible()  # restored from snapshot
    finally:
        again.kill()


#: The service reads the tenants again every 5 s; a settings change shows within that.
SETTINGS_WAIT_MS = 20_000


def test_the_settings_panel_follows_tenant_set_without_a_reload(
    plain_server: tuple[ServerProcess, str, str, Path], page: Page, snap: Snap
) -> None:
    server, token, _, db = plain_server
    log_in(page, server.url, token)
    panel = page.locator("#settings-panel")
    assert panel.evaluate("details => details.open") is False  # collapsed until asked for
    page.click("#settings-panel summary")
    low = page.locator('#settings-triggers tr[data-trigger="low_activity"]')
    expect(low).to_have_attribute("data-on", "on")
    expect(low).to_contain_text("Low activity")
    expect(low).to_contain_text("free_trial")
    expect(low).to_contain_text("fewer than 3 interactions in the last 10 min")
    expect(page.locator("#settings-summary")).to_have_text(
        "4 of 4 triggers on · Slack off · identity off"
    )
    expect(page.locator("#settings-list")).to_contain_text(APP_ORIGIN)
    page.evaluate("() => { window.sameDocument = true; }")  # gone if the page reloads

    changes = ["--trigger", "low_activity=off", "--trigger-tiers", "stuck_on_page=paid,enterprise"]
    done = subprocess.run(
        [*TIPPEN_RT, "--db", str(db), "tenant", "set", "acme", *changes],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    expect(low).to_have_attribute("data-on", "off", timeout=SETTINGS_WAIT_MS)
    expect(low.locator(".badge")).to_have_text("off")
    stuck = page.locator('#settings-triggers tr[data-trigger="stuck_on_page"]')
    expect(stuck).to_contain_text("paid, enterprise")
    expect(page.locator("#settings-summary")).to_have_text(
        "3 of 4 triggers on · Slack off · identity off"
    )
    assert page.evaluate("() => window.sameDocument") is True
    snap(page)


class OpenPages:
    """Users' open pages, as the tracker keeps them: a heartbeat every half
    second per user (with input or without) until the test drops the user,
    whose browser then "vanishes" (no unload, no more heartbeats)."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.heartbeats: dict[str, dict[str, Any]] = {}
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="open-pages", daemon=True)
        self._thread.start()

    def keep(self, user: str, **heartbeat: Any) -> None:
        """Send ``{"type": "heartbeat", **heartbeat}`` for ``user`` from now on."""
        with self._lock:
            self.heartbeats[user] = heartbeat

    def drop(self, user: str) -> None:
        """``user``'s browser vanishes."""
        with self._lock:
            self.heartbeats.pop(user, None)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                beats = list(self.heartbeats.items())
            for user, heartbeat in beats:
                try:
                    send(
                        self.demo.url, self.demo.api_key, user, [{"type": "heartbeat", **heartbeat}]
                    )
                except Exception as exc:  # reported by close()
                    self.failures.append(f"{user}: {exc!r}")

    def close(self) -> None:
        """Stop; fail if a heartbeat was refused."""
        self._stop.set()
        self._thread.join(timeout=15)
        assert not self.failures, self.failures


@pytest.fixture
def open_pages(demo: Demo) -> Iterator[OpenPages]:
    pages = OpenPages(demo)
    try:
        yield pages
    finally:
        pages.close()


PRESENCE_WAIT_MS = 30_000


def wait_rows_in_order(page: Page, first: set[str], then: set[str], timeout_s: float = 10) -> None:
    """Until the users list shows every user of ``first`` above every one of ``then``."""
    deadline = time.monotonic() + timeout_s
    while True:
        order = page.locator("tbody#users tr").evaluate_all("rows => rows.map(r => r.dataset.user)")
        if set(order) == first | then and set(order[: len(first)]) == first:
            return
        assert time.monotonic() < deadline, f"rows {order}: {first} should come before {then}"
        page.wait_for_timeout(50)


def test_presence_shows_on_rows_and_alerts_and_away_users_sink(
    demo: Demo, page: Page, snap: Snap, open_pages: OpenPages
) -> None:
    """Against the presence spec (issue 16): idle_after_s and presence_timeout_s
    shortened, users' pages stood in for by heartbeats."""
    set_demo_settings(demo, idle_after_s=3.0, presence_timeout_s=6.0)
    log_in(page, demo.url, login_token(demo.server))
    key = demo.api_key

    def row(user: str) -> Any:
        return page.locator(f'tr[data-user="{user}"]')

    send(demo.url, key, "ann@active", [{"type": "route", "route": "/projects"}])
    open_pages.keep("ann@active", input=3, focused=True)
    send(demo.url, key, "ian@idle", [{"type": "route", "route": "/reports"}])
    open_pages.keep("ian@idle", input=0, focused=True)
    send(
        demo.url,
        key,
        "hal@hidden",
        [{"type": "route", "route": "/settings"}, {"type": "visibility", "state": "hidden"}],
    )
    open_pages.keep("hal@hidden", input=0, focused=False)
    # Al's browser vanishes after one heartbeat.
    send(demo.url, key, "al@away", [{"type": "route", "route": "/docs"}, {"type": "heartbeat"}])
    # Erin hits errors while working: an alert, then her browser vanishes too.
    errors = [
        {"type": "error", "message": f"TypeError: total is undefined ({i})"} for i in range(4)
    ]
    send(demo.url, key, "erin@errors", [{"type": "route", "route": "/export"}, *errors])
    open_pages.keep("erin@errors", input=2, focused=True)

    erin_card = page.locator('.alert[data-user="erin@errors"]')
    expect(erin_card).to_contain_text("Repeated errors")
    expect(erin_card.locator(".presence-word")).to_have_text("active")
    reason = erin_card.locator(".alert-reasons").inner_text()
    assert re.fullmatch(r"Repeated errors: .+", reason.strip()), reason

    expected = {
        "ann@active": "active",
        "ian@idle": "idle",
        "hal@hidden": "hidden",
        "al@away": "away",
    }
    for user, state in expected.items():
        presence = row(user).locator(".presence")
        expect(presence).to_have_attribute("data-presence", state, timeout=PRESENCE_WAIT_MS)
        expect(presence.locator(".presence-word")).to_have_text(state)
    expect(row("ian@idle").locator(".presence-since")).to_contain_text("for ")
    expect(row("al@away").locator(".presence-since")).to_contain_text("last seen")
    expect(page.locator("#stat-away")).to_have_text("1 away")

    # Erin's browser vanishes: away, and her open alert closes as "user left",
    # keeping its reason.
    open_pages.drop("erin@errors")
    expect(row("erin@errors")).to_have_attribute("data-presence", "away", timeout=PRESENCE_WAIT_MS)
    expect(erin_card).to_have_class(re.compile(r"\bleft\b"), timeout=PRESENCE_WAIT_MS)
    expect(erin_card).to_contain_text("User left")
    expect(erin_card).to_contain_text(reason.strip())
    expect(erin_card).not_to_contain_text("Recovered")
    expect(erin_card.locator(".presence-word")).to_have_text("away")
    expect(page.locator("#stat-support")).to_have_text("0")

    present = {"ann@active", "ian@idle", "hal@hidden"}
    away = {"al@away", "erin@errors"}
    wait_rows_in_order(page, present, away)
    page.select_option("#f-presence", "present")
    wait_rows_in_order(page, present, set())
    page.select_option("#f-presence", "away")
    wait_rows_in_order(page, away, set())
    page.select_option("#f-presence", "idle")
    wait_rows_in_order(page, {"ian@idle"}, set())
    page.select_option("#f-presence", "")
    snap(page)

    # The user page says the same, and why the alert closed.
    erin_card.get_by_role("link", name="View").click()
    expect(page.locator("#u-live .presence-word")).to_have_text("away")
    expect(page.locator("#u-live .presence")).to_contain_text("last seen")
    item = page.locator("#user-alerts li").first
    expect(item).to_contain_text("User left")
    expect(item).to_contain_text(reason.strip())
