"""Presence on the dashboard pages, fed by a stand-in for the live socket.

The pages are the real ones (served, logged in and loaded from a real
``serve --demo``), but ``/ws/admin`` is answered by the test through
Playwright's ``route_web_socket``: it sends the snapshot and the changes a
server would send, with every ``presence`` and alert state the JSON can
carry (docs: /tmp/presence_spec.md, "JSON the dashboard reads").  So the
rendering, filter and order are checked whatever the server does today.
Everything waited for has a deadline; nothing asserts how fast it happened.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, Route, WebSocketRoute, expect

from .conftest import Demo, Snap
from .test_dashboard import log_in, login_token, send

pytestmark = pytest.mark.browser

MIN = 60_000


def now_ms() -> int:
    """Wall clock in epoch ms (the page runs on the same machine)."""
    return int(time.time() * 1000)


class FakeSocket:
    """Answers the page's ``/ws/admin`` instead of the service.

    ``first`` (when set) is sent to every page that connects; ``send`` goes to
    every page connected now.
    """

    def __init__(self, page: Page) -> None:
        self.page = page
        self.open: list[WebSocketRoute] = []
        self.first: dict[str, Any] | None = None
        page.route_web_socket(re.compile(r"/ws/admin$"), self._connect)

    def _connect(self, ws: WebSocketRoute) -> None:
        self.open.append(ws)
        ws.on_close(lambda *_: self.open.remove(ws) if ws in self.open else None)
        if self.first is not None:
            ws.send(json.dumps(self.first))

    def wait_connected(self, timeout_s: float = 10.0) -> None:
        """Until the current page has its socket open."""
        deadline = time.monotonic() + timeout_s
        while not self.open:
            assert time.monotonic() < deadline, "the page never opened /ws/admin"
            self.page.wait_for_timeout(50)

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` to the connected page(s)."""
        assert self.open, "no page is connected"
        for ws in list(self.open):
            ws.send(json.dumps(message))


def live_user(
    user_id: str,
    presence: str | None = "active",
    *,
    since_ms_ago: int | None = MIN,
    last_event_ms_ago: int = 1000,
    tier: str = "paid",
    **extra: Any,
) -> dict[str, Any]:
    """A live user as ``user_json`` sends it; ``presence=None``: a server without presence."""
    now = now_ms()
    user: dict[str, Any] = {
        "userId": user_id,
        "email": f"{user_id.split('@')[0]}@example.com",
        "tier": tier,
        "live": True,
        "sessionStartedAt": now - 20 * MIN,
        "lastEventAt": now - last_event_ms_ago,
        "lastInteractionAt": now - last_event_ms_ago,
        "currentRoute": "/app/" + user_id.split("@")[0],
        "routeEnteredAt": now - 2 * MIN,
        "visible": presence != "hidden",
        "totalEvents": 12,
        "totalErrors": 0,
        "lastErrorAt": None,
        "lastErrorMessage": None,
        "needsSupport": False,
        "supportTriggeredAt": None,
        "triggers": [],
        "acknowledgedAt": None,
        "acknowledgedBy": None,
    }
    if presence is not None:
        user["presence"] = presence
        user["presenceSince"] = None if since_ms_ago is None else now - since_ms_ago
        user["focused"] = presence == "active"
    user.update(extra)
    return user


STUCK = {
    "trigger": "stuck_on_page",
    "title": "Stuck on a page",
    "reason": "on /billing for 5 min, still clicking",
}


def needing_help(user_id: str, presence: str = "active", **kw: Any) -> dict[str, Any]:
    """A live user with an open "stuck" episode."""
    fired = now_ms() - 2 * MIN
    return live_user(
        user_id,
        presence,
        needsSupport=True,
        supportTriggeredAt=fired,
        triggers=[{**STUCK, "since": fired}],
        **kw,
    )


def alert(alert_id: int, user_id: str, status: str = "open", **kw: Any) -> dict[str, Any]:
    """An alert as ``alert_json`` sends it."""
    now = now_ms()
    return {
        "id": alert_id,
        "tenantId": 1,
        "userId": user_id,
        "trigger": STUCK["trigger"],
        "title": STUCK["title"],
        "reason": STUCK["reason"],
        "userEmail": None,
        "tier": "paid",
        "route": "/billing",
        "timeOnPageMs": 5 * MIN,
        "totalEvents": 12,
        "totalErrors": 0,
        "lastActiveAt": now - MIN,
        "openedAt": now - 4 * MIN,
        "resolvedAt": None,
        "resolution": None,
        "acknowledgedAt": None,
        "acknowledgedBy": None,
        "deliveryStatus": "disabled",
        "attempts": 0,
        "lastError": None,
        "suppressedCount": 0,
        "status": status,
        **kw,
    }


