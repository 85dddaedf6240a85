"""The tracker's presence signals and its localStorage outbox (issue 16).

Heartbeats carry how many input events happened since the previous one and
whether the window has focus; they keep coming while the tab is hidden.
Batches a page could not deliver when it was left (Chromium's 64 KiB budget
for keepalive requests, a server that is down) stay in localStorage and are
sent by the next page load of the app, in any tab, under their batchIds, so
the service stores each event once.

The service ignores ``input`` and ``focused`` for now, so those are read
from the requests the page sent; everything else from the service's SQLite.

Headless Chromium keeps every page ``visible`` (a second page brought to the
front, ``Target.activateTarget``, a minimized window and
``Page.setWebLifecycleState`` all leave it so), so hiding a tab is emulated
with ``set_visibility``. Focus is real: with Playwright's focus emulation off,
bringing another page to the front blurs the app's window.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from .conftest import Demo, Row, Snap, Traffic, open_app, set_visibility

pytestmark = pytest.mark.browser

NEVER = 600_000  # ms: an interval the test never reaches
INPUTS = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart"]
#: Counts, as the tracker does, the input events the page really got.
COUNT_INPUT = (
    "window.seenInput = 0;"
    f"for (const t of {json.dumps(INPUTS)}) addEventListener(t, e => {{"
    " if (e.isTrusted) window.seenInput++; }, {capture: true, passive: true});"
)
OUTBOX_PREFIX = "tippen_q_"


def wait_until(page: Page, ok: Callable[[], bool], what: str, timeout_ms: int = 20_000) -> None:
    """Let the page run (and Playwright record its requests) until ``ok()``."""
    for _ in range(timeout_ms // 50):
        if ok():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"never happened: {what}")


def sent_events(traffic: Traffic, user: str, event_type: str) -> list[dict[str, Any]]:
    """Events of ``event_type`` the pages sent for ``user``, each batch counted once."""
    seen: set[str] = set()
    events = []
    for body in traffic.sent:
        if body["userId"] != user or body["batchId"] in seen:
            continue
        seen.add(body["batchId"])
        events += [e for e in body["events"] if e["type"] == event_type]
    return events


def outbox(context: BrowserContext, demo: Demo) -> dict[str, list[dict[str, Any]]]:
    """The tracker's localStorage outbox for the demo's origin: key -> stored batches."""
    for origin in context.storage_state()["origins"]:
        if origin["origin"] == demo.url:
            return {
                item["name"]: json.loads(item["value"])
                for item in origin["localStorage"]
                if item["name"].startswith(OUTBOX_PREFIX)
            }
    return {}


def kept_events(stored: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every event in the outbox, each batch counted once."""
    batches = {b["b"]["batchId"]: b["b"] for batches in stored.values() for b in batches}
    return [e for b in batches.values() for e in b["events"]]


def seqs(rows: list[Row], name: str) -> Counter[int]:
    """How often each ``seq`` of the custom events called ``name`` was stored."""
    return Counter(json.loads(r["event_data"])["seq"] for r in rows if r["event_name"] == name)


def test_heartbeats_count_input_and_report_focus(
    demo: Demo, page: Page, context: BrowserContext, traffic: Traffic, snap: Snap
) -> None:
    page.add_init_script(COUNT_INPUT)
    open_app(page, demo.app_url(user="beat", flush=NEVER, heartbeat=300))
    beats = lambda: sent_events(traffic, "beat", "heartbeat")  # noqa: E731
    wait_until(page, lambda: len(beats()) >= 2, "two heartbeats")
    # No input yet: every heartbeat says 0, and the (emulated) focus.
    assert all(h["input"] == 0 and h["focused"] is True for h in beats())
    assert all(set(h) == {"type", "timestamp", "route", "input", "focused"} for h in beats())

    # Real focus: without Playwright's focus emulation, another page in front
    # blurs this window, and bringing it back focuses it.
    context.new_cdp_session(page).send("Emulation.setFocusEmulationEnabled", {"enabled": False})
    other = context.new_page()
    other.bring_to_front()
    wait_until(page, lambda: not beats()[-1]["focused"], "a heartbeat without focus")
    page.bring_to_front()
    wait_until(page, lambda: beats()[-1]["focused"], "a heartbeat with focus again")
    before = len(beats())
    assert beats()[-1]["input"] == 0 and page.evaluate("seenInput") == 0

    page.mouse.move(40, 40)
    page.mouse.move(400, 300, steps=4)
    page.keyboard.press("Shift")
    page.mouse.wheel(0, 200)

    def active_then_idle() -> bool:
        after = [h["input"] for h in beats()[before:]]
        return any(after) and after[-1] == 0

    wait_until(page, active_then_idle, "heartbeats with input, then one without")
    snap(page)
    after = [h["input"] for h in beats()[before:]]
    # The first input after an idle heartbeat is reported at once, on its own.
    assert next(n for n in after if n) == 1
    # Every input event is counted, once, and only counted.
    assert sum(after) == page.evaluate("seenInput") >= 4
    assert all(h["focused"] is True for h in beats()[before:])


