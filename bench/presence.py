"""Issue 16's benchmark: do the support triggers alert on the right people?

A scripted population of synthetic sessions with known ground truth is played
through the real HTTP API (``POST /api/track/user-activity``) of a real
``tippen-rt serve`` on 127.0.0.1, with the tenant's thresholds shortened to
seconds (``tenants.settings`` in its SQLite file, before the service starts)
and a heartbeat every second.  Afterwards the alerts that fired are read
through the admin API (``/api/admin/alerts`` after ``POST /login`` with the
admin token) and, after a clean stop, from ``support_alerts`` in the SQLite
file (the union is scored: an alert opened in the last moment is not lost).

Each session is one page of one user, as the tracker would send it with
``data-tippen-heartbeat-interval`` and ``data-tippen-flush-interval`` at 1 s:
a batch per second with what happened in that second and a heartbeat
(``input``: how many pointer/keyboard inputs since the previous one,
``focused``), an immediate batch on a visibility change, and an immediate
heartbeat on the first input after a heartbeat that reported none.  Personas
(each for ``free_trial`` and ``paid``; low activity and long inactivity are
free-trial rules), with what each truly deserves:

=========  ===================================================  ====================
persona    script                                               deserves
=========  ===================================================  ====================
stuck      one route, clicking and typing for 14 s, then moves  stuck on page
           on (recovers), leaves with an unload
idle       opens a page, two clicks, then 16.5 s of heartbeats  free trial: low
           without input (page visible, focus either way),      activity and long
           comes back, clicks, moves on, leaves                 inactivity; never stuck
vanished   browses 4-6 s, then nothing (no unload): a crashed   nothing after it left;
           browser, a closed lid; a third have a burst of       the burst: multiple
           errors just before                                   errors (before leaving)
departed   the same, but leaves with ``visibility: unload``     as vanished
hidden     browses 2-3 s, then the tab goes to the background;  nothing; the burst:
           heartbeats keep coming for 16 s (``input: 0``); half multiple errors
           have a burst of errors while hidden; closed hidden
erring     browses 16 s with a burst of 5 errors in 0.6 s        multiple errors
healthy    browses 16 s (a new route every 1.5-2 s, clicks), two nothing
           lone errors far apart, leaves
=========  ===================================================  ====================

Margins make the verdict independent of races: every deserved trigger has at
least 6 s more than its threshold to fire (an error burst: its whole window);
a user who vanishes or leaves had at least 3 clicks in the 2 s before and a
route change within 2 s, so neither low activity nor stuck nor inactivity can
come due before the service can know they are away (4 s without heartbeat); an
error burst ends more than a second before the user leaves. An alert is
*justified* when its session deserves that trigger and it opened inside the
deserved stretch (clamped to the moment the user left, + 0.5 s for the last
batch to be processed); only the first one per stretch counts (a second is a
flapping episode). A session one of whose batches went out more than 1 s late
(a starved machine: the service then sees a gap in heartbeats and input the
script did not have) is not judged, and the report says how many were left
out. The SQLite file lives on tmpfs (``/dev/shm``) when there is one, so other
processes' disk I/O does not stall the answers. Precision = justified alerts /
alerts; recall = deserving sessions with a justified alert / deserving
sessions. "After leaving" counts alerts opened more than 0.5 s after the
answer to a user's last batch.

It runs twice, one after the other: **before**, the service at a baseline
revision (``--baseline REV``; default: HEAD if ``src/`` has uncommitted
changes, else the commit before the one measured; ``none`` skips it), its
``src/`` exported with ``git archive`` as ``--at`` does; and **after**, the
service as imported here (the working tree, or ``--at REV``).  Older
revisions ignore the tenant settings and heartbeat fields they do not know.

Targets (issue 16): precision >= 0.95 and recall >= 0.95 for every trigger,
and no alert for a vanished or departed user after they left.  ``--quick``:
2 sessions per persona and tier on a clock twice as fast (thresholds and
heartbeat halved); figures not comparable.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h11
import orjson
import trio

from ._loadgen import ORIGIN
from ._options import Options
from ._procs import start_server
from ._report import Report, Table, filesystem_of, git_commit
from ._revs import baseline_rev, describe_rev, export_src
from .dashboard import Http

NAME = "presence"
DESCRIPTION = (
    "precision/recall of the support triggers on scripted sessions"
    " (stuck, idle, vanished, hidden...), before and after"
)

STUCK, LOW, ERRORS, INACTIVE = "stuck_on_page", "low_activity", "multiple_errors", "long_inactivity"
TRIGGERS = (STUCK, LOW, ERRORS, INACTIVE)
TIERS = ("free_trial", "paid")
PERSONAS = ("stuck", "idle", "vanished", "departed", "hidden", "erring", "healthy")
#: Personas whose alerts after leaving are the issue's "0 alerts" target.
LEAVERS = ("vanished", "departed")
TARGET = 0.95

#: Tenant settings at scale 1: seconds where the defaults are minutes.
SETTINGS: dict[str, float] = {
    "stuck_on_page_s": 6.0,
    "low_activity_window_s": 8.0,
    "low_activity_min_events": 3,
    "error_burst_count": 3,  # fires at MORE than 3 errors ...
    "error_window_s": 5.0,  # ... within 5 s
    "inactivity_s": 8.0,
    "presence_timeout_s": 4.0,
    "idle_after_s": 2.0,
    "away_end_s": 6.0,
    "unload_grace_s": 2.0,
    "session_timeout_s": 30.0,  # 30 min by default: longer than any trigger
}
#: Counts, not durations: not scaled by --quick.
UNSCALED = frozenset({"low_activity_min_events", "error_burst_count"})
HEARTBEAT_S = 1.0
ERROR_BURST = 5
#: Sessions per persona and tier (``idle`` gets twice as many: it is the only
#: persona that deserves low activity and long inactivity).
PER_CELL, PER_CELL_QUICK = 10, 2
QUICK_SCALE = 0.5
#: Session starts are spread over this many seconds (x scale).
STAGGER_S = 6.0
#: After the last user left, watch this long (x scale) for late alerts: past
#: the presence timeout plus the longest threshold.
TAIL_S = 12.0
#: An alert opened within this of the answer to a user's last batch may come from it.
LEFT_GRACE_S = 0.5
#: Clock slop allowed before a deserved stretch opens / after it closes (x scale).
EARLY_S, LATE_S = 0.25, 1.0
#: A session with a batch sent later than this (x scale) is not judged: the
#: service saw a gap the script did not have (a busy machine), so its verdict
#: could be a race.  Counted and reported as "not judged".
LATE_SEND_S = 1.0
#: The SQLite file goes here when it exists (tmpfs: no fsync stalls from other
#: processes' I/O; this benchmark is about verdicts, not durability speed).
FAST_DIR = Path("/dev/shm")
#: One batch gets this long (then one retry on a new connection).
POST_TIMEOUT_S = 10.0


# ---- scripts ------------------------------------------------------------------------


@dataclass
class Send:
    """One batch: sent ``at`` seconds after the session starts."""

    at: float
    #: (seconds after session start, event without its timestamp)
    events: list[tuple[float, dict[str, Any]]]


@dataclass
class Session:
    """One scripted page of one user, and what happened when it was played."""

    user_id: str
    persona: str
    tier: str
    sends: list[Send]
    #: trigger -> (from, to) seconds after start: it must fire in there.
    want: dict[str, tuple[float, float]]
    #: Start, seconds after the run's start.
    offset: float = 0.0
    # Filled in while playing (epoch seconds):
    t0: float = 0.0
    left_at: float = 0.0
    lags: list[float] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


class Script:
    """Builds one session: events at script times, then the batches the tracker sends."""

    def __init__(self, rng: random.Random, u: float) -> None:
        self.rng, self.u = rng, u
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.inputs: list[float] = []
        self.routes: list[tuple[float, str]] = []
        self.hidden_at: float | None = None
        self.unfocused: tuple[float, float] | None = None
        self.want: dict[str, tuple[float, float]] = {}
        self.end = 0.0
        self.unload = True
        self._page = 0

    def route(self, t: float, path: str | None = None, *, clicked: bool = True) -> None:
        """Navigate to ``path`` (a fresh one if None): page_time of the last, then route."""
        if path is None:
            self._page += 1
            path = f"/app/page-{self._page}"
        if self.routes:
            since, last = self.routes[-1]
            duration = int((t - since) * 1000)
            self.events.append((t, {"type": "page_time", "route": last, "duration": duration}))
        self.events.append((t, {"type": "route", "route": path}))
        self.routes.append((t, path))
        if clicked:
            self.inputs.append(t)

    def click(self, t: float, extra_inputs: int = 0) -> None:
        """A click, and ``extra_inputs`` pointer moves / keys around it."""
        self.events.append((t, {"type": "click", "element": "button.primary", "text": "Save"}))
        self.inputs.extend([t] * (1 + extra_inputs))

    def error(self, t: float, message: str = "TypeError: x is undefined") -> None:
        self.events.append((t, {"type": "error", "message": message, "source": "app.js:1:1"}))

    def burst(self, t: float) -> tuple[float, float]:
        """``ERROR_BURST`` errors within 0.6 s (x scale); (first, last) time."""
        times = [t + k * 0.15 * self.u for k in range(ERROR_BURST)]
        for at in times:
            self.error(at, "Failed to fetch /api/items")
        return times[0], times[-1]

    def browse(self, t0: float, t1: float, *, new_route: bool = True) -> None:
        """Healthy browsing in [t0, t1]: a new route every 1.5-2 s, clicks every 0.25-0.55 s."""
        u, rng = self.u, self.rng
        next_route = t0 if new_route else t0 + rng.uniform(1.5, 2.0) * u
        t = t0 + rng.uniform(0.05, 0.25) * u
        while True:
            if next_route <= t1 and next_route <= t:
                self.route(next_route)
                next_route += rng.uniform(1.5, 2.0) * u
                continue
            if t > t1:
                break
            self.click(t, rng.randint(0, 3))
            t += rng.uniform(0.25, 0.55) * u

    def hide(self, t: float) -> None:
        """The tab goes to the background (the tracker flushes at once)."""
        since, last = self.routes[-1]
        self.events.append(
            (t, {"type": "page_time", "route": last, "duration": int((t - since) * 1000)})
        )
        self.events.append((t, {"type": "visibility", "state": "hidden"}))
        self.hidden_at = t

    def leave(self, t: float, *, unload: bool) -> None:
        """The last moment of the page: an unload batch, or (vanish) the last heartbeat."""
        self.end, self.unload = t, unload
        if unload:
            since, last = self.routes[-1]
            if self.hidden_at is None:
                self.events.append(
                    (t, {"type": "page_time", "route": last, "duration": int((t - since) * 1000)})
                )
            self.events.append((t, {"type": "visibility", "state": "unload"}))

    def _route_at(self, t: float) -> str:
        current = self.routes[0][1]
        for at, path in self.routes:
            if at > t:
                break
            current = path
        return current

    def _focused(self, t: float) -> bool:
        if self.hidden_at is not None and t >= self.hidden_at:
            return False
        return not (self.unfocused and self.unfocused[0] <= t < self.unfocused[1])

    def sends(self, hb: float) -> list[Send]:
        """The batches, in order: at load, every ``hb`` (with a heartbeat), at once on a
        visibility change or the first input after a heartbeat without any, at unload."""
        events = sorted(self.events, key=lambda e: e[0])
        inputs = sorted(self.inputs)
        immediate = {0.0}
        if self.hidden_at is not None:
            immediate.add(self.hidden_at)
        if self.unload:
            immediate.add(self.end)
        out: list[Send] = []
        sent_upto = -1.0  # events with t <= this are sent
        last_beat, quiet = 0.0, False
        k = 1
        done = False
        while not done:
            # The next thing that makes the tracker send: a tick, an immediate flush,
            # or the first input after a quiet heartbeat.
            candidates: list[tuple[float, str]] = []
            tick = k * hb
            if tick < self.end or (tick <= self.end + 1e-9 and not self.unload):
                candidates.append((tick, "tick"))
            later = [t for t in immediate if t > sent_upto]
            if later:
                candidates.append((min(later), "flush"))
            if quiet:
                first = next((t for t in inputs if t > last_beat), None)
                if first is not None and first > sent_upto:
                    candidates.append((first, "wake"))
            if not candidates:
                break
            at, kind = min(candidates)
            batch = [(t, dict(e)) for t, e in events if sent_upto < t <= at]
            for t, e in batch:
                if "route" not in e:  # the tracker stamps every event with the current route
                    e["route"] = self._route_at(t)
            if kind in ("tick", "wake"):
                count = sum(1 for t in inputs if last_beat < t <= at)
                hidden = self.hidden_at is not None and at >= self.hidden_at
                beat: dict[str, Any] = {
                    "type": "heartbeat",
                    "route": self._route_at(at),
                    "input": 0 if hidden else count,
                    "focused": self._focused(at),
                }
                batch.append((at, beat))
                last_beat, quiet = at, count == 0 and not hidden
                if kind == "tick":
                    k += 1
            out.append(Send(at, batch))
            sent_upto = at
            done = at >= self.end and (self.unload or kind == "tick")
        return out


def _persona(name: str, i: int, rng: random.Random, u: float, th: dict[str, float]) -> Script:
    """The script of session ``i`` of persona ``name`` (times x ``u``)."""
    s = Script(rng, u)
    if name == "healthy":
        s.browse(0.0, 16 * u)
        s.error(4.3 * u, "ResizeObserver loop limit exceeded")
        s.error(11.7 * u, "ResizeObserver loop limit exceeded")
        s.leave(16 * u, unload=True)
    elif name == "stuck":
        s.route(0.0, "/settings/billing", clicked=False)
        t = rng.uniform(0.1, 0.4) * u
        while t < 14 * u:
            s.click(t, rng.randint(1, 6))  # clicking, and typing into the form
            t += rng.uniform(0.35, 0.7) * u
        s.browse(14 * u, 16 * u)  # moves on at last
        s.leave(16 * u, unload=True)
        s.want[STUCK] = (0.0, 14 * u)
    elif name == "idle":
        s.route(0.0, "/dashboard", clicked=False)
        s.click(0.3 * u)
        s.click(0.6 * u)
        back = 17.5 * u
        if i % 2:
            s.unfocused = (1.0 * u, back)  # another window in front; the page still visible
        s.inputs.append(back)  # a pointer move: the tracker sends a heartbeat at once
        s.click(back + 0.3 * u)
        s.route(back + 1.0 * u)
        s.click(back + 1.4 * u)
        s.leave(20 * u, unload=True)
        s.want[LOW] = (0.0, back)
        s.want[INACTIVE] = (0.0, back)
    elif name in ("vanished", "departed"):
        end = rng.choice((4, 5, 6)) * u
        s.browse(0.0, end)
        if i % 3 == 0:
            first, _ = s.burst(end - 2.4 * u)
            s.want[ERRORS] = (first, end)
        s.leave(end, unload=name == "departed")
    elif name == "hidden":
        hidden_at = rng.choice((2, 3)) * u + 0.4 * u
        s.browse(0.0, hidden_at - 0.1 * u)
        s.hide(hidden_at)
        if i % 2 == 0:
            first, _ = s.burst(hidden_at + 6 * u)
            s.want[ERRORS] = (first, first + th["error_window_s"])
        s.leave(hidden_at + 16 * u, unload=True)
    elif name == "erring":
        s.browse(0.0, 16 * u)
        first, _ = s.burst(rng.uniform(4.0, 6.0) * u)
        s.want[ERRORS] = (first, first + th["error_window_s"])
        s.leave(16 * u, unload=True)
    else:
        raise ValueError(f"unknown persona {name!r}")
    return s


def population(per_cell: int, u: float, seed: int = 16) -> list[Session]:
    """Every persona x tier, ``per_cell`` sessions each (idle twice as many), shuffled."""
    rng = random.Random(seed)
    th = settings(u)
    sessions: list[Session] = []
    for persona in PERSONAS:
        for tier in TIERS:
            for i in range(per_cell * (2 if persona == "idle" else 1)):
                script = _persona(persona, i, rng, u, th)
                want = dict(script.want)
                if tier != "free_trial":
                    want.pop(LOW, None)
                    want.pop(INACTIVE, None)
                sessions.append(
                    Session(
                        user_id=f"{persona}-{tier}-{i}",
                        persona=persona,
                        tier=tier,
                        sends=script.sends(HEARTBEAT_S * u),
                        want=want,
                    )
                )
    rng.shuffle(sessions)
    for k, s in enumerate(sessions):
        s.offset = STAGGER_S * u * k / max(1, len(sessions))
    return sessions


def settings(u: float) -> dict[str, float]:
    """The tenant settings at time scale ``u``."""
    return {k: (v if k in UNSCALED else v * u) for k, v in SETTINGS.items()}


# ---- playing them -------------------------------------------------------------------


async def _post(conn: list[Http], doc: dict[str, Any]) -> int:
    """POST one batch on ``conn[0]``; on a broken or stuck connection, one retry on a new
    one (same batchId, so never stored twice).  The status, 0 if there was none."""
    for _ in range(2):
        http = conn[0]
        try:
            with trio.move_on_after(POST_TIMEOUT_S):
                return await http.post_batch(doc)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass
        await http.aclose()
        conn[0] = Http(http.host, http.port)
    return 0


async def _play(host: str, port: int, api_key: str, s: Session, base: float) -> None:
    s.t0 = base + s.offset
    conn = [Http(host, port)]
    try:
        for n, send in enumerate(s.sends):
            due = s.t0 + send.at
            await trio.sleep(max(0.0, due - time.time()))
            now = time.time()
            s.lags.append(now - due)
            doc = {
                "apiKey": api_key,
                "userId": s.user_id,
                "userEmail": f"{s.user_id}@example.com",
                "subscriptionTier": s.tier,
                "sentAt": int(now * 1000),
                "batchId": f"{s.user_id}-{n}",
                "events": [
                    {**event, "timestamp": int((s.t0 + t) * 1000)} for t, event in send.events
                ],
            }
            s.statuses[await _post(conn, doc)] += 1
            s.rtts.append(time.time() - now)
        s.left_at = time.time()  # the service has taken the last batch: the user is gone
    finally:
        await conn[0].aclose()


@dataclass(frozen=True, slots=True)
class Alert:
    id: int | None
    user_id: str
    trigger: str
    opened_at: float  # epoch seconds


async def _admin_alerts(host: str, port: int, admin_token: str) -> list[Alert]:
    """Every alert of the tenant, through the admin API (newest first, paged by id)."""
    http = Http(host, port)
    try:
        status, headers, body = await http.request(
            "POST",
            "/login",
            orjson.dumps({"token": admin_token, "name": "bench"}),
            [("Content-Type", "application/json")],
        )
        if status != 200 or "set-cookie" not in headers:
            raise RuntimeError(f"admin login failed: {status} {body[:200]!r}")
        cookie = headers["set-cookie"].split(";", 1)[0]
        out: list[Alert] = []
        before: int | None = None
        for _ in range(200):  # bounded: 200 pages of 500
            path = "/api/admin/alerts?limit=500" + (f"&before={before}" if before else "")
            status, _, body = await http.request("GET", path, b"", [("Cookie", cookie)])
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
            doc = orjson.loads(body)
            for a in doc["alerts"]:
                out.append(Alert(a.get("id"), a["userId"], a["trigger"], a["openedAt"] / 1000))
            before = doc.get("nextBefore")
            if not before:
                break
        return out
    finally:
        await http.aclose()


async def _drive(
    url: str, created: dict[str, Any], sessions: list[Session], u: float
) -> list[Alert]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    base = time.time() + 1.0
    script_s = max(s.offset + s.sends[-1].at for s in sessions)
    with trio.fail_after(script_s + TAIL_S * u + 120):
        async with trio.open_nursery() as nursery:
            for s in sessions:
                nursery.start_soon(_play, host, port, created["api_key"], s, base)
        # Watch for late alerts: past the presence timeout and the longest threshold.
        last_left = max(s.left_at for s in sessions)
        await trio.sleep(max(0.0, last_left + TAIL_S * u - time.time()))
        return await _admin_alerts(host, port, created["admin_token"])


# ---- one side: a service at one revision --------------------------------------------


@dataclass
class Side:
    """What one run (before or after) produced."""

    label: str
    revision: str
    sessions: list[Session]
    alerts: list[Alert]
    api_alerts: int
    db_alerts: int | None
    wall_s: float
    exit_code: int | None
    db_filesystem: str


def _cli(db: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "tippen_rt", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tippen-rt {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stdout


def _set_tenant_settings(db: Path, name: str, values: dict[str, float]) -> None:
    """Merge ``values`` into the tenant's stored settings (JSON in ``tenants.settings``).

    ``tippen-rt tenant set`` has no flags for thresholds; the service reads them from
    this column.  Revisions that do not know a key ignore it.
    """
    conn = sqlite3.connect(db, timeout=30)
    try:
        with conn:
            row = conn.execute("SELECT settings FROM tenants WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise RuntimeError(f"no tenant {name!r} in {db}")
            merged = {**orjson.loads(row[0] or "{}"), **values}
            conn.execute(
                "UPDATE tenants SET settings = ? WHERE name = ?",
                (orjson.dumps(merged).decode(), name),
            )
    finally:
        conn.close()


def _stored_alerts(db: Path) -> list[Alert] | None:
    """``support_alerts`` as committed (read after the service stopped), or None."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute(
                "SELECT id, user_id, trigger, opened_at FROM support_alerts"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return [Alert(r[0], r[1], r[2], r[3] / 1000) for r in rows]