def snapshot(users: list[dict[str, Any]], alerts: list[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"type": "snapshot", "serverTime": now_ms(), "users": users, "alerts": list(alerts)}


def user_message(user: dict[str, Any]) -> dict[str, Any]:
    return {"type": "user", "serverTime": now_ms(), "user": user}


def shown_order(page: Page) -> list[str]:
    """The users list's rows, top to bottom."""
    return page.locator("tbody#users tr").evaluate_all("rows => rows.map(r => r.dataset.user)")


def expect_order(page: Page, expected: list[str], timeout_s: float = 10.0) -> None:
    """Until the users list shows exactly ``expected``, in that order."""
    deadline = time.monotonic() + timeout_s
    while (order := shown_order(page)) != expected:
        assert time.monotonic() < deadline, f"rows {order}, expected {expected}"
        page.wait_for_timeout(50)


def test_rows_show_presence_filter_by_it_and_away_users_sink(
    demo: Demo, page: Page, snap: Snap
) -> None:
    fake = FakeSocket(page)
    fake.first = snapshot(
        [
            # The newest activity of all, but away: sinks below everyone present.
            live_user("away@newest", "away", since_ms_ago=2 * MIN + 5000, last_event_ms_ago=1000),
            live_user(
                "ann@active",
                "active",
                since_ms_ago=5 * MIN,
                last_event_ms_ago=5000,
                tier="free_trial",
            ),
            live_user("hal@hidden", "hidden", since_ms_ago=57_000, last_event_ms_ago=10_000),
            live_user("ian@idle", "idle", since_ms_ago=3 * MIN + 5000, last_event_ms_ago=20_000),
            live_user("old@server", None, last_event_ms_ago=30_000),  # no presence sent
            needing_help("nora@needs", "active", last_event_ms_ago=40_000),
        ]
    )
    log_in(page, demo.url, login_token(demo.server))

    def row(user: str) -> Any:
        return page.locator(f'tr[data-user="{user}"]')

    # A dot and the state in words, with since when.
    words = {
        "ann@active": ("active", "for 5 min"),
        "ian@idle": ("idle", "for 3 min"),
        "hal@hidden": ("hidden", re.compile(r"^for (\d+ s|1 min)$")),
        "away@newest": ("away", "last seen 2 min ago"),
        "nora@needs": ("active", "for 1 min"),
    }
    for user, (word, since) in words.items():
        presence = row(user).locator(".presence")
        expect(presence).to_have_attribute("data-presence", word)
        expect(presence.locator(".presence-word")).to_have_text(word)
        expect(presence.locator(".presence-since")).to_have_text(since)
        expect(presence.locator(".pdot")).to_have_attribute("aria-hidden", "true")
        expect(row(user)).to_have_attribute("data-presence", word)
    # Without presence from the server, a live user is active (no "since").
    expect(row("old@server").locator(".presence-word")).to_have_text("active")
    expect(row("old@server").locator(".presence-since")).to_have_count(0)
    # Each state has its own dot.
    looks = page.locator("tbody#users .pdot").evaluate_all(
        """dots => dots.map(d => {
            const s = getComputedStyle(d);
            return [d.closest('.presence').dataset.presence,
                    s.backgroundColor + ' ' + s.borderTopColor + ' ' + s.borderTopWidth];
        })"""
    )
    by_state = dict(looks)
    assert len(set(by_state.values())) == len(by_state) == 4, by_state
    # Times tick on the page: 57 s becomes a minute.
    expect(row("hal@hidden").locator(".presence-since")).to_have_text("for 1 min")

    # Needs help first, then present users by last activity, then the away one.
    present = ["nora@needs", "ann@active", "hal@hidden", "ian@idle", "old@server"]
    expect_order(page, [*present, "away@newest"])
    expect(page.locator("#stat-live")).to_have_text("6")
    expect(page.locator("#stat-away")).to_have_text("1 away")

    # The presence filter, alone and with the others.
    page.select_option("#f-presence", "present")
    expect_order(page, present)
    page.select_option("#f-presence", "away")
    expect_order(page, ["away@newest"])
    page.select_option("#f-presence", "idle")
    expect_order(page, ["ian@idle"])
    page.select_option("#f-presence", "hidden")
    expect_order(page, ["hal@hidden"])
    page.select_option("#f-presence", "active")
    expect_order(page, ["nora@needs", "ann@active", "old@server"])
    page.select_option("#f-tier", "paid")
    expect_order(page, ["nora@needs", "old@server"])
    page.check("#f-support")
    expect_order(page, ["nora@needs"])
    page.uncheck("#f-support")
    page.select_option("#f-tier", "")
    page.select_option("#f-presence", "away")
    page.fill("#f-q", "ann")
    expect(page.locator("#users-empty")).to_have_text("No users match these filters.")
    page.fill("#f-q", "")

    # Live changes: Ann's browser vanishes (she sinks, below the newer away
    # user), Ian comes back to his page.
    fake.send(
        user_message(
            live_user(
                "ann@active",
                "away",
                since_ms_ago=95_000,
                last_event_ms_ago=95_000,
                tier="free_trial",
            )
        )
    )
    fake.send(
        user_message(live_user("ian@idle", "active", since_ms_ago=2000, last_event_ms_ago=2000))
    )
    expect_order(page, ["away@newest", "ann@active"])
    expect(row("ann@active").locator(".presence-since")).to_have_text("last seen 1 min ago")
    page.select_option("#f-presence", "")
    expect_order(
        page, ["nora@needs", "ian@idle", "hal@hidden", "old@server", "away@newest", "ann@active"]
    )
    expect(row("ian@idle").locator(".presence-word")).to_have_text("active")
    expect(page.locator("#stat-away")).to_have_text("2 away")

    # A user whose session ended shows "gone" under "Live and recent".
    with page.expect_response(re.compile(r"/api/admin/users\?scope=recent")):
        page.select_option("#f-scope", "recent")
    fake.send({"type": "user_left", "userId": "away@newest", "reason": "ended", "at": now_ms()})
    expect(row("away@newest").locator(".presence-word")).to_have_text("gone")
    expect(row("away@newest")).to_have_class(re.compile(r"\boffline\b"))
    expect(page.locator("#stat-away")).to_have_text("1 away")
    expect(page.locator("#stat-live")).to_have_text("5")
    snap(page)


def test_alert_cards_show_presence_and_user_left(demo: Demo, page: Page, snap: Snap) -> None:
    # An alert that closed (user left) a minute ago, before this page loaded.
    earlier = alert(
        7,
        "zed@left",
        "resolved",
        resolution="user_left",
        resolvedAt=now_ms() - MIN,
        reason="on /setup for 6 min, still clicking",
    )

    def resolved_alerts(route: Route) -> None:
        route.fulfill(json={"source": "stored", "alerts": [earlier], "nextBefore": None})

    page.route(re.compile(r"/api/admin/alerts\?status=resolved"), resolved_alerts)
    fake = FakeSocket(page)
    fake.first = snapshot(
        [needing_help("nora@needs", "idle", since_ms_ago=90_000), live_user("ok@fine")],
        [alert(8, "nora@needs")],
    )
    log_in(page, demo.url, login_token(demo.server))

    nora = page.locator('.alert[data-user="nora@needs"]')
    expect(nora).to_contain_text("Stuck on a page: on /billing for 5 min, still clicking")
    expect(nora.locator(".presence")).to_have_text("idle for 1 min")
    expect(nora).to_contain_text("needs help for")
    zed = page.locator('.alert[data-user="zed@left"]')
    expect(zed).to_contain_text("User left")
    expect(zed).to_contain_text("on /setup for 6 min, still clicking")
    expect(zed.locator(".presence-word")).to_have_text("gone")
    expect(zed).not_to_contain_text("Recovered")

    # Nora's browser vanishes: her alert closes as "user left"; the card says so
    # and keeps the reason.
    fake.send(user_message(live_user("nora@needs", "away", since_ms_ago=92_000)))
    left = alert(8, "nora@needs", "resolved", resolution="user_left", resolvedAt=now_ms())
    fake.send({"type": "alert", "event": "resolved", "alert": left})
    expect(nora).to_have_class(re.compile(r"\bleft\b"))
    expect(nora).to_contain_text("User left")
    expect(nora).to_contain_text("Stuck on a page: on /billing for 5 min, still clicking")
    expect(nora).to_contain_text("The user left before anyone helped.")
    expect(nora.locator(".presence")).to_have_text("away · last seen 1 min ago")
    expect(nora).not_to_contain_text("Recovered")
    expect(nora.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.locator('tr[data-user="nora@needs"]')).to_contain_text("User left")
    expect(page.locator("#alerts")).to_contain_text("Nobody needs help right now")
    expect(page.locator("#stat-support")).to_have_text("0")
    snap(page)

    # The session ends: gone.  Dismissed, the card goes, and stays gone on reload.
    fake.send({"type": "user_left", "userId": "nora@needs", "reason": "ended", "at": now_ms()})
    expect(nora.locator(".presence-word")).to_have_text("gone")
    zed.get_by_role("button", name="Dismiss the card of zed@left").click()
    expect(zed).to_have_count(0)
    fake.first = snapshot([live_user("ok@fine")])
    page.reload()
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator("#alerts")).to_contain_text("Nobody needs help right now")
    expect(zed).to_have_count(0)

    # A user who comes back (present again) has no "User left" card.
    fake.send({"type": "alert", "event": "resolved", "alert": left})
    expect(nora).to_contain_text("User left")
    fake.send(user_message(live_user("nora@needs", "active", since_ms_ago=1000)))
    expect(nora).to_have_count(0)


