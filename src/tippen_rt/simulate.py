"""``tippen-rt simulate``: synthetic users driven through the real HTTP API.

Each user is one trio task that behaves like a person in an app with the
tracker embedded: it moves between pages, clicks, submits forms, sends a
heartbeat that says how much input there was since the last one, and hands
its events over in batches (every ``flush_s`` or at 50 events), exactly as
the tracker would post them.  Who they are decides what the dashboard will
see:

``browser``  moves around normally (nothing to do for support);
``stuck``    reaches the checkout page and stays there, clicking "Pay" and
             fiddling with the form (stuck on page);
``erring``   hits bursts of JavaScript errors on the reports page (repeated errors);
``idle``     a free trial that opens the app and then does nothing (low activity,
             long inactivity; shown idle);
``leaver``   looks around for a minute or two and closes the tab;
``vanisher`` looks around, then the browser vanishes without a goodbye
             (crash, laptop lid): shown away, then gone, and never alerted.

It runs for ``duration_s`` and then stops: every request loop is bounded.

Batches carry an ``Origin`` header, as a browser's do: by default the
service's own URL, which is what the demo tenant's sample app runs at (the
demo tenant allows it).  Another tenant must allow the origin given, or
answers 403 (shown in the summary).
"""

from __future__ import annotations

import itertools
import logging
import random
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio

from .events import TIERS

log = logging.getLogger(__name__)

__all__ = ["PERSONAS", "SimulationStats", "persona_for", "simulate"]

TRACK_PATH = "/api/track/user-activity"
MAX_BATCH = 50

PERSONAS = ("browser", "stuck", "erring", "idle", "leaver", "vanisher")
_WEIGHTS = (40, 15, 15, 15, 10, 5)

ROUTES = {
    "/dashboard": ["/projects", "/reports", "/settings", "/billing"],
    "/projects": ["/projects/new", "/projects/42", "/dashboard"],
    "/projects/new": ["/projects/42", "/projects"],
    "/projects/42": ["/projects/42/tasks", "/projects", "/dashboard"],
    "/projects/42/tasks": ["/projects/42", "/dashboard"],
    "/reports": ["/reports/export", "/dashboard"],
    "/reports/export": ["/reports", "/dashboard"],
    "/settings": ["/settings/team", "/settings/profile", "/dashboard"],
    "/settings/team": ["/settings", "/billing"],
    "/settings/profile": ["/settings", "/dashboard"],
    "/billing": ["/billing/plans", "/billing/checkout", "/dashboard"],
    "/billing/plans": ["/billing/checkout", "/billing"],
    "/billing/checkout": ["/billing", "/dashboard"],
}
BUTTONS = {
    "/projects/new": [("button#create-project", "Create project")],
    "/projects/42/tasks": [("button.add-task", "Add task"), ("a.task-link", "Fix onboarding")],
    "/reports/export": [("button#export-csv", "Export CSV")],
    "/settings/team": [("button#invite", "Invite teammate")],
    "/billing/checkout": [("button#pay", "Pay now")],
}
DEFAULT_BUTTONS = [("a.nav-link", "Next"), ("button.primary", "Save"), ("button.tab", "Details")]
ERRORS = [
    ("TypeError: Cannot read properties of undefined (reading 'rows')", "reports.js:211"),
    ("NetworkError: POST /api/reports/export failed with 500", "api.js:88"),
    ("RangeError: Invalid time value", "charts.js:1042"),
    ("Uncaught (in promise) Error: export timed out", "reports.js:260"),
]
FIRST = ["maria", "li", "amir", "sofia", "kenji", "lena", "omar", "ana", "jonas", "priya"]
LAST = ["garcia", "chen", "haddad", "rossi", "tanaka", "novak", "aziz", "silva", "berg", "iyer"]


