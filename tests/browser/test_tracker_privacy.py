"""The tracker's privacy conventions in real Chromium (issue 21): Do-Not-Track
and Global Privacy Control are honoured unless the page says otherwise,
consent mode sends nothing before ``tippen.optIn()``, the choice is remembered,
and ``tippen.d.ts`` declares exactly the API the served script has."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Route

from tippen_rt.http._tracker_assets import tracker_dir

from .conftest import Demo, Traffic, open_app

pytestmark = pytest.mark.browser

FAST = {"flush": 200, "heartbeat": 400}
DNT = "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'});"
GPC = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true});"


def types(rows: list[dict[str, Any]]) -> set[str]:
    return {r["event_type"] for r in rows}


def with_script_attributes(page: Page, **attrs: str) -> None:
    """Serve the sample app with extra ``data-tippen-*`` attributes on its tracker tag,
    as an app's own page would have them."""
    extra = "".join(f' data-tippen-{k.replace("_", "-")}="{v}"' for k, v in attrs.items())

    def handle(route: Route) -> None:
        response = route.fetch()
        body = response.text().replace("data-tippen-api-key=", extra + " data-tippen-api-key=", 1)
        route.fulfill(response=response, body=body)

    page.route(re.compile(r"/demo/app(\?|$)"), handle)


def quiet_for(page: Page, traffic: Traffic, ms: int = 1200) -> None:
    """Nothing sent in ``ms`` (six flush intervals, three heartbeats)."""
    page.click("#count")
    page.wait_for_timeout(ms)
    assert traffic.sent == []


def test_do_not_track_is_honoured_until_the_user_opts_in(
    demo: Demo, page: Page, context: BrowserContext, traffic: Traffic
) -> None:
    context.add_init_script(DNT)
    open_app(page, demo.app_url(user="dnt", **FAST))
    assert page.evaluate("navigator.doNotTrack") == "1"
    assert page.evaluate("tippen.hasOptedOut()") is True
    quiet_for(page, traffic)
    assert demo.rows("user_id = 'dnt'") == []

    # The user says yes (the app's consent banner calls optIn): tracking starts now,
    # and the choice holds on the next page load although DNT is still on.
    page.evaluate("tippen.optIn()")
    assert page.evaluate("tippen.hasOptedOut()") is False
    demo.wait_rows("user_id = 'dnt' AND event_type = 'route'")
    assert page.evaluate("localStorage.getItem('tippen_opt_out')") == "0"
    page.reload()
    page.wait_for_function("() => window.tippen && window.tippen.loaded === 1")
    assert page.evaluate("tippen.hasOptedOut()") is False
    demo.wait_rows("user_id = 'dnt' AND event_type = 'route'", until=lambda rows: len(rows) == 2)

    # And back out: optOut wins over the earlier consent, on this page and the next.
    page.evaluate("tippen.optOut()")
    assert page.evaluate("tippen.hasOptedOut()") is True
    page.reload()
    page.wait_for_function("() => window.tippen && window.tippen.loaded === 1")
    assert page.evaluate("tippen.hasOptedOut()") is True


def test_global_privacy_control_is_honoured_unless_the_page_turns_it_off(
    demo: Demo, page: Page, context: BrowserContext, traffic: Traffic
) -> None:
    context.add_init_script(GPC)
    open_app(page, demo.app_url(user="gpc", **FAST))
    assert page.evaluate("tippen.hasOptedOut()") is True
    quiet_for(page, traffic)

    # An app whose users agreed to tracking in its terms may say so.
    with_script_attributes(page, respect_dnt="false")
    open_app(page, demo.app_url(user="gpc-2", **FAST))
    assert page.evaluate("tippen.hasOptedOut()") is False
    demo.wait_rows("user_id = 'gpc-2' AND event_type = 'route'")
    assert demo.rows("user_id = 'gpc'") == []


def test_consent_mode_sends_nothing_before_opt_in_and_nothing_is_lost_after(
    demo: Demo, page: Page, traffic: Traffic
) -> None:
    with_script_attributes(page, require_consent="true")
    open_app(page, demo.app_url(user="ask", **FAST))
    assert page.evaluate("tippen.hasOptedOut()") is True
    page.evaluate("tippen.track('before-consent')")
    quiet_for(page, traffic)
    assert page.evaluate("localStorage.getItem('tippen_opt_out')") is None

    # Through the stub queue, as an app calls it before or after the tracker loaded.
    page.evaluate("tippen.q.push(['optIn'])")
    rows = demo.wait_rows(
        "user_id = 'ask'", until=lambda rows: {"route", "heartbeat"} <= types(rows)
    )
    # What happened before consent was never kept: tracking starts at the yes.
    assert not [r for r in rows if r["event_name"] == "before-consent" or r["element"]]
    page.evaluate("tippen.track('after-consent'); tippen.flush()")
    demo.wait_rows("user_id = 'ask' AND event_name = 'after-consent'")
    assert "before-consent" not in traffic.raw()


# ---- tippen.d.ts against the script's real API -----------------------------------------

_MEMBER = re.compile(r"^  (?:readonly )?(\w+)(\??)(\(|:)", re.MULTILINE)


def declared_members() -> dict[str, tuple[bool, str]]:
    """``interface Tippen``'s members: name -> (optional, "function" or "value")."""
    source = (tracker_dir() / "tippen.d.ts").read_text()
    body = source.split("export interface Tippen {", 1)[1].split("\n}\n", 1)[0]
    members: dict[str, tuple[bool, str]] = {}
    for name, optional, kind in _MEMBER.findall(body):
        line = body[body.index(name) :].split("\n", 1)[0]
        is_function = kind == "(" or "=>" in line
        members.setdefault(name, (optional == "?", "function" if is_function else "value"))
    return members


def test_the_type_declarations_are_the_api_the_served_script_has(
    demo: Demo, page: Page, context: BrowserContext
) -> None:
    declared = declared_members()
    assert {"track", "identify", "flush", "optIn", "optOut", "hasOptedOut", "on"} <= set(declared)
    open_app(page, demo.app_url(user="typed", **FAST))
    real: dict[str, Any] = page.evaluate(
        """() => Object.fromEntries(Object.keys(window.tippen).map(
            (k) => [k, typeof window.tippen[k] === 'function' ? 'function' : 'value']))"""
    )
    undeclared = set(real) - set(declared)
    assert not undeclared, f"window.tippen has members tippen.d.ts does not declare: {undeclared}"
    for name, (optional, kind) in declared.items():
        if name not in real:
            assert optional, f"tippen.d.ts declares {name}, which the script does not have"
            continue
        assert real[name] == kind, f"{name}: declared a {kind}, the script has a {real[name]}"
    assert page.evaluate("typeof tippen.hasOptedOut()") == "boolean"