def run_side(label: str, revision: str, src: Path | None, per_cell: int, u: float) -> Side:
    """Play the population against a fresh service (``src`` first on PYTHONPATH if given)."""
    sessions = population(per_cell, u)
    env: dict[str, str] = {
        # all the load comes from one address with one key
        "TIPPEN_INGEST_RATE_PER_ADDRESS": "0",
        "TIPPEN_INGEST_RATE_PER_KEY": "0",
        # nothing leaves 127.0.0.1, whatever the caller's environment says
        "TIPPEN_SLACK_WEBHOOK_URL": "",
        "TIPPEN_SLACK_BOT_TOKEN": "",
        "TIPPEN_REDIS_URL": "",
    }
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(src), os.environ.get("PYTHONPATH")) if p
        )
    t0 = time.perf_counter()
    fast = FAST_DIR if FAST_DIR.is_dir() and os.access(FAST_DIR, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix=f"tippen-bench-presence-{label}-", dir=fast) as tmp:
        db = Path(tmp) / "bench.db"
        db_filesystem = filesystem_of(Path(tmp))
        created = orjson.loads(
            _cli(db, env, "tenant", "add", "bench", "--origin", ORIGIN, "--json")
        )
        _set_tenant_settings(db, "bench", settings(u))
        server = start_server(
            f"tippen-rt ({label})",
            [
                *(sys.executable, "-m", "tippen_rt", "--db", str(db)),
                *("serve", "--host", "127.0.0.1", "--port", "0"),
            ],
            env=env,
        )
        try:
            api = trio.run(_drive, server.url, created, sessions, u)
        except BaseException:
            sys.stderr.write(server.log()[-4000:])
            raise
        finally:
            code = server.stop()
        stored = _stored_alerts(db)
    alerts: dict[object, Alert] = {
        a.id if a.id is not None else ("api", n): a for n, a in enumerate(api)
    }
    for a in stored or ():
        alerts.setdefault(a.id, a)
    return Side(
        label=label,
        revision=revision,
        sessions=sessions,
        alerts=list(alerts.values()),
        api_alerts=len(api),
        db_alerts=None if stored is None else len(stored),
        wall_s=time.perf_counter() - t0,
        exit_code=code,
        db_filesystem=db_filesystem,
    )


