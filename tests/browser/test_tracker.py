"""The tracker in real headless Chromium, against the real service (issue 6).

Every test drives the sample app (``/demo/app``) that ``serve --demo`` serves
with the tracker embedded, and checks what the service stored in SQLite.
Short ``flush``/``heartbeat`` intervals are set through the page's
``data-tippen-*`` attributes where waiting 5 s / 30 s would only slow the
test down; tests that must prove a particular send path use long ones.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Request, Route

from .conftest import Demo, Row, Snap, Traffic, open_app, set_visibility

pytestmark = pytest.mark.browser

FAST = {"flush": 200, "heartbeat": 400}
NEVER = 600_000  # ms: a flush interval the test never reaches


def types(rows: list[Row]) -> set[str]:
    return {r["event_type"] for r in rows}


def free_port() -> int:
    """A local port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_event_type_arrives_with_its_fields(
    demo: Demo,
    page: Page,
    context: BrowserContext,
    traffic: Traffic,
    page_errors: list[str],
    snap: Snap,
) -> None:
    open_app(page, demo.app_url(user="ann", email="ann@example.com", tier="paid", **FAST))
    page.click("#create-note")
    page.click("#invite")
    page.click("#break")
    page.click("text=Billing")
    page.click("[data-tippen-name=plan-team]")
    page.click("text=Settings")
    page.click("#account-form button[type=submit]")
    set_visibility(page, "hidden")
    set_visibility(page, "visible")
    demo.wait_rows("user_id = ? AND event_type = 'heartbeat'", ("ann",))
    snap(page)
    assert page.evaluate("document.cookie") == ""
    page.goto("about:blank")

    rows = demo.wait_rows(
        "user_id = ?", ("ann",), until=lambda rows: any(r["visibility"] == "unload" for r in rows)
    )
    assert types(rows) == {
        "route",
        "click",
        "form_submit",
        "page_time",
        "error",
        "custom",
        "heartbeat",
        "visibility",
    }
    identity = {(r["user_email"], r["subscription_tier"]) for r in rows}
    assert identity == {("ann@example.com", "paid")}

    def one(event_type: str, **fields: object) -> Row:
        found = [
            r
            for r in rows
            if r["event_type"] == event_type and all(r[k] == v for k, v in fields.items())
        ]
        assert len(found) == 1, (event_type, fields, found)
        return found[0]

    one("route", route="/demo/app")
    one("route", route="/demo/app/billing")
    one("route", route="/demo/app/settings")
    one("click", element="button#create-note", element_text="Create note", route="/demo/app")
    one(
        "click",
        element='button[data-tippen-name="plan-team"]',
        element_text="Team",
        route="/demo/app/billing",
    )
    one("click", element="a", element_text="Settings", route="/demo/app/billing")
    one("form_submit", form_id="account-form", route="/demo/app/settings")
    custom = one("custom", event_name="invite_clicked", route="/demo/app")
    assert json.loads(custom["event_data"]) == {"plan": "team", "seats": 3}
    error = one("error", route="/demo/app")
    assert error["error_message"] == "Uncaught Error: Demo failure: could not create the report"
    assert error["error_source"].startswith(f"{demo.url}/demo/app.js:")
    assert "app.js" in error["error_stack"]
    for route in ("/demo/app", "/demo/app/billing"):
        assert one("page_time", route=route)["duration_ms"] >= 0
    assert [r["visibility"] for r in rows if r["event_type"] == "visibility"] == [
        "hidden",
        "visible",
        "unload",
    ]
    assert all(r["route"] for r in rows if r["event_type"] == "heartbeat")
    assert all(r["client_timestamp"] > 0 and r["timestamp"] > 0 for r in rows)

    # Sent as text/plain (no CORS preflight), with sentAt and a batchId; no cookies.
    assert traffic.sent
    assert all(ct.startswith("text/plain") for ct in traffic.content_types)
    for body in traffic.sent:
        assert isinstance(body["sentAt"], int)
        assert body["batchId"].startswith("b-")
        assert body["apiKey"] == demo.api_key
        assert len(body["events"]) <= 50
    assert context.cookies() == []
    assert page_errors == ["Demo failure: could not create the report"]


