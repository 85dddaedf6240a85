"""Presence in real Chromium: nobody gets an alert who is not there.

The demo tenant's thresholds are shortened (seconds instead of minutes) and
the tracker beats every second, so each scenario runs in well under a minute.
Everything waited for has a deadline; nothing asserts how fast it happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import APIRequestContext, Browser, BrowserContext, Page

from .conftest import CHROMIUM, CHROMIUM_ARGS, Demo, open_app
from .test_dashboard import log_in, login_token, set_demo_settings

pytestmark = pytest.mark.browser

#: Seconds instead of minutes; presence_timeout_s is 3 heartbeat intervals.
QUICK = {
    "presence_timeout_s": 3.0,
    "idle_after_s": 2.0,
    "away_end_s": 60.0,
    "stuck_on_page_s": 6.0,
    "inactivity_s": 5.0,
    "low_activity_window_s": 5.0,
    "unload_grace_s": 2.0,
}
BEAT_MS = 1000


def admin_api(context: BrowserContext, demo: Demo) -> APIRequestContext:
    """The admin API, logged in (the context's cookie)."""
    tab = context.new_page()
    log_in(tab, demo.url, login_token(demo.server))
    tab.close()
    return context.request


def live_user(api: APIRequestContext, demo: Demo, user: str) -> dict[str, Any] | None:
    """The user's live state from ``/api/admin/user``, or None when not live."""
    response = api.get(f"{demo.url}/api/admin/user", params={"id": user})
    if response.status == 404:
        return None
    assert response.ok, response.text()
    live: dict[str, Any] | None = response.json()["live"]
    return live


def alerts(demo: Demo, user: str) -> list[tuple[str, str | None]]:
    """(trigger, resolution) of every alert recorded for ``user``."""
    rows = demo.query(
        "SELECT trigger, resolution FROM support_alerts WHERE user_id = ? ORDER BY id", (user,)
    )
    return [(r["trigger"], r["resolution"]) for r in rows]


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {value!r}")
        time.sleep(0.1)


def test_a_killed_browser_is_away_soon_and_never_alerted(
    demo: Demo, context: BrowserContext, browser: Browser
) -> None:
    set_demo_settings(demo, **QUICK)
    api = admin_api(context, demo)
    user = "kim@vanished"
    # Its own Chromium, found by a marker on its command line, to kill -9.
    marker = f"--tippen-test-{uuid.uuid4().hex}"
    doomed = browser.browser_type.launch(
        executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, marker]
    )
    try:
        tab = doomed.new_page()
        open_app(tab, demo.app_url(user=user, tier="free_trial", heartbeat=BEAT_MS, flush=500))
        tab.click("#create-note")
        tab.mouse.move(200, 200)
        tab.mouse.move(220, 240)
        first = wait_until(lambda: live_user(api, demo, user), "the user to be live")
        assert first["presence"] in ("active", "idle")
        wait_until(
            lambda: len(demo.rows("user_id = ? AND event_type = 'heartbeat'", (user,))) >= 2,
            "heartbeats",
        )
        pids = subprocess.run(
            ["pgrep", "-f", "--", marker], capture_output=True, text=True, check=False
        ).stdout.split()
        assert pids, "the browser's processes were not found"
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)  # no pagehide, no unload, no goodbye
        killed_at = time.time()
    finally:
        with contextlib.suppress(Exception):  # its process is gone: Playwright may say so
            doomed.close()

    away = wait_until(
        lambda: (u := live_user(api, demo, user)) is not None and u["presence"] == "away" and u,
        "the user to be away",
    )
    assert time.time() - killed_at < 90
    assert away["presenceSince"] / 1000 <= killed_at + 0.5  # last seen before the kill
    # Long past every free-trial threshold (inactivity 5 s, low activity 5 s): no alert.
    time.sleep(QUICK["inactivity_s"] + QUICK["low_activity_window_s"] + 2)
    assert alerts(demo, user) == []
    still = live_user(api, demo, user)
    assert still is not None and still["presence"] == "away" and still["triggers"] == []


def test_an_idle_visible_tab_is_idle_and_never_stuck(
    demo: Demo, page: Page, context: BrowserContext
) -> None:
    set_demo_settings(demo, **QUICK)
    api = admin_api(context, demo)
    user = "ida@desk"
    open_app(page, demo.app_url(user=user, tier="paid", heartbeat=BEAT_MS, flush=500))
    # Nobody touches the page for twice the stuck threshold; it stays visible.
    page.wait_for_timeout(int(QUICK["stuck_on_page_s"] * 2 * 1000))
    state = wait_until(lambda: live_user(api, demo, user), "the user to be live")
    assert state["presence"] == "idle", state
    assert state["currentRoute"] == "/demo/app"
    beats = demo.rows("user_id = ? AND event_type = 'heartbeat'", (user,))
    assert len(beats) >= 5  # the page was there all along
    assert alerts(demo, user) == []
    assert state["triggers"] == []


def test_a_user_clicking_around_one_page_is_stuck(
    demo: Demo, page: Page, context: BrowserContext
) -> None:
    set_demo_settings(demo, **QUICK)
    api = admin_api(context, demo)
    user = "sam@stuck"
    open_app(page, demo.app_url(user=user, tier="paid", heartbeat=BEAT_MS, flush=500))
    deadline = time.monotonic() + QUICK["stuck_on_page_s"] + 20
    while time.monotonic() < deadline and not alerts(demo, user):
        page.click("#count")  # nothing happens, tries again
        page.mouse.move(300, 300)
        page.wait_for_timeout(700)
    assert alerts(demo, user) == [("stuck_on_page", None)]
    state = live_user(api, demo, user)
    assert state is not None and state["presence"] == "active"
    [trigger] = state["triggers"]
    assert trigger["trigger"] == "stuck_on_page" and "/demo/app" in trigger["reason"]
    # Moving on ends the episode as recovered.
    page.click("a[href='/demo/app/billing']")
    wait_until(lambda: alerts(demo, user) == [("stuck_on_page", "recovered")], "recovery")