def test_heartbeats_continue_while_hidden_and_stop_on_opt_out(
    demo: Demo, page: Page, traffic: Traffic, snap: Snap
) -> None:
    open_app(page, demo.app_url(user="bg", flush=NEVER, heartbeat=300))
    set_visibility(page, "hidden")

    def beats_after_hidden(rows: list[Row]) -> list[Row]:
        hidden = [i for i, r in enumerate(rows) if r["visibility"] == "hidden"]
        return [r for r in rows[hidden[0] :] if r["event_type"] == "heartbeat"] if hidden else []

    rows = demo.wait_rows(
        "user_id = ?", ("bg",), until=lambda rows: len(beats_after_hidden(rows)) >= 3, page=page
    )
    assert [r["visibility"] for r in rows if r["visibility"]] == ["hidden"]
    assert all(r["route"] == "/demo/app" for r in beats_after_hidden(rows))

    set_visibility(page, "visible")
    page.evaluate("tippen.optOut()")
    snap(page)
    page.wait_for_timeout(600)  # two heartbeat intervals: one in flight has landed
    count = len(demo.rows("user_id = ? AND event_type = 'heartbeat'", ("bg",)))
    sent = len(traffic.sent)
    page.wait_for_timeout(1200)  # four more intervals
    assert len(demo.rows("user_id = ? AND event_type = 'heartbeat'", ("bg",))) == count
    assert len(traffic.sent) == sent


@pytest.mark.parametrize("leave", ["navigate", "close"])
def test_a_leave_with_85_kb_pending_loses_nothing(
    demo: Demo, page: Page, context: BrowserContext, snap: Snap, leave: str
) -> None:
    """Issue 16, browser test 4: 12 pending 7 kB events, then the page is left."""
    user = f"big-{leave}"
    app = demo.app_url(user=user, flush=NEVER, heartbeat=NEVER)
    open_app(page, app)
    page.evaluate(
        "for (let i = 0; i < 12; i++) tippen.track('big', {seq: i, blob: 'x'.repeat(7000)})"
    )
    snap(page)
    assert demo.rows("user_id = ?", (user,)) == []
    if leave == "navigate":
        page.goto(f"{demo.url}/healthz")
    else:
        page.close(run_before_unload=True)

    # The leave events go at once, in a small batch of their own ...
    rows = demo.wait_rows(
        "user_id = ?", (user,), until=lambda rows: any(r["visibility"] == "unload" for r in rows)
    )
    # ... but 84 kB cannot all go with keepalive (64 KiB in flight at most):
    # what was not stored is in localStorage, under the batch ids it was sent with.
    stored = outbox(context, demo)
    assert len(stored) == 1
    kept = {e["data"]["seq"] for e in kept_events(stored) if e.get("name") == "big"}
    assert set(range(12)) - set(seqs(rows, "big")) <= kept
    assert len(seqs(rows, "big")) < 12, "everything went at once: the budget was not exercised"

    # The next page load of the app sends it: the same tab after a navigation
    # (sessionStorage holds it too), a new tab after a close (only localStorage).
    nxt = page if leave == "navigate" else context.new_page()
    open_app(nxt, app)
    nxt.wait_for_function(
        f"() => !Object.keys(localStorage).some(k => k.startsWith('{OUTBOX_PREFIX}'))"
    )
    rows = demo.rows("user_id = ?", (user,))
    assert seqs(rows, "big") == Counter(range(12))  # every one, once
    assert [r["visibility"] for r in rows if r["visibility"]] == ["unload"]


