"""Real headless Chromium against the real service, run as a subprocess.

Playwright's sync API runs its own event loop, so these tests and fixtures are
plain ``def``s: pytest-trio's ``trio_mode`` leaves them alone.  Each test gets
a fresh ``tippen-rt serve --demo`` on its own SQLite file and reads what was
stored straight from that file.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect, sync_playwright

from tippen_rt.persist import create_agent, create_tenant, open_database

from ..support.server import ServerProcess, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
TRACK_PATH = "/api/track/user-activity"
_API_KEY_LINE = re.compile(r"API key:\s+(\S+)")

Row = dict[str, Any]


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for the whole package; each test gets its own context."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (`make test` installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Demo:
    """A ``serve --demo`` subprocess that can be stopped and started again on its port."""

    db_path: Path
    server: ServerProcess
    api_key: str = ""

    @property
    def url(self) -> str:
        """The service's base URL (the same across restarts)."""
        return self.server.url

    def app_url(self, path: str = "/demo/app", **params: object) -> str:
        """The sample app with ``data-tippen-*`` settings (user, flush, heartbeat ...)."""
        query = urlencode({k: str(v) for k, v in params.items()})
        return f"{self.url}{path}" + (f"?{query}" if query else "")

    def stop(self) -> None:
        """Shut the service down cleanly (SIGTERM) and wait for it to exit."""
        assert self.server.stop() == 0, self.server.log()

    def start(self) -> None:
        """Start the service again on the same port and database."""
        port = self.server.port
        self.server = start_server(self.db_path, "--demo", port=port)
        self.server.wait_for_log("API key:")

    def rows(self, where: str = "1", params: tuple[Any, ...] = ()) -> list[Row]:
        """Stored events matching ``where``, in the order they happened in the page."""
        return [
            dict(row)
            for row in self.query(
                f"SELECT * FROM user_activity_events WHERE {where} ORDER BY client_timestamp, id",
                params,
            )
        ]

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Run ``sql`` on a fresh read-only connection."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def wait_rows(
        self,
        where: str,
        params: tuple[Any, ...] = (),
        *,
        until: Callable[[list[Row]], bool] = bool,
        timeout_s: float = 20.0,
        page: Page | None = None,
    ) -> list[Row]:
        """Poll the database until the rows matching ``where`` satisfy ``until``.

        Pass ``page`` when it has ``page.route`` handlers: Playwright's sync API
        runs them only while the test is inside a Playwright call.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.rows(where, params)
            if until(rows):
                return rows
            if time.monotonic() > deadline:
                kinds = [(r["event_type"], r["route"], r["element"], r["event_name"]) for r in rows]
                raise AssertionError(
                    f"rows for {where} {params} never matched; last: {kinds}\n"
                    f"server log:\n{self.server.log()[-3000:]}"
                )
            if page is not None and not page.is_closed():
                page.wait_for_timeout(50)
            else:
                time.sleep(0.05)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """A fresh demo service; its API key read from what ``--demo`` prints."""
    db_path = tmp_path / "tippen.db"
    server = start_server(db_path, "--demo")
    instance = Demo(db_path=db_path, server=server)
    try:
        server.wait_for_log("API key:")
        match = _API_KEY_LINE.search(server.log())
        assert match, server.log()
        instance.api_key = match.group(1)
        yield instance
    finally:
        instance.server.kill()


@dataclass
class Traffic:
    """Every ingest request the pages of one context made, as sent."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    failed: int = 0

    def on_request(self, request: Request) -> None:
        """Record an ingest request's JSON body and content type."""
        if request.method == "POST" and request.url.endswith(TRACK_PATH):
            self.content_types.append(request.headers.get("content-type", ""))
            self.sent.append(json.loads(request.post_data or "null"))

    def on_failed(self, request: Request) -> None:
        """Count ingest requests that never got an answer."""
        if request.url.endswith(TRACK_PATH):
            self.failed += 1

    def raw(self) -> str:
        """All bodies sent, as one string (to search for leaks)."""
        return json.dumps(self.sent)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile: no cookies, no storage."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def traffic(context: BrowserContext) -> Traffic:
    """Ingest requests of every page in ``context``."""
    seen = Traffic()
    context.on("request", seen.on_request)
    context.on("requestfailed", seen.on_failed)
    return seen


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught errors of the host page (the sample app), as Chromium saw them."""
    return []


class Snap:
    """Takes the test's screenshot: test-artifacts/browser/<test>.png."""

    def __init__(self, test_name: str) -> None:
        safe_name = re.sub(r"[^\w.-]+", "_", test_name)
        self.path = ARTIFACTS / f"{safe_name}.png"
        self.taken = False

    def __call__(self, page: Page) -> None:
        """Save a full-page screenshot of ``page`` now."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(self.path), full_page=True)
        self.taken = True


@pytest.fixture
def snap(request: pytest.FixtureRequest) -> Snap:
    """Call ``snap(page)`` before a page goes away; otherwise ``page`` takes it at the end."""
    return Snap(request.node.name)


@pytest.fixture
def page(
    context: BrowserContext, page_errors: list[str], traffic: Traffic, snap: Snap
) -> Iterator[Page]:
    """A page whose uncaught errors land in ``page_errors``; screenshotted at the end."""
    tab = context.new_page()
    tab.on("pageerror", lambda exc: page_errors.append(str(exc)))
    yield tab
    if not snap.taken and not tab.is_closed() and tab.url.startswith("http"):
        snap(tab)


def open_app(page: Page, url: str) -> None:
    """Load the sample app and wait until the tracker has started."""
    page.goto(url)
    page.wait_for_function("() => window.tippen && window.tippen.loaded === 1")


def set_visibility(page: Page, state: str) -> None:
    """Make the page hidden or visible, as switching tabs does.

    Playwright keeps every page "visible" and headless Chromium has no tabs to
    switch, so the document's state is overridden and the browser's
    ``visibilitychange`` event dispatched to the tracker's real listener.
    """
    page.evaluate(
        """state => {
            const define = (name, value) =>
                Object.defineProperty(document, name, {configurable: true, get: () => value});
            define('visibilityState', state);
            define('hidden', state === 'hidden');
            document.dispatchEvent(new Event('visibilitychange'));
        }""",
        state,
    )


# ---- a tenant with two support agents (not the demo) ---------------------------------

#: The app tenant ``acme`` takes events from.
ORIGIN = "https://app.acme.test"
#: What each agent types into the login form's name field: ignored for agents.
TYPED_NAME = "Mallory"


@dataclass
class Acme:
    """A running service with tenant ``acme`` and two agents."""

    server: ServerProcess
    api_key: str
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        """The service's base URL."""
        return self.server.url


@pytest.fixture
def acme(tmp_path: Path) -> Iterator[Acme]:
    db = tmp_path / "tippen.db"
    conn = open_database(db)
    try:
        with conn:
            tenant, _admin_token = create_tenant(conn, "acme", [ORIGIN])
            tokens = {
                name: create_agent(conn, "acme", name, email)[1]
                for name, email in (("Ada Park", "ada@acme.test"), ("Bo Chen", None))
            }
    finally:
        conn.close()
    server = start_server(db)
    try:
        yield Acme(server, tenant.api_key, tokens)
    finally:
        server.kill()


@pytest.fixture
def second_context(browser: Browser) -> Iterator[BrowserContext]:
    """Another browser profile: the other agent's own cookies."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        ctx.close()


def sign_in(page: Page, base_url: str, token: str) -> None:
    """Log in as an agent would, typing a name that is not theirs."""
    page.goto(base_url + "/user-activity")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("#token", token)
    page.fill("#name", TYPED_NAME)
    page.click("button[type=submit]")
    expect(page).to_have_url(base_url + "/user-activity")
    expect(page.locator("#connection")).to_have_text("Live")
