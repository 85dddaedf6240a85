"""The sample app's "make a support trigger fire" panel, done as it says.

A newcomer runs ``make run`` (``serve --demo``), opens the sample app, turns
on the short thresholds and follows the instructions: the alerts must show on
the dashboard within a minute, each for the trigger the instructions were
for.  The numbers the page states are checked against the tenant's stored
settings, and the clicks a test makes are the counts the page asks for.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tippen_rt.actors import in_words
from tippen_rt.demo import DEMO_TENANT, thresholds_preset
from tippen_rt.persist import get_tenant_by_name
from tippen_rt.tenants import TenantSettings

from .conftest import Demo, Snap, open_app
from .test_dashboard import log_in, login_token

pytestmark = pytest.mark.browser

#: What the panel promises with short thresholds.
WITHIN_S = 60.0


def stored_settings(demo: Demo) -> TenantSettings:
    """The demo tenant's settings as the service stored them."""
    conn = sqlite3.connect(f"file:{demo.db_path}?mode=ro", uri=True, timeout=10)
    try:
        return get_tenant_by_name(conn, DEMO_TENANT).settings
    finally:
        conn.close()


def fired(demo: Demo, user: str) -> set[str]:
    """The triggers that opened an alert for ``user``."""
    rows = demo.query("SELECT DISTINCT trigger FROM support_alerts WHERE user_id = ?", (user,))
    return {row["trigger"] for row in rows}


def check_the_page_states(page: Page, settings: TenantSettings) -> None:
    """Every number in the panel is the tenant's own."""
    expect(page.locator("#stuck-on-page")).to_have_text(in_words(settings.stuck_on_page_s))
    expect(page.locator("#idle-after")).to_have_text(in_words(settings.idle_after_s))
    expect(page.locator("#low-activity-window")).to_have_text(
        in_words(settings.low_activity_window_s)
    )
    expect(page.locator("#low-activity-min-events")).to_have_text(
        str(settings.low_activity_min_events)
    )
    expect(page.locator("#inactivity")).to_have_text(in_words(settings.inactivity_s))
    expect(page.locator("#error-window")).to_have_text(in_words(settings.error_window_s))
    expect(page.locator("#error-burst-count")).to_have_text(str(settings.error_burst_count))
    expect(page.locator("#errors-needed")).to_have_text(str(settings.error_burst_count + 1))


def test_the_sample_apps_instructions_fire_each_trigger_within_a_minute(
    demo: Demo, context: BrowserContext, page: Page, snap: Snap
) -> None:
    dashboard = context.new_page()
    log_in(dashboard, demo.url, login_token(demo.server))

    trying, reading = "trying@demo", "reading@demo"
    open_app(page, demo.app_url(user=trying))
    expect(page.locator("#preset")).to_have_text("the defaults")
    check_the_page_states(page, stored_settings(demo))
    expect(page.locator("#stuck-on-page")).to_have_text("5 min")

    page.click("#switch-thresholds")  # the page comes back with them
    expect(page.locator("#preset")).to_have_text("short thresholds (for the demo)")
    page.wait_for_function("() => window.tippen && window.tippen.loaded === 1")
    switched = time.monotonic()
    settings = stored_settings(demo)
    check_the_page_states(page, settings)
    assert settings.stuck_on_page_s < WITHIN_S and settings.inactivity_s < WITHIN_S
    assert settings.low_activity_window_s < WITHIN_S
    expect(page.locator("#switch-thresholds")).to_have_text("Back to the defaults")

    # "Keep this tab in front and touch nothing": another user, in another tab.
    reader = context.new_page()
    open_app(reader, demo.app_url(user=reading))

    # "Click Throw an error N times", then "keep trying every few seconds".
    for _ in range(int(page.inner_text("#errors-needed"))):
        page.click("#throw-error")
    wanted = {
        trying: {"multiple_errors", "stuck_on_page"},
        reading: {"low_activity", "long_inactivity"},
    }
    while not all(want <= fired(demo, user) for user, want in wanted.items()):
        assert time.monotonic() - switched < WITHIN_S, (
            f"after {WITHIN_S:.0f} s: {trying} {fired(demo, trying)},"
            f" {reading} {fired(demo, reading)}\n{demo.server.log()[-3000:]}"
        )
        page.click("#keep-trying")
        page.wait_for_timeout(2_000)

    # Each instruction fired its own trigger, not the others..
    assert fired(demo, trying) == wanted[trying]
    assert fired(demo, reading) == wanted[reading]
    trying_card = dashboard.locator(f'.alert[data-user="{trying}"]')
    expect(trying_card).to_contain_text("Stuck on a page")
    expect(trying_card).to_contain_text("Repeated errors")
    reading_card = dashboard.locator(f'.alert[data-user="{reading}"]')
    expect(reading_card).to_contain_text("Low activity")
    expect(reading_card).to_contain_text("Long inactivity")
    snap(dashboard)

    # Back to the defaults: stored, and stated.
    page.click("#switch-thresholds")
    expect(page.locator("#preset")).to_have_text("the defaults")
    assert thresholds_preset(stored_settings(demo)) == "default"
    check_the_page_states(page, stored_settings(demo))