@dataclass
class SimulationStats:
    """What a run sent, and how the service answered."""

    batches: int = 0
    events: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0
    personas: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One line for people."""
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return (
            f"{self.batches} batches, {self.events} events sent"
            f" (HTTP {codes or 'none'}; {self.failures} network failures)"
        )


class UnknownApiKey(Exception):
    """The service does not know the API key: nothing would be stored."""


def persona_for(rng: random.Random) -> str:
    """A persona, drawn with the default weights."""
    return rng.choices(PERSONAS, weights=_WEIGHTS)[0]


class Poster:
    """Posts batches with urllib in worker threads, a bounded number at once."""

    def __init__(
        self,
        base_url: str,
        concurrency: int = 16,
        timeout_s: float = 10.0,
        origin: str | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + TRACK_PATH
        self._limiter = trio.CapacityLimiter(concurrency)
        self._timeout_s = timeout_s
        self.origin = origin if origin is not None else page_origin(base_url)

    def _post_blocking(self, body: bytes) -> int:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Origin": self.origin},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.read()
            return int(exc.code)

    async def post(self, body: bytes) -> int:
        """POST ``body``; the HTTP status, or raise OSError on a network failure."""
        return await trio.to_thread.run_sync(
            self._post_blocking, body, limiter=self._limiter, abandon_on_cancel=True
        )


def page_origin(url: str) -> str:
    """The origin of a page at ``url``: ``http://127.0.0.1:8080/x`` -> ``http://127.0.0.1:8080``."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class SimUser:
    """One synthetic user: identity, persona, and the batch being filled."""

    user_id: str
    email: str
    tier: str
    persona: str
    rng: random.Random
    api_key: str
    poster: Poster
    stats: SimulationStats
    wall_ms: Callable[[], int]
    flush_s: float
    heartbeat_s: float
    route: str = "/dashboard"
    entered_ms: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)
    last_flush: float = 0.0
    #: Input events (pointer, keyboard) since the last heartbeat.
    inputs: int = 0
    #: Moving the mouse and typing all the time (the stuck persona).
    fidgeting: bool = False
    batch_numbers: itertools.count[int] = field(default_factory=itertools.count)

    def push(self, kind: str, **fields: Any) -> None:
        self.pending.append(
            {"type": kind, "timestamp": self.wall_ms(), "route": self.route, **fields}
        )

    def go(self, route: str) -> None:
        now = self.wall_ms()
        if self.entered_ms:
            self.push("page_time", duration=max(0, now - self.entered_ms))
        self.route, self.entered_ms = route, now
        self.push("route")

    def click(self) -> None:
        element, text = self.rng.choice(BUTTONS.get(self.route, DEFAULT_BUTTONS))
        self.inputs += self.rng.randint(2, 12)  # the pointer moved there, then clicked
        self.push("click", element=element, text=text)

    async def flush(self, *, force: bool = False) -> None:
        if not self.pending:
            return
        if (
            not force
            and len(self.pending) < MAX_BATCH
            and trio.current_time() < self.last_flush + self.flush_s
        ):
            return
        events, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
        body = orjson.dumps(
            {
                "apiKey": self.api_key,
                "userId": self.user_id,
                "userEmail": self.email,
                "subscriptionTier": self.tier,
                "sentAt": self.wall_ms(),
                "batchId": f"sim-{self.user_id}-{next(self.batch_numbers)}",
                "events": events,
            }
        )
        self.last_flush = trio.current_time()
        for attempt in range(3):
            try:
                status = await self.poster.post(body)
            except OSError:
                self.stats.failures += 1
                await trio.sleep(1.0 + attempt)
                continue
            self.stats.statuses[status] += 1
            if status == 401:
                raise UnknownApiKey("the service does not know this API key")
            if status in (429, 503):
                await trio.sleep(1.0 + attempt)
                continue
            if status == 200:
                self.stats.batches += 1
                self.stats.events += len(events)
            return

    async def wait(self, seconds: float) -> None:
        """Pass ``seconds`` as the tracker would: heartbeats while visible, batches on time."""
        end = trio.current_time() + seconds
        next_beat = trio.current_time() + self.heartbeat_s
        while True:
            now = trio.current_time()
            if now >= end:
                return
            wake = min(end, next_beat, self.last_flush + self.flush_s if self.pending else end)
            await trio.sleep(max(0.0, wake - now))
            if trio.current_time() >= next_beat:
                if self.fidgeting:
                    self.inputs += self.rng.randint(5, 40)
                self.push("heartbeat", input=self.inputs, focused=True)
                self.inputs = 0
                next_beat += self.heartbeat_s
            await self.flush()

    async def run(self) -> None:
        """Behave as the persona says until cancelled (the run's end)."""
        self.last_flush = trio.current_time()
        self.stats.personas[self.persona] += 1
        self.push("visibility", state="visible")
        self.go("/dashboard")
        await self.flush(force=True)
        try:
            await getattr(self, f"_{self.persona}")()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.flush(force=True)

    # ---- personas --------------------------------------------------------------

    async def _browse_step(self) -> None:
        for _ in range(self.rng.randint(0, 3)):
            await self.wait(self.rng.uniform(1.0, 4.0))
            self.click()
        if self.rng.random() < 0.15:
            self.push("form_submit", formId=f"form-{self.route.strip('/').replace('/', '-')}")
        if self.rng.random() < 0.1:
            self.push("custom", name="feature_used", data={"feature": self.route})
        await self.wait(self.rng.uniform(3.0, 12.0))
        self.go(self.rng.choice(ROUTES.get(self.route, ["/dashboard"])))

    async def _browser(self) -> None:
        while True:
            await self._browse_step()

    async def _stuck(self) -> None:
        for _ in range(self.rng.randint(1, 3)):
            await self._browse_step()
        self.go("/billing/checkout")
        self.fidgeting = True
        while True:  # clicks "Pay", nothing happens, tries again
            await self.wait(self.rng.uniform(20.0, 60.0))
            self.click()

    async def _erring(self) -> None:
        for _ in range(self.rng.randint(1, 2)):
            await self._browse_step()
        self.go("/reports/export")
        while True:
            for _ in range(self.rng.randint(4, 6)):
                await self.wait(self.rng.uniform(1.0, 5.0))
                self.click()
                message, source = self.rng.choice(ERRORS)
                self.push(
                    "error",
                    message=message,
                    source=source,
                    stack=f"{message}\n    at exportReport ({source})\n    at onClick (app.js:12)",
                )
            await self.wait(self.rng.uniform(60.0, 180.0))

    async def _idle(self) -> None:
        await self.wait(self.rng.uniform(2.0, 8.0))
        self.click()
        while True:  # the tab stays open, nobody touches it
            await self.wait(3600)

    async def _leaver(self) -> None:
        steps = self.rng.randint(3, 8)
        for _ in range(steps):
            await self._browse_step()
        self.push("visibility", state="hidden")
        self.push("visibility", state="unload")
        await self.flush(force=True)

    async def _vanisher(self) -> None:
        for _ in range(self.rng.randint(2, 6)):
            await self._browse_step()
        await self.flush(force=True)
        self.pending.clear()  # the browser is gone: nothing more is ever sent
        await trio.sleep_forever()