def test_spa_navigation_gives_routes_and_page_time(
    demo: Demo, page: Page, page_errors: list[str], snap: Snap
) -> None:
    open_app(page, demo.app_url(user="nav", **FAST))
    page.click("text=Billing")  # pushState
    page.click("text=Settings")  # pushState
    page.go_back()  # popstate
    page.wait_for_function("location.pathname === '/demo/app/billing'")
    page.click("text=Help")  # hashchange to a hash route
    page.wait_for_function("location.hash === '#/help'")
    page.evaluate("history.replaceState({}, '', location.href)")  # same route: no event
    page.evaluate("history.replaceState({}, '', '/demo/app/settings')")  # replaceState
    snap(page)
    page.goto("about:blank")  # leaving: page_time for the last route

    rows = demo.wait_rows(
        "user_id = ?", ("nav",), until=lambda rows: any(r["visibility"] == "unload" for r in rows)
    )
    journey = [
        "/demo/app",
        "/demo/app/billing",
        "/demo/app/settings",
        "/demo/app/billing",
        "/demo/app/billing#/help",
        "/demo/app/settings",
    ]
    assert [r["route"] for r in rows if r["event_type"] == "route"] == journey
    assert [r["route"] for r in rows if r["event_type"] == "page_time"] == journey
    # Each page_time closes the route before the next one opens.
    kinds = [r["event_type"] for r in rows if r["event_type"] in ("route", "page_time")]
    assert kinds == ["route"] + ["page_time", "route"] * 5 + ["page_time"]
    assert all(r["duration_ms"] >= 0 for r in rows if r["event_type"] == "page_time")
    assert page_errors == []


@pytest.mark.parametrize("leave", ["navigate", "close"])
def test_leaving_the_page_delivers_the_last_events(
    demo: Demo, page: Page, snap: Snap, leave: str
) -> None:
    # Nothing is sent on a timer here: only the page-hide path can deliver.
    user = f"leaver-{leave}"
    open_app(page, demo.app_url(user=user, flush=NEVER, heartbeat=NEVER))
    page.click("#create-note")
    page.click("text=Billing")
    page.click("[data-tippen-name=plan-starter]")
    snap(page)
    assert demo.rows("user_id = ?", (user,)) == []
    if leave == "navigate":
        page.goto(f"{demo.url}/healthz")
    else:
        page.close(run_before_unload=True)

    rows = demo.wait_rows(
        "user_id = ?", (user,), until=lambda rows: any(r["visibility"] == "unload" for r in rows)
    )
    assert [(r["event_type"], r["route"], r["element"]) for r in rows] == [
        ("route", "/demo/app", None),
        ("click", "/demo/app", "button#create-note"),
        ("click", "/demo/app", "a"),
        ("page_time", "/demo/app", None),
        ("route", "/demo/app/billing", None),
        ("click", "/demo/app/billing", 'button[data-tippen-name="plan-starter"]'),
        ("page_time", "/demo/app/billing", None),
        ("visibility", "/demo/app/billing", None),
    ]


def test_server_down_then_up_loses_nothing_and_doubles_nothing(
    demo: Demo, page: Page, traffic: Traffic, page_errors: list[str], snap: Snap
) -> None:
    open_app(page, demo.app_url(user="outage", **FAST))
    demo.wait_rows("user_id = ? AND event_type = 'route'", ("outage",))
    demo.stop()

    with page.expect_event(
        "requestfailed", lambda r: r.url.endswith("/api/track/user-activity"), timeout=15_000
    ):
        page.evaluate("for (let i = 0; i < 30; i++) tippen.track('offline', {seq: i})")
    for _ in range(3):
        page.click("#count")
    assert page.inner_text("#count-value") == "3"  # the page does not notice
    page.evaluate("for (let i = 30; i < 60; i++) tippen.track('offline', {seq: i})")

    demo.start()  # the same port and database
    page.evaluate("tippen.track('sentinel')")
    rows = demo.wait_rows(
        "user_id = ? AND event_type IN ('custom', 'click')",
        ("outage",),
        until=lambda rows: any(r["event_name"] == "sentinel" for r in rows),
        timeout_s=60,
    )
    snap(page)
    seqs = [json.loads(r["event_data"])["seq"] for r in rows if r["event_name"] == "offline"]
    assert sorted(seqs) == list(range(60))  # every one, once
    assert [r["element"] for r in rows if r["event_type"] == "click"] == ["button#count"] * 3
    assert traffic.failed >= 1
    # The retries re-sent the same batches under the same ids.
    assert max(Counter(body["batchId"] for body in traffic.sent).values()) >= 2
    assert page_errors == []