# ---- scoring ------------------------------------------------------------------------


@dataclass
class Score:
    """Per-trigger counts of one side."""

    alerts: Counter[str] = field(default_factory=Counter)
    justified: Counter[str] = field(default_factory=Counter)
    repeats: Counter[str] = field(default_factory=Counter)
    deserving: Counter[str] = field(default_factory=Counter)
    caught: Counter[str] = field(default_factory=Counter)
    #: (persona, tier, trigger) -> sessions with at least one such alert
    fired: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: (persona, tier, trigger) -> sessions deserving it
    wanted: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    cells: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (persona, tier) -> alerts opened after that user left
    after_left: Counter[tuple[str, str]] = field(default_factory=Counter)
    after_left_by_trigger: Counter[str] = field(default_factory=Counter)
    unknown_users: int = 0
    #: (persona, tier) -> sessions left out: a batch went out too late (busy machine)
    not_judged: Counter[tuple[str, str]] = field(default_factory=Counter)

    def precision(self, trigger: str) -> float:
        n = self.alerts[trigger]
        return self.justified[trigger] / n if n else math.nan

    def recall(self, trigger: str) -> float:
        n = self.deserving[trigger]
        return self.caught[trigger] / n if n else math.nan

    @property
    def leavers_after_left(self) -> int:
        return sum(n for (persona, _), n in self.after_left.items() if persona in LEAVERS)