def _identity(rng: random.Random, number: int) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"u-{1000 + number}", f"{first}.{last}{number}@example.com"


async def simulate(
    url: str,
    api_key: str,
    *,
    users: int,
    duration_s: float,
    seed: int | None = None,
    flush_s: float = 5.0,
    heartbeat_s: float = 15.0,
    ramp_s: float | None = None,
    wall_ms: Callable[[], int] | None = None,
    report: Callable[[str], None] | None = None,
    origin: str | None = None,
) -> SimulationStats:
    """Run ``users`` synthetic users against ``url`` for ``duration_s`` seconds,
    posting as pages at ``origin`` (default: ``url``'s own)."""
    if users < 1:
        raise ValueError("simulate at least one user")
    rng = random.Random(seed)
    stats = SimulationStats()
    poster = Poster(url, origin=origin)
    clock = wall_ms or _wall_ms
    ramp = min(10.0, duration_s / 4) if ramp_s is None else ramp_s
    sims = []
    for number in range(users):
        user_rng = random.Random(rng.getrandbits(64))
        persona = persona_for(user_rng)
        tier = "free_trial" if persona == "idle" else user_rng.choices(TIERS, (50, 35, 15))[0]
        user_id, email = _identity(user_rng, number)
        sims.append(
            SimUser(
                user_id=user_id,
                email=email,
                tier=tier,
                persona=persona,
                rng=user_rng,
                api_key=api_key,
                poster=poster,
                stats=stats,
                wall_ms=clock,
                flush_s=flush_s,
                heartbeat_s=heartbeat_s,
            )
        )

    async def start(sim: SimUser, delay: float) -> None:
        await trio.sleep(delay)
        await sim.run()

    with trio.move_on_after(duration_s):
        async with trio.open_nursery() as nursery:
            for i, sim in enumerate(sims):
                nursery.start_soon(start, sim, ramp * i / users)
            if report is not None:
                nursery.start_soon(_report_every, stats, report, 10.0)
    return stats


async def _report_every(
    stats: SimulationStats, report: Callable[[str], None], every_s: float
) -> None:
    while True:
        await trio.sleep(every_s)
        report(stats.summary())


def _wall_ms() -> int:
    import time

    return time.time_ns() // 1_000_000
