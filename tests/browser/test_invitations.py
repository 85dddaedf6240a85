"""Call invitations end to end in real Chromium: two agents' dashboards and the
end users' own pages (the demo's sample app with the real tracker).

An agent starts a video call from the needs-help queue; the user's page shows
the invitation (the tracker loaded tippen-invite.js because its batches were
answered with X-Tippen-Poll); Join opens the very room the agent got; and
"Not now", or no answer at all, reaches the agent who called.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tippen_rt.persist import create_agent, open_database

from .conftest import Demo, Snap, open_app, sign_in
from .test_dashboard import send, set_demo_settings

pytestmark = pytest.mark.browser

#: The end user's tracker: quick heartbeats, so the flag is heard within a second.
PAGE = {"heartbeat": 1000, "flush": 200}


def agents(demo: Demo) -> dict[str, str]:
    """Ada's and Bo's login tokens, added to the demo tenant as `tippen-rt agent add` does."""
    conn = open_database(demo.db_path)
    try:
        with conn:
            return {name: create_agent(conn, "demo", name)[1] for name in ("Ada Park", "Bo Chen")}
    finally:
        conn.close()


def needs_help(demo: Demo, user: str) -> None:
    """Four errors from ``user``'s page: an open support need, so flagged."""
    errors = [{"type": "error", "message": f"TypeError: x is undefined ({i})"} for i in range(4)]
    send(demo.url, demo.api_key, user, [{"type": "route", "route": "/demo/app"}, *errors])


def user_page(browser: Browser, demo: Demo, user: str, name: str) -> tuple[BrowserContext, Page]:
    """The end user's own browser, on the sample app."""
    ctx = browser.new_context(viewport={"width": 1000, "height": 700})
    ctx.set_default_timeout(10_000)
    tab = ctx.new_page()
    open_app(tab, demo.app_url(user=user, name=name, email=f"{user}@example.com", **PAGE))
    return ctx, tab


def row(page: Page, user: str) -> Any:
    return page.locator(f'.q-row[data-user="{user}"]')


def start_call(dashboard: Page, user: str) -> str:
    """Click the row's "Start video call"; the agent's own tab opens the room: its URL."""
    with dashboard.context.expect_page() as opened:
        row(dashboard, user).get_by_role("button", name="Start video call").click()
    room = opened.value
    room.wait_for_url(re.compile(r"/demo/app\?call="))
    url = room.url
    room.close()
    return url