def test_batches_kept_while_the_server_is_down_arrive_once_on_the_next_load(
    demo: Demo, page: Page, context: BrowserContext, snap: Snap
) -> None:
    app = demo.app_url(user="down", flush=NEVER, heartbeat=NEVER)
    open_app(page, app)
    page.evaluate("for (let i = 0; i < 5; i++) tippen.track('kept', {seq: i})")
    page.click("#count")
    snap(page)
    demo.stop()
    page.goto("about:blank")  # page hide: every keepalive request fails

    stored = outbox(context, demo)
    events = kept_events(stored)
    assert sorted(e["data"]["seq"] for e in events if e.get("name") == "kept") == list(range(5))
    assert [e["state"] for e in events if e["type"] == "visibility"] == ["unload"]
    assert {b["s"] for batches in stored.values() for b in batches} == {1}  # sealed
    assert demo.rows("user_id = ?", ("down",)) == []

    demo.start()
    second = context.new_page()  # another tab: sessionStorage cannot help
    open_app(second, app)
    second.wait_for_function(
        f"() => !Object.keys(localStorage).some(k => k.startsWith('{OUTBOX_PREFIX}'))"
    )
    rows = demo.rows("user_id = ?", ("down",))
    assert seqs(rows, "kept") == Counter(range(5))
    assert [r["element"] for r in rows if r["event_type"] == "click"] == ["button#count"]
    assert [r["visibility"] for r in rows if r["visibility"]] == ["unload"]


def test_two_tabs_keep_their_own_batches_and_everything_arrives_once(
    demo: Demo, page: Page, context: BrowserContext, traffic: Traffic, snap: Snap
) -> None:
    app = demo.app_url(user="tabs", flush=200, heartbeat=NEVER)
    tab_a, tab_b = page, context.new_page()
    for tab in (tab_a, tab_b):
        open_app(tab, app)
    demo.wait_rows(
        "user_id = ? AND event_type = 'route'", ("tabs",), until=lambda rows: len(rows) == 2
    )
    demo.stop()
    for name, tab in (("a", tab_a), ("b", tab_b)):
        tab.evaluate(f"for (let i = 0; i < 5; i++) tippen.track('tab-{name}', {{seq: i}})")
    for tab in (tab_a, tab_b):
        set_visibility(tab, "hidden")  # page hide: kept in localStorage

    # Each page writes its own key: neither clobbers the other's batches.
    stored = outbox(context, demo)
    assert len(stored) == 2
    tabs_by_key = sorted(
        sorted({e.get("name") for b in batches for e in b["b"]["events"]} & {"tab-a", "tab-b"})
        for batches in stored.values()
    )
    assert tabs_by_key == [["tab-a"], ["tab-b"]]

    demo.start()
    tab_c = context.new_page()  # a third tab sends what both left; they retry too
    open_app(tab_c, app)
    tab_c.wait_for_function(
        f"() => !Object.keys(localStorage).some(k => k.startsWith('{OUTBOX_PREFIX}'))",
        timeout=60_000,
    )
    snap(tab_c)
    rows = demo.rows("user_id = ?", ("tabs",))
    assert seqs(rows, "tab-a") == Counter(range(5))
    assert seqs(rows, "tab-b") == Counter(range(5))

    # Once every page has its answer, nothing is sent again.
    sent = len(traffic.sent)
    tab_c.wait_for_timeout(1500)
    assert not [b for b in traffic.sent[sent:] if "tab-" in json.dumps(b)]


def test_the_outbox_keeps_the_newest_200_kb(
    demo: Demo, page: Page, context: BrowserContext, snap: Snap
) -> None:
    open_app(page, demo.app_url(user="bound", flush=NEVER, heartbeat=NEVER))
    demo.stop()
    page.evaluate(
        "for (let i = 0; i < 40; i++) tippen.track('big', {seq: i, blob: 'x'.repeat(7000)})"
    )
    snap(page)
    page.goto("about:blank")

    stored = outbox(context, demo)
    assert sum(len(json.dumps(batches)) for batches in stored.values()) <= 200_000
    events = kept_events(stored)
    kept = sorted(e["data"]["seq"] for e in events if e.get("name") == "big")
    # ~280 kB did not fit: the oldest batches were left out, the newest kept.
    assert 20 <= len(kept) < 40
    assert kept == list(range(40 - len(kept), 40))
    assert [e["state"] for e in events if e["type"] == "visibility"] == ["unload"]