def score(side: Side, u: float) -> Score:
    sc = Score()
    by_user: dict[str, list[Alert]] = defaultdict(list)
    for a in side.alerts:
        by_user[a.user_id].append(a)
    known = {s.user_id for s in side.sessions}
    sc.unknown_users = sum(len(v) for k, v in by_user.items() if k not in known)
    for s in side.sessions:
        if max(s.lags, default=0.0) > LATE_SEND_S * u:
            sc.not_judged[(s.persona, s.tier)] += 1
            continue
        sc.cells[(s.persona, s.tier)] += 1
        gone = s.left_at + LEFT_GRACE_S
        for trigger, _ in s.want.items():
            sc.deserving[trigger] += 1
            sc.wanted[(s.persona, s.tier, trigger)] += 1
        hit: set[str] = set()
        fired: set[str] = set()
        for a in sorted(by_user.get(s.user_id, ()), key=lambda a: a.opened_at):
            sc.alerts[a.trigger] += 1
            fired.add(a.trigger)
            if a.opened_at > gone:
                sc.after_left[(s.persona, s.tier)] += 1
                sc.after_left_by_trigger[a.trigger] += 1
            window = s.want.get(a.trigger)
            if window is None:
                continue
            lo = s.t0 + window[0] - EARLY_S * u
            hi = min(s.t0 + window[1] + LATE_S * u, gone)
            if lo <= a.opened_at <= hi:
                if a.trigger in hit:
                    sc.repeats[a.trigger] += 1
                else:
                    hit.add(a.trigger)
                    sc.justified[a.trigger] += 1
        for trigger in hit:
            sc.caught[trigger] += 1
        for trigger in fired:
            sc.fired[(s.persona, s.tier, trigger)] += 1
    return sc