def test_a_call_shows_the_invitation_on_the_users_page_and_join_opens_the_same_room(
    demo: Demo, page: Page, second_context: BrowserContext, browser: Browser, snap: Snap
) -> None:
    set_demo_settings(
        demo, video_call_template=demo.url + "/demo/app?call={room}", invite_timeout_s=6.0
    )
    tokens = agents(demo)
    ada, bo = page, second_context.new_page()
    sign_in(ada, demo.url, tokens["Ada Park"])
    sign_in(bo, demo.url, tokens["Bo Chen"])
    ann_ctx, ann = user_page(browser, demo, "ann", "Ann Lee")
    bea_ctx, bea = user_page(browser, demo, "bea", "Bea Gold")
    cid_ctx, cid = user_page(browser, demo, "cid", "Cid Blue")
    try:
        for user in ("ann", "bea", "cid"):
            needs_help(demo, user)
            expect(row(ada, user)).to_be_visible()
        # Flagged: each page loaded the invitation script (and nothing shows yet).
        for tab in (ann, bea, cid):
            tab.wait_for_function("() => window.tippen && window.tippen.invite === 1")
            expect(tab.get_by_role("alertdialog")).to_have_count(0)

        # Ada calls Ann: the invitation is on Ann's page, saying who calls.
        clicked = time.monotonic()
        room = start_call(ada, "ann")
        dialog = ann.get_by_role("alertdialog")
        expect(dialog).to_be_visible(timeout=5_000)
        shown_after_s = time.monotonic() - clicked
        expect(dialog).to_contain_text("Video call with Ada Park")
        expect(dialog.get_by_role("button", name="Join")).to_be_focused()
        expect(row(bo, "ann").locator(".q-call")).to_contain_text(
            "Video call by Ada Park: invitation shown on their page"
        )
        snap(ann)
        # Join opens the very room the agent is in.
        with ann.context.expect_page() as joined:
            dialog.get_by_role("button", name="Join").click()
        joined.value.wait_for_url(room)
        assert joined.value.url == room
        expect(dialog).to_have_count(0)
        # Ada hears it, and so does the queue on both dashboards.
        expect(ada.locator("#toasts")).to_contain_text("Ann Lee (ann@example.com) joined the call")
        for dashboard in (ada, bo):
            expect(row(dashboard, "ann").locator(".q-call")).to_contain_text(
                "Video call by Ada Park: joined the call"
            )
        expect(bo.locator("#toasts")).not_to_contain_text("joined the call")  # not his call
        assert shown_after_s < 5.0

        # Bo calls Bea, who says "Not now" (Escape does the same).
        start_call(bo, "bea")
        dialog = bea.get_by_role("alertdialog")
        expect(dialog).to_contain_text("Video call with Bo Chen")
        dialog.get_by_role("button", name="Not now").click()
        expect(dialog).to_have_count(0)
        expect(bo.locator("#toasts")).to_contain_text("Bea Gold (bea@example.com) said")
        expect(row(ada, "bea").locator(".q-call")).to_contain_text("said \u201cnot now\u201d")

        # Ada calls Cid, who never answers: after the tenant's 6 s it is
        # "ignored", the invitation leaves Cid's page, and Ada hears it.
        start_call(ada, "cid")
        dialog = cid.get_by_role("alertdialog")
        expect(dialog).to_be_visible()
        expect(ada.locator("#toasts")).to_contain_text(
            "Cid Blue (cid@example.com) did not answer the invitation", timeout=15_000
        )
        expect(dialog).to_have_count(0)
        snap(ada)
    finally:
        for ctx in (ann_ctx, bea_ctx, cid_ctx):
            ctx.close()

    stored = {
        r["user_id"]: r["invite_status"]
        for r in demo.query("SELECT user_id, invite_status FROM video_calls")
    }
    assert stored == {"ann": "joined", "bea": "declined", "cid": "ignored"}
    lifecycle = {
        (r["user_id"], r["call_status"], r["call_by"])
        for r in demo.query("SELECT user_id, call_status, call_by FROM support_alerts")
    }
    assert lifecycle == {
        ("ann", "joined", "Ada Park"),
        ("bea", "declined", "Bo Chen"),
        ("cid", "ignored", "Ada Park"),
    }


def test_an_app_can_show_the_invitation_itself(
    demo: Demo, page: Page, browser: Browser, snap: Snap
) -> None:
    set_demo_settings(demo, video_call_template=demo.url + "/demo/app?call={room}")
    tokens = agents(demo)
    sign_in(page, demo.url, tokens["Ada Park"])
    ctx = browser.new_context()
    try:
        tab = ctx.new_page()
        # The app's own UI: through the stub queue, before the tracker loaded.
        tab.add_init_script(
            """window.tippen = {q: [['on', 'invite', function (inv) {
                window.gotInvite = {agent: inv.agent, url: inv.url};
                setTimeout(function () { inv.decline(); }, 300);
            }]]};"""
        )
        open_app(tab, demo.app_url(user="dee", name="Dee", **PAGE))
        needs_help(demo, "dee")
        expect(row(page, "dee")).to_be_visible()
        tab.wait_for_function("() => window.tippen.invite === 1")
        room = start_call(page, "dee")
        tab.wait_for_function("() => !!window.gotInvite")
        assert tab.evaluate("window.gotInvite") == {"agent": "Ada Park", "url": room}
        expect(tab.get_by_role("alertdialog")).to_have_count(0)  # no dialog of ours
        expect(page.locator("#toasts")).to_contain_text("Dee (demo@example.com) said")
        snap(page)
    finally:
        ctx.close()