def test_a_retry_after_a_lost_answer_is_stored_once(
    demo: Demo, page: Page, traffic: Traffic, snap: Snap
) -> None:
    open_app(page, demo.app_url(user="lost", **FAST))
    demo.wait_rows("user_id = ? AND event_type = 'route'", ("lost",))
    dropped: list[str] = []

    def store_then_drop_the_answer(route: Route, request: Request) -> None:
        if not dropped and "once" in (request.post_data or ""):
            dropped.append(json.loads(request.post_data)["batchId"])
            response = route.fetch()  # the service stores the batch ...
            assert response.status == 200
            route.abort()  # ... but the page never hears back
        else:
            route.continue_()

    page.route("**/api/track/user-activity", store_then_drop_the_answer)
    page.evaluate("tippen.track('once', {n: 1})")
    demo.wait_rows("user_id = ? AND event_name = 'once'", ("lost",), page=page)
    page.evaluate("tippen.track('after')")
    rows = demo.wait_rows(
        "user_id = ? AND event_type = 'custom'",
        ("lost",),
        until=lambda rows: any(r["event_name"] == "after" for r in rows),
        timeout_s=30,
        page=page,
    )
    snap(page)
    assert [r["event_name"] for r in rows] == ["once", "after"]
    (batch_id,) = dropped
    assert [b["batchId"] for b in traffic.sent].count(batch_id) >= 2  # retried, same id


def test_the_next_page_load_delivers_what_the_last_one_could_not(
    demo: Demo, page: Page, traffic: Traffic, snap: Snap
) -> None:
    # The first page sends to a port where nothing listens, so neither its
    # batches nor its page-hide keepalive requests get through: only what it
    # kept in sessionStorage can bring its events to the service.
    dead = f"http://127.0.0.1:{free_port()}/api/track/user-activity"
    open_app(page, demo.app_url(user="reload", endpoint=dead, **FAST))
    with page.expect_event("requestfailed", timeout=15_000):
        page.evaluate("for (let i = 0; i < 5; i++) tippen.track('kept', {seq: i})")
    kept = page.evaluate("Object.values(sessionStorage).join()")
    assert '"seq":4' in kept
    open_app(page, demo.app_url(user="reload", **FAST))  # the same tab: a new page load
    page.evaluate("tippen.track('sentinel')")
    rows = demo.wait_rows(
        "user_id = ?",
        ("reload",),
        until=lambda rows: any(r["event_name"] == "sentinel" for r in rows),
        timeout_s=30,
    )
    snap(page)
    assert traffic.failed >= 1
    seqs = [json.loads(r["event_data"])["seq"] for r in rows if r["event_name"] == "kept"]
    assert sorted(seqs) == [0, 1, 2, 3, 4]
    assert [r["visibility"] for r in rows if r["event_type"] == "visibility"] == ["unload"]
    assert [r["route"] for r in rows if r["event_type"] == "route"] == ["/demo/app"] * 2


def test_a_reload_delivers_everything_exactly_once(demo: Demo, page: Page, snap: Snap) -> None:
    # Nothing goes out on a timer: the old page sends at page hide with
    # keepalive and also keeps its batches for the next page, which sends them
    # again under the same batch ids; the service stores them once.
    for load in range(3):
        open_app(page, demo.app_url(user="reloader", flush=NEVER, heartbeat=NEVER))
        page.evaluate(f"for (let i = 0; i < 20; i++) tippen.track('load-{load}', {{seq: i}})")
    page.evaluate("tippen.track('sentinel'); tippen.flush()")
    rows = demo.wait_rows(
        "user_id = ? AND event_type = 'custom'",
        ("reloader",),
        until=lambda rows: any(r["event_name"] == "sentinel" for r in rows),
        timeout_s=30,
    )
    snap(page)
    seen = Counter((r["event_name"], json.loads(r["event_data"] or "{}").get("seq")) for r in rows)
    expected = {(f"load-{n}", i) for n in range(3) for i in range(20)} | {("sentinel", None)}
    assert set(seen) == expected
    assert set(seen.values()) == {1}