def _pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


# ---- the run ------------------------------------------------------------------------


def run(opts: Options) -> Report:
    """Play the population against the baseline (before) and the code here (after)."""
    u = QUICK_SCALE if opts.quick else 1.0
    per_cell = PER_CELL_QUICK if opts.quick else PER_CELL
    git = git_commit()
    after_rev = (
        f"{describe_rev(git['commit'])} (--at)"
        if git.get("src") == "exported"
        else f"{str(git['commit'])[:12]} working tree{' (dirty)' if git['dirty'] else ''}"
    )
    baseline, how = baseline_rev(opts.baseline)
    report = Report(
        NAME,
        params={
            "sessions_per_persona_tier": per_cell,
            "idle_sessions_per_tier": 2 * per_cell,
            "time_scale": u,
            "heartbeat_s": HEARTBEAT_S * u,
            "tenant_settings": settings(u),
            "after": after_rev,
            "before": describe_rev(baseline) if baseline else None,
            "before_chosen_as": how,
        },
    )
    sides: list[Side] = []
    if baseline is not None:
        print(f"   before: {describe_rev(baseline)} ({how})", flush=True)
        try:
            with tempfile.TemporaryDirectory(prefix=f"tippen-bench-{baseline[:8]}-") as tmp:
                src = export_src(baseline, Path(tmp))
                sides.append(run_side("before", describe_rev(baseline), src, per_cell, u))
            print(f"   before: done in {sides[-1].wall_s:.0f} s", flush=True)
        except (
            RuntimeError,
            TimeoutError,
            OSError,
            subprocess.SubprocessError,
            trio.TooSlowError,
        ) as exc:
            print(f"   before: failed: {exc}", flush=True)
            report.notes.append(f"the 'before' run at {baseline[:12]} failed: {str(exc)[:300]}")
    else:
        report.notes.append(f"no 'before' run: {how}")
    print(f"   after:  {after_rev}", flush=True)
    sides.append(run_side("after", after_rev, None, per_cell, u))
    print(f"   after:  done in {sides[-1].wall_s:.0f} s", flush=True)
    _report(report, sides, u)
    return report