def test_the_user_page_shows_presence_and_why_alerts_closed(
    demo: Demo, page: Page, snap: Snap
) -> None:
    user = "uma@page"
    send(demo.url, demo.api_key, user, [{"type": "route", "route": "/billing"}])
    history = [
        alert(3, user, "open"),
        alert(
            2,
            user,
            "resolved",
            resolution="user_left",
            resolvedAt=now_ms() - 3 * MIN,
            acknowledgedAt=now_ms() - 5 * MIN,
            acknowledgedBy="Sam",
        ),
        alert(1, user, "resolved", resolution="recovered", resolvedAt=now_ms() - 9 * MIN),
    ]

    def user_alerts(route: Route) -> None:
        route.fulfill(json={"source": "stored", "alerts": history, "nextBefore": None})

    page.route(re.compile(r"/api/admin/alerts\?limit=20&userId="), user_alerts)
    fake = FakeSocket(page)
    fake.first = snapshot([])
    log_in(page, demo.url, login_token(demo.server))
    fake.first = None  # the user page gets its snapshot once its REST answers are in
    page.goto(demo.url + "/user-activity/" + user)
    expect(page.locator("#u-email")).to_have_text("uma@page@example.com")
    items = page.locator("#user-alerts li")
    expect(items).to_have_count(3)
    fake.wait_connected()
    fake.send(snapshot([needing_help(user, "idle", since_ms_ago=3 * MIN + 1000)]))

    expect(page.locator("#u-live .presence")).to_have_text("idle for 3 min")
    expect(page.locator("#u-live .presence")).to_have_attribute("data-presence", "idle")
    open_item, left_item, recovered_item = items.nth(0), items.nth(1), items.nth(2)
    expect(open_item).to_contain_text("Open")
    expect(open_item).to_contain_text("on /billing for 5 min, still clicking")
    expect(open_item.locator(".presence-word")).to_have_text("idle")
    expect(left_item).to_contain_text("User left")
    expect(left_item).to_contain_text("acknowledged by Sam")
    expect(left_item).to_contain_text("then user left 3m")
    expect(left_item).to_contain_text("on /billing for 5 min, still clicking")
    expect(left_item).not_to_contain_text("Recovered")
    expect(left_item.locator(".presence")).to_have_count(
        0
    )  # only open alerts say where the user is
    expect(recovered_item).to_contain_text("Recovered")
    expect(recovered_item).to_contain_text("recovered 9m")

    fake.send(user_message(live_user(user, "away", since_ms_ago=2 * MIN + 1000)))
    expect(page.locator("#u-live .presence")).to_have_text("away · last seen 2 min ago")
    expect(open_item.locator(".presence-word")).to_have_text("away")
    snap(page)
    fake.send({"type": "user_left", "userId": user, "reason": "ended", "at": now_ms()})
    expect(page.locator("#u-live .presence-word")).to_have_text("gone")