def test_a_password_never_leaks(
    demo: Demo, page: Page, context: BrowserContext, traffic: Traffic, snap: Snap
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    email = f"typed-{uuid.uuid4().hex}@example.com"
    open_app(page, demo.app_url("/demo/app/settings", user="private", **FAST))
    page.fill("input[name=email]", email)
    page.click("#password")
    page.keyboard.type(password)
    page.evaluate("document.getElementById('view').setAttribute('role', 'main')")
    page.click("main", position={"x": 3, "y": 3})  # a region: no text, whatever its role
    snap(page)
    stored = page.evaluate("Object.values(sessionStorage).join()")
    page.press("#password", "Enter")  # submits the form
    page.wait_for_function("document.getElementById('saved').textContent === 'Saved.'")
    page.goto("about:blank")

    rows = demo.wait_rows(
        "user_id = ?", ("private",), until=lambda rows: any(r["visibility"] for r in rows)
    )
    assert {"form_submit", "click"} <= types(rows)
    (field_click,) = [r for r in rows if r["element"] == "input#password"]
    assert field_click["element_text"] is None
    (region_click,) = [r for r in rows if r["element"] == "main#view"]
    assert region_click["element_text"] is None
    everything = [
        str(value)
        for (table,) in demo.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        for row in demo.query(f"SELECT * FROM {table}")
        for value in row
    ]
    # What the page left in localStorage for the next page load, too.
    stored += json.dumps(context.storage_state()["origins"])
    for secret in (password, email, email.split("@")[0]):
        assert not any(secret in value for value in everything), secret
        assert secret not in traffic.raw()
        assert secret not in stored


def test_a_thrown_error_is_reported_and_the_page_keeps_working(
    demo: Demo, page: Page, page_errors: list[str], snap: Snap
) -> None:
    open_app(page, demo.app_url(user="oops", **FAST))
    page.click("#break")
    page.click("#break")  # the same error again at once: reported once
    page.click("#reject")  # an unhandled promise rejection
    page.click("#count")
    page.click("#count")
    assert page.inner_text("#count-value") == "2"
    page.click("text=Billing")
    page.wait_for_selector("text=Pick a plan.")
    snap(page)

    rows = demo.wait_rows(
        "user_id = ?",
        ("oops",),
        until=lambda rows: any(r["route"] == "/demo/app/billing" for r in rows),
    )
    errors = [r for r in rows if r["event_type"] == "error"]
    assert [r["error_message"] for r in errors] == [
        "Uncaught Error: Demo failure: could not create the report",
        "Unhandled rejection: Demo failure: request rejected",
    ]
    assert "app.js" in errors[1]["error_stack"]
    clicks = Counter(r["element"] for r in rows if r["event_type"] == "click")
    assert clicks["button#break"] == 2 and clicks["button#count"] == 2
    # Both errors really were uncaught in the host page: nothing swallowed them.
    assert sorted(page_errors) == [
        "Demo failure: could not create the report",
        "Demo failure: could not create the report",
        "Demo failure: request rejected",
    ]


def test_data_tippen_ignore_hides_the_element_and_its_children(
    demo: Demo, page: Page, traffic: Traffic, snap: Snap
) -> None:
    open_app(page, demo.app_url(user="quiet", **FAST))
    page.click("#secret-button")
    page.click(".private p")
    assert page.inner_text("#status").startswith("Recovery codes")  # the app got the click
    page.click("#create-note")  # sent after the ignored clicks: once it is stored, they would be
    snap(page)
    rows = demo.wait_rows(
        "user_id = ? AND event_type = 'click'",
        ("quiet",),
        until=lambda rows: any(r["element"] == "button#create-note" for r in rows),
    )
    assert [r["element"] for r in rows] == ["button#create-note"]
    assert "recovery" not in traffic.raw().lower()
    assert "secret-button" not in traffic.raw()


def test_200_events_in_a_burst_arrive_in_batches_of_at_most_50(
    demo: Demo, page: Page, traffic: Traffic, snap: Snap
) -> None:
    open_app(page, demo.app_url(user="burst", flush=NEVER, heartbeat=NEVER))
    page.evaluate("for (let i = 0; i < 200; i++) tippen.track('burst', {i}); tippen.flush()")
    rows = demo.wait_rows(
        "user_id = ? AND event_name = 'burst'", ("burst",), until=lambda rows: len(rows) >= 200
    )
    snap(page)
    assert sorted(json.loads(r["event_data"])["i"] for r in rows) == list(range(200))
    sizes = [len(body["events"]) for body in traffic.sent]
    assert max(sizes) == 50
    burst = [
        sum(1 for event in body["events"] if event.get("name") == "burst") for body in traffic.sent
    ]
    assert sum(burst) == 200 and len([n for n in burst if n]) >= 4
    # Server side: every stored batch held at most 50 events, and they add up.
    stored = [r[0] for r in demo.query("SELECT event_count FROM ingest_batches")]
    assert max(stored) == 50
    assert sum(stored) == len(demo.rows("user_id = ?", ("burst",)))


def test_developer_api_stub_identify_track_and_opt_out(
    demo: Demo, page: Page, context: BrowserContext, traffic: Traffic, snap: Snap
) -> None:
    # A call made before the tracker loaded, through the stub.
    page.add_init_script("window.tippen = {q: [['track', 'early', {ok: true}]]};")
    open_app(page, demo.app_url(user="anon", **FAST))
    early = demo.wait_rows("user_id = ? AND event_name = 'early'", ("anon",))
    assert json.loads(early[0]["event_data"]) == {"ok": True}

    page.evaluate("tippen.identify('u-2', 'two@example.com', 'enterprise')")
    page.click("#create-note")
    page.evaluate(
        """() => {
            const cyclic = {}; cyclic.self = cyclic;
            tippen.track('big', {blob: 'x'.repeat(9000)});
            tippen.track('cyclic', cyclic);
            tippen.track();
        }"""
    )
    rows = demo.wait_rows(
        "user_id = ?",
        ("u-2",),
        until=lambda rows: any(r["event_name"] == "cyclic" for r in rows),
    )
    assert {(r["user_email"], r["subscription_tier"]) for r in rows} == {
        ("two@example.com", "enterprise")
    }
    assert [r["element"] for r in rows if r["event_type"] == "click"] == ["button#create-note"]
    assert [(r["event_name"], r["event_data"]) for r in rows if r["event_type"] == "custom"] == [
        ("big", '{"dropped":1}'),
        ("cyclic", '{"dropped":1}'),
    ]

    page.evaluate("tippen.optOut()")
    page.click("#count")
    page.evaluate("tippen.track('after-opt-out'); tippen.flush()")
    page.reload()  # the opt-out is remembered
    page.wait_for_function("() => window.tippen && window.tippen.loaded === 1")
    page.click("#count")
    snap(page)
    assert page.evaluate("localStorage.getItem('tippen_opt_out')") == "1"
    page.wait_for_timeout(1000)  # five flush intervals: anything queued would have gone
    assert "after-opt-out" not in traffic.raw() and "button#count" not in traffic.raw()
    assert demo.rows("event_name = 'after-opt-out' OR element = 'button#count'") == []
    assert len(demo.rows("event_type = 'route'")) == 1  # not the reloaded page's
    assert context.cookies() == []


def sent_until(page: Page, traffic: Traffic, found: Callable[[list[Any]], Any]) -> Any:
    """What ``found`` finds in the bodies sent, once it finds anything (Playwright hands
    its request events over only while the test is inside one of its calls)."""
    for _ in range(250):
        result = found(traffic.sent)
        if result:
            return result
        page.wait_for_timeout(20)
    raise AssertionError(f"never sent; sent: {traffic.sent}")


def test_the_display_name_comes_from_the_tag_and_identify(
    demo: Demo, page: Page, traffic: Traffic, snap: Snap
) -> None:
    open_app(page, demo.app_url(user="ann", email="ann@example.com", name="Ann Lee", **FAST))
    demo.wait_rows("user_id = ?", ("ann",), page=page)
    sent_until(page, traffic, lambda bodies: bool(bodies))
    assert {b["userName"] for b in traffic.sent} == {"Ann Lee"}
    # identify({...}) changes only what it names; a name with a zero-width
    # joiner (a family emoji) and a bidi override would be refused by the
    # server as a whole batch: the tracker leaves those characters out.
    page.evaluate(
        "tippen.identify({name: 'Ann \u202eLee \ud83d\udc68\u200d\ud83d\udc69'});"
        " tippen.track('named')"
    )
    demo.wait_rows("event_name = 'named'", page=page)
    [last] = sent_until(
        page,
        traffic,
        lambda bodies: [b for b in bodies if any(e.get("name") == "named" for e in b["events"])],
    )
    assert (last["userId"], last["userEmail"], last["userName"]) == (
        "ann",
        "ann@example.com",
        "Ann Lee \U0001f468\U0001f469",
    )
    snap(page)


def test_input_the_server_would_refuse_never_costs_a_batch(
    demo: Demo, page: Page, traffic: Traffic, snap: Snap
) -> None:
    """Big custom data, blank names and cut emoji: every good event still arrives."""
    open_app(page, demo.app_url(user="odd", flush=NEVER, heartbeat=NEVER))
    page.evaluate(
        """() => {
            // 50 events of ~7 kB: one 50-event batch would be ~350 kB, over the
            // server's 256 KiB limit and the browser's 64 kB keepalive quota.
            for (let i = 0; i < 50; i++) tippen.track('big', {i, blob: 'y'.repeat(7000)});
            tippen.track('   ');                            // blank: not an event
            tippen.track('emoji', {s: '\\ud83d', t: 'ok'}); // a lone surrogate
            const b = document.createElement('button');
            b.id = 'cut'; b.textContent = 'a'.repeat(79) + '\\ud83d\\ude00';
            document.body.append(b); b.click();             // text cut inside the emoji
            tippen.flush();
        }"""
    )
    rows = demo.wait_rows(
        "user_id = ? AND event_type IN ('custom', 'click')",
        ("odd",),
        until=lambda rows: len(rows) >= 52,
    )
    snap(page)
    big = sorted(json.loads(r["event_data"])["i"] for r in rows if r["event_name"] == "big")
    assert big == list(range(50))
    (emoji,) = [r for r in rows if r["event_name"] == "emoji"]
    assert json.loads(emoji["event_data"]) == {"s": "\ufffd", "t": "ok"}
    (click,) = [r for r in rows if r["event_type"] == "click"]
    assert click["element_text"] == "a" * 79 + "\ufffd"
    assert not [r for r in rows if r["event_type"] == "custom" and not r["event_name"].strip()]
    assert all(len(json.dumps(body)) <= 64_000 for body in traffic.sent)


def test_429_and_5xx_are_retried_honouring_retry_after_and_other_4xx_dropped(
    demo: Demo, page: Page, traffic: Traffic, snap: Snap
) -> None:
    open_app(page, demo.app_url(user="retry", flush=NEVER, heartbeat=NEVER))
    answers = ["429", "500"]  # for the batch holding 'first', then the real service
    attempts: list[tuple[str, float]] = []

    def answer(route: Route, request: Request) -> None:
        body = request.post_data or ""
        now = page.evaluate("performance.now()")
        if "first" in body:
            attempts.append((json.loads(body)["batchId"], now))
            if answers:
                status = answers.pop(0)
                headers = {"Retry-After": "2"} if status == "429" else {}
                route.fulfill(status=int(status), body="{}", headers=headers)
                return
        if "refused" in body:
            attempts.append(("refused", now))
            route.fulfill(status=400, body='{"success": false}')
            return
        route.continue_()

    page.route("**/api/track/user-activity", answer)
    page.evaluate("tippen.track('first'); tippen.flush()")
    demo.wait_rows("user_id = ? AND event_name = 'first'", ("retry",), page=page, timeout_s=30)
    (first_id, t0), (second_id, t1), (third_id, _) = attempts
    assert first_id == second_id == third_id  # the same batch, retried
    assert t1 - t0 >= 2000  # not before Retry-After

    page.evaluate("tippen.track('refused'); tippen.flush()")
    page.wait_for_timeout(300)
    page.evaluate("tippen.track('later'); tippen.flush()")
    demo.wait_rows("user_id = ? AND event_name = 'later'", ("retry",), page=page, timeout_s=30)
    snap(page)
    assert [a for a, _ in attempts].count("refused") == 1  # dropped, never retried
    assert demo.rows("event_name = 'refused'") == []
    assert len(demo.rows("event_name = 'first'")) == 1