def _report(report: Report, sides: list[Side], u: float) -> None:
    scores = {side.label: score(side, u) for side in sides}
    ref = scores[sides[-1].label]
    n_sessions = len(sides[-1].sessions)

    cols = ["trigger", "deserving"]
    for side in sides:
        cols += [f"alerts {side.label}", f"precision {side.label}", f"recall {side.label}"]
    cols.append("target")
    main = Table(
        f"support triggers on {n_sessions} scripted sessions"
        f" (thresholds in seconds, heartbeat every {HEARTBEAT_S * u:g} s);"
        f" target: precision and recall >= {TARGET}",
        cols,
    )
    for trigger in TRIGGERS:
        row: list[Any] = [trigger, ref.deserving[trigger]]
        for side in sides:
            sc = scores[side.label]
            row += [sc.alerts[trigger], sc.precision(trigger), sc.recall(trigger)]
        main.add(*row, f">= {TARGET}")
    left_row: list[Any] = ["after leaving (vanished, departed)", None]
    for side in sides:
        left_row += [scores[side.label].leavers_after_left, None, None]
    main.add(*left_row, "0 alerts")
    report.tables.append(main)

    for side in sides:
        sc = scores[side.label]
        t = Table(
            f"{side.label}: {side.revision}: sessions with an alert / sessions"
            " (want: sessions that deserve it)",
            ["persona", "tier", *TRIGGERS, "alerts after leaving"],
        )
        for persona in PERSONAS:
            for tier in TIERS:
                n = sc.cells[(persona, tier)]
                cells = []
                for trigger in TRIGGERS:
                    key = (persona, tier, trigger)
                    cells.append(f"{sc.fired[key]}/{n} (want {sc.wanted[key]})")
                t.add(persona, tier, *cells, sc.after_left[(persona, tier)])
        report.tables.append(t)

    targets = Table(f"targets (issue 16), {sides[-1].label}", ["figure", "value", "target", "met"])
    met_all = True
    for trigger in TRIGGERS:
        for what, value in (
            ("precision", ref.precision(trigger)),
            ("recall", ref.recall(trigger)),
        ):
            met = value >= TARGET
            met_all &= met
            targets.add(f"{trigger} {what}", value, f">= {TARGET}", met)
    leavers = ref.leavers_after_left
    met_all &= leavers == 0
    targets.add("alerts after leaving (vanished, departed)", leavers, "0", leavers == 0)
    report.tables.append(targets)

    run_table = Table(
        "the runs",
        [
            "run",
            "sessions",
            "batches",
            "non-200",
            "send lag p50 ms",
            "p99 ms",
            "max ms",
            "answer p99 ms",
            "alerts (api)",
            "alerts (sqlite)",
            "not judged",
            "wall s",
        ],
    )
    for side in sides:
        lags = [x * 1000 for s in side.sessions for x in s.lags]
        rtts = [x * 1000 for s in side.sessions for x in s.rtts]
        statuses: Counter[int] = Counter()
        for s in side.sessions:
            statuses.update(s.statuses)
        bad = sum(v for k, v in statuses.items() if k != 200)
        run_table.add(
            side.label,
            len(side.sessions),
            sum(statuses.values()),
            bad,
            _pct(lags, 50),
            _pct(lags, 99),
            max(lags, default=math.nan),
            _pct(rtts, 99),
            side.api_alerts,
            side.db_alerts,
            sum(scores[side.label].not_judged.values()),
            side.wall_s,
        )
        sc = scores[side.label]
        f = report.figures
        p = side.label
        report.params[f"{p}_db_filesystem"] = side.db_filesystem
        for trigger in TRIGGERS:
            f[f"{p}_{trigger}_alerts"] = sc.alerts[trigger]
            f[f"{p}_{trigger}_precision"] = _round(sc.precision(trigger))
            f[f"{p}_{trigger}_recall"] = _round(sc.recall(trigger))
            f[f"{p}_{trigger}_repeats"] = sc.repeats[trigger]
        f[f"{p}_alerts_after_left_leavers"] = sc.leavers_after_left
        f[f"{p}_alerts_after_left_all"] = sum(sc.after_left.values())
        f[f"{p}_send_lag_p99_ms"] = _round(_pct(lags, 99), 1)
        f[f"{p}_send_lag_max_ms"] = _round(max(lags, default=math.nan), 1)
        f[f"{p}_answer_p99_ms"] = _round(_pct(rtts, 99), 1)
        f[f"{p}_batches_not_200"] = bad
        if bad:
            report.notes.append(
                f"{p}: {bad} batches were not answered 200 ({dict(statuses)}): those users'"
                " verdicts may be wrong"
            )
        if max(lags, default=0.0) > 250:
            report.notes.append(
                f"{p}: batches left up to {max(lags):.0f} ms late (p99 {_pct(lags, 99):.0f} ms;"
                " a user sends one at a time, as the tracker does, so a slow answer delays the"
                f" next): sessions with a batch over {LATE_SEND_S * u:g} s late are not judged"
            )
        not_judged = sum(sc.not_judged.values())
        f[f"{p}_sessions_not_judged"] = not_judged
        if not_judged:
            report.notes.append(
                f"{p}: {not_judged} of {len(side.sessions)} sessions not judged: a batch of theirs"
                f" went out more than {LATE_SEND_S * u:g} s late, so the service saw a gap the"
                f" script did not have ({dict(sc.not_judged)}); rerun on a quieter machine"
            )
        if side.db_alerts is not None and side.db_alerts != side.api_alerts:
            report.notes.append(
                f"{p}: the admin API listed {side.api_alerts} alerts, SQLite after the stop"
                f" {side.db_alerts}; the union was scored"
            )
        if side.db_alerts is None:
            report.notes.append(f"{p}: support_alerts could not be read after the stop")
        if side.exit_code not in (0, None):
            report.notes.append(f"{p}: the service exited with {side.exit_code} on SIGTERM")
        if sc.unknown_users:
            report.notes.append(f"{p}: {sc.unknown_users} alerts for users not in the script")
        repeats = {t: n for t, n in sc.repeats.items() if n}
        if repeats:
            report.notes.append(
                f"{p}: repeated alerts inside one deserved stretch (counted as wrong): {repeats}"
            )
        late = {t: n for t, n in sc.after_left_by_trigger.items() if n}
        if late:
            report.notes.append(f"{p}: alerts opened after the user left, by trigger: {late}")
    report.tables.append(run_table)
    report.figures["sessions"] = n_sessions
    report.figures["met_target"] = met_all


def _round(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) else round(value, digits)


if __name__ == "__main__":
    result = run(Options(quick="--quick" in sys.argv, baseline="none"))
    print(result.render())
