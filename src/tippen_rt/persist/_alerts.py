"""``support_alerts`` and ``alert_rate_limits``: plain functions of a connection.

An alert is one trigger that fired for one user.  Its lifecycle: it is
*open* when recorded, *acknowledged* once an admin has seen it, *resolved*
when the user recovered (or left).  Independently, its ``delivery_status``
says what happened on Slack:

``pending``     to be posted (queued, in flight, or waiting to retry)
``sent``        posted; ``slack_channel``/``slack_ts`` name the message in bot mode
``suppressed``  not posted: the user's rate limit was in force
``failed``      Slack refused it, or kept failing until the retry window closed
``disabled``    the tenant has no Slack target: dashboard and log only

``alert_rate_limits`` keeps, per user, when the last Slack message went out
(the rate limit survives restarts) and which alert it was.

Times are epoch milliseconds.  Writers run these inside the EventStore's
transaction; they never commit themselves.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

PENDING: Final = "pending"
SENT: Final = "sent"
SUPPRESSED: Final = "suppressed"
FAILED: Final = "failed"
DISABLED: Final = "disabled"

DeliveryStatus = Literal["pending", "sent", "suppressed", "failed", "disabled"]
AlertStatus = Literal["open", "acknowledged", "resolved"]

#: ``resolution`` values: the user recovered; the user left (heartbeats
#: stopped, or the session ended) before anyone helped; a newer alert for the
#: same trigger replaced one left open (e.g. across a restart without snapshot);
#: the tenant turned the trigger off, or it no longer covers the user's tier.
RECOVERED: Final = "recovered"
USER_LEFT: Final = "user_left"
SUPERSEDED: Final = "superseded"
SWITCHED_OFF: Final = "switched_off"

#: How a call's invitation stands on the alerts of its user: ``invited`` (on
#: its way to the user's page), ``shown`` (the page received it), ``joined``,
#: ``declined``, ``ignored`` (no answer in time), ``replaced`` (a newer call),
#: ``not_invited`` (the tenant switched invitations off).
CALL_STATUSES: Final = (
    "invited",
    "shown",
    "joined",
    "declined",
    "ignored",
    "replaced",
    "not_invited",
)

_COLUMNS = (
    "id, tenant_id, user_id, trigger, reason, user_email, tier, route, time_on_page_ms,"
    " total_events, total_errors, last_active_at, opened_at, resolved_at, resolution,"
    " acknowledged_at, acknowledged_by, delivery_status, attempts, last_error,"
    " slack_channel, slack_ts, suppressed_count, revision, slack_needs_update,"
    " created_at, updated_at, user_name, pending_since, claimed_by, claimed_at,"
    " first_claimed_by, first_claimed_at, first_call_at, first_call_by, call_id, call_by,"
    " call_status, call_updated_at"
)


@dataclass(frozen=True, slots=True)
class Alert:
    """One row of ``support_alerts``. Times are epoch milliseconds."""

    id: int
    tenant_id: int
    user_id: str
    #: A :class:`tippen_rt.actors.Trigger` value, e.g. ``"stuck_on_page"``.
    trigger: str
    #: Why, in words (from the rule).
    reason: str
    # What the user was doing when the trigger fired:
    user_email: str | None
    tier: str
    route: str | None
    time_on_page_ms: int
    total_events: int
    total_errors: int
    last_active_at: int
    # Lifecycle
    opened_at: int
    resolved_at: int | None
    #: ``"recovered"``, ``"user_left"``, ``"superseded"`` or ``"switched_off"`` once resolved.
    resolution: str | None
    acknowledged_at: int | None
    acknowledged_by: str | None
    # Slack
    delivery_status: DeliveryStatus
    #: Slack calls made for this alert (posts and updates).
    attempts: int
    last_error: str | None
    slack_channel: str | None
    slack_ts: str | None
    #: Triggers of this user not posted because of the rate limit while this
    #: alert's message was the latest one.
    suppressed_count: int
    #: Bumped by every change the Slack message shows (resolve, acknowledge).
    revision: int
    #: The posted Slack message does not yet show the latest revision.
    slack_needs_update: bool
    created_at: int
    updated_at: int
    #: The user's display name when the trigger fired (``userName``), or None.
    user_name: str | None = None
    #: Since when it waits to be posted, if not since ``created_at``: a trigger
    #: held back by the rate limit, posted after the message that held it back
    #: failed (its retry window starts then).
    pending_since: int | None = None
    #: Who is helping the user now ("I'm on it"), since when; None when nobody
    #: (released).  An alert opened while its user was claimed is claimed too.
    claimed_by: str | None = None
    claimed_at: int | None = None
    #: The first claim, kept when it is released or taken over: the time to
    #: first claim is ``first_claimed_at - opened_at``.
    first_claimed_by: str | None = None
    first_claimed_at: int | None = None
    #: The first video call started while it was open (time to first call).
    first_call_at: int | None = None
    first_call_by: str | None = None
    #: The latest such call (``video_calls.id``), who started it, and how its
    #: invitation to the user's page stands: :data:`CALL_STATUSES`.
    call_id: int | None = None
    call_by: str | None = None
    call_status: str | None = None
    call_updated_at: int | None = None

    @property
    def waiting_since(self) -> int:
        """When its Slack delivery began: the start of its retry window."""
        return self.created_at if self.pending_since is None else self.pending_since

    @property
    def status(self) -> AlertStatus:
        """``open``, ``acknowledged`` or ``resolved``."""
        if self.resolved_at is not None:
            return "resolved"
        if self.acknowledged_at is not None:
            return "acknowledged"
        return "open"

    @property
    def response(self) -> tuple[int, str] | None:
        """(ms from opening to the first response, who responded): the first of
        the first claim, the acknowledgement and the first video call; None if
        nobody has responded."""
        done = [
            (at, by or "an admin")
            for at, by in (
                (self.first_claimed_at, self.first_claimed_by),
                (self.acknowledged_at, self.acknowledged_by),
                (self.first_call_at, self.first_call_by),
            )
            if at is not None
        ]
        if not done:
            return None
        at, by = min(done, key=lambda d: d[0])
        return max(0, at - self.opened_at), by

    def _since_opened(self, at: int | None) -> int | None:
        return None if at is None else max(0, at - self.opened_at)

    @property
    def suppressed(self) -> bool:
        """True if the rate limit kept this alert off Slack."""
        return self.delivery_status == SUPPRESSED

    def to_mapping(self) -> dict[str, Any]:
        """A JSON-ready dict of every field plus ``status``."""
        data = asdict(self)
        data["status"] = self.status
        # Response times (docs/support.md): each from when it opened.
        response = self.response
        data["time_to_claim_ms"] = self._since_opened(self.first_claimed_at)
        data["time_to_acknowledge_ms"] = self._since_opened(self.acknowledged_at)
        data["time_to_call_ms"] = self._since_opened(self.first_call_at)
        data["time_to_response_ms"] = None if response is None else response[0]
        data["responded_by"] = None if response is None else response[1]
        return data


def _row_to_alert(row: tuple[Any, ...]) -> Alert:
    values = list(row)
    values[24] = bool(values[24])  # slack_needs_update
    return Alert(*values)


@dataclass(frozen=True, slots=True)
class NewAlert:
    """What the notifier knows about a trigger that just fired."""

    tenant_id: int
    user_id: str
    trigger: str
    reason: str
    user_email: str | None
    tier: str
    route: str | None
    time_on_page_ms: int
    total_events: int
    total_errors: int
    last_active_at: int
    opened_at: int
    user_name: str | None = None
    #: The user's claim when the trigger fired (they are already being helped).
    claimed_by: str | None = None
    claimed_at: int | None = None


@dataclass(frozen=True, slots=True)
class Opened:
    """The result of :func:`open_alert`."""

    alert: Alert
    #: The alert whose ``suppressed_count`` went up (when this one was suppressed).
    covering: Alert | None
    #: Earlier open alerts of the same user and trigger, now resolved as superseded.
    superseded: tuple[Alert, ...]


def open_alert(
    conn: sqlite3.Connection,
    new: NewAlert,
    *,
    slack_enabled: bool,
    rate_limit_ms: int,
    last_sent_hint: int | None = None,
    now: int,
) -> Opened:
    """Record a trigger that fired, deciding its delivery under the user's rate limit.

    With Slack enabled the alert is ``pending`` (and takes the user's rate-limit
    slot) unless a message went out less than ``rate_limit_ms`` before
    ``new.opened_at``; then it is ``suppressed`` and the latest delivered alert
    of the user counts it.  Without Slack it is ``disabled``.
    ``last_sent_hint`` is a last-sent time known elsewhere (the actor's state).
    """
    superseded = _supersede(conn, new, now)
    status: DeliveryStatus = DISABLED
    covering_id: int | None = None
    if slack_enabled:
        last_sent = last_alert_sent_at(conn, new.tenant_id, new.user_id)
        if last_sent_hint is not None and (last_sent is None or last_sent_hint > last_sent):
            last_sent = last_sent_hint
        if last_sent is not None and new.opened_at < last_sent + rate_limit_ms:
            status = SUPPRESSED
            covering_id = _latest_delivered_id(conn, new.tenant_id, new.user_id)
        else:
            status = PENDING
    cur = conn.execute(
        "INSERT INTO support_alerts (tenant_id, user_id, trigger, reason, user_email, tier,"
        " route, time_on_page_ms, total_events, total_errors, last_active_at, opened_at,"
        " delivery_status, created_at, updated_at, user_name, claimed_by, claimed_at,"
        " first_claimed_by, first_claimed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new.tenant_id,
            new.user_id,
            new.trigger,
            new.reason,
            new.user_email,
            new.tier,
            new.route,
            new.time_on_page_ms,
            new.total_events,
            new.total_errors,
            new.last_active_at,
            new.opened_at,
            status,
            now,
            now,
            new.user_name,
            new.claimed_by,
            new.claimed_at,
            new.claimed_by,
            # already being helped when it opened: claimed at once
            None if new.claimed_by is None else new.opened_at,
        ),
    )
    alert_id = cur.lastrowid
    assert alert_id is not None
    if status == PENDING:
        _take_slot(conn, new.tenant_id, new.user_id, new.opened_at, alert_id)
    covering = None
    if covering_id is not None:
        conn.execute(
            "UPDATE support_alerts SET suppressed_count = suppressed_count + 1, updated_at = ?"
            " WHERE id = ?",
            (now, covering_id),
        )
        covering = alert_by_id(conn, covering_id)
    alert = alert_by_id(conn, alert_id)
    assert alert is not None
    return Opened(alert, covering, superseded)


def _take_slot(
    conn: sqlite3.Connection, tenant_id: int, user_id: str, at: int, alert_id: int
) -> None:
    """The user's rate-limit slot: their last Slack message went out at ``at``."""
    conn.execute(
        "INSERT INTO alert_rate_limits (tenant_id, user_id, last_sent_at, alert_id)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, user_id) DO UPDATE SET"
        " last_sent_at = excluded.last_sent_at, alert_id = excluded.alert_id",
        (tenant_id, user_id, at, alert_id),
    )


def _supersede(conn: sqlite3.Connection, new: NewAlert, now: int) -> tuple[Alert, ...]:
    # A trigger fires once per episode, so an alert for the same user and
    # trigger that is still open belongs to an episode whose end we missed.
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM support_alerts WHERE tenant_id = ? AND user_id = ? AND trigger = ?"
            " AND resolved_at IS NULL",
            (new.tenant_id, new.user_id, new.trigger),
        )
    ]
    return tuple(_resolve_ids(conn, ids, SUPERSEDED, new.opened_at, now))


def _latest_delivered_id(conn: sqlite3.Connection, tenant_id: int, user_id: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM support_alerts WHERE tenant_id = ? AND user_id = ?"
        " AND delivery_status IN ('pending', 'sent') ORDER BY id DESC LIMIT 1",
        (tenant_id, user_id),
    ).fetchone()
    return None if row is None else int(row[0])


def last_alert_sent_at(conn: sqlite3.Connection, tenant_id: int, user_id: str) -> int | None:
    """When the user's last Slack alert went out (its rate-limit slot), or None."""
    row = conn.execute(
        "SELECT last_sent_at FROM alert_rate_limits WHERE tenant_id = ? AND user_id = ?",
        (tenant_id, user_id),
    ).fetchone()
    return None if row is None else int(row[0])


def _resolve_ids(
    conn: sqlite3.Connection, ids: list[int], resolution: str, at: int, now: int
) -> list[Alert]:
    out: list[Alert] = []
    for alert_id in ids:
        conn.execute(
            "UPDATE support_alerts SET resolved_at = ?, resolution = ?, revision = revision + 1,"
            " slack_needs_update = (slack_ts IS NOT NULL OR delivery_status = 'pending'),"
            " updated_at = ? WHERE id = ? AND resolved_at IS NULL",
            (at, resolution, now, alert_id),
        )
        alert = alert_by_id(conn, alert_id)
        if alert is not None:
            out.append(alert)
    return out


def resolve_alerts(
    conn: sqlite3.Connection,
    tenant_id: int,
    user_id: str,
    trigger: str,
    *,
    at: int,
    now: int,
    resolution: str = RECOVERED,
) -> list[Alert]:
    """Resolve the user's unresolved alerts for ``trigger`` (recovered, ``USER_LEFT``
    or ``SWITCHED_OFF``)."""
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM support_alerts WHERE tenant_id = ? AND user_id = ? AND trigger = ?"
            " AND resolved_at IS NULL ORDER BY id",
            (tenant_id, user_id, trigger),
        )
    ]
    return _resolve_ids(conn, ids, resolution, at, now)


def acknowledge_alert(
    conn: sqlite3.Connection, tenant_id: int, alert_id: int, by: str, *, now: int
) -> list[Alert] | None:
    """An admin has seen alert ``alert_id`` and with it the user's support need.

    Marks it, and every other unresolved, unacknowledged alert of the same user,
    acknowledged by ``by``; an alert acknowledged before keeps its first
    acknowledgement.  Returns the alerts, ``alert_id``'s first, or None if the
    tenant has no such alert.
    """
    target = get_alert(conn, tenant_id, alert_id)
    if target is None:
        return None
    ids = [alert_id] + [
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM support_alerts WHERE tenant_id = ? AND user_id = ? AND id != ?"
            " AND resolved_at IS NULL AND acknowledged_at IS NULL ORDER BY id",
            (tenant_id, target.user_id, alert_id),
        )
    ]
    out: list[Alert] = []
    for aid in ids:
        conn.execute(
            "UPDATE support_alerts SET acknowledged_at = ?, acknowledged_by = ?,"
            " revision = revision + 1,"
            " slack_needs_update = (slack_ts IS NOT NULL OR delivery_status = 'pending'),"
            " updated_at = ? WHERE id = ? AND acknowledged_at IS NULL",
            (now, by, now, aid),
        )
        alert = alert_by_id(conn, aid)
        if alert is not None:
            out.append(alert)
    return out


def claim_alerts(
    conn: sqlite3.Connection, tenant_id: int, user_id: str, by: str | None, *, now: int
) -> list[Alert]:
    """``by`` is helping the user now (None: nobody; the claim was released).

    Marks every unresolved alert of the user; the first claim of each alert is
    kept for its response time.  Returns the alerts that changed.
    """
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM support_alerts WHERE tenant_id = ? AND user_id = ?"
            " AND resolved_at IS NULL AND claimed_by IS NOT ? ORDER BY id",
            (tenant_id, user_id, by),
        )
    ]
    out: list[Alert] = []
    for alert_id in ids:
        conn.execute(
            "UPDATE support_alerts SET claimed_by = ?, claimed_at = ?,"
            " first_claimed_by = coalesce(first_claimed_by, ?),"
            " first_claimed_at = coalesce(first_claimed_at, ?), revision = revision + 1,"
            " slack_needs_update = (slack_ts IS NOT NULL OR delivery_status = 'pending'),"
            " updated_at = ? WHERE id = ?",
            (by, None if by is None else now, by, None if by is None else now, now, alert_id),
        )
        alert = alert_by_id(conn, alert_id)
        if alert is not None:
            out.append(alert)
    return out


def record_call(
    conn: sqlite3.Connection,
    tenant_id: int,
    user_id: str,
    call_id: int,
    by: str,
    status: str,
    *,
    now: int,
) -> list[Alert]:
    """Call ``call_id`` by ``by`` now stands at ``status`` (:data:`CALL_STATUSES`).

    A new call marks the user's unresolved alerts (keeping each one's first
    call for its response time); a change of its invitation marks the alerts
    it marked, resolved since or not.  Returns the alerts that changed.
    """
    if status not in CALL_STATUSES:
        raise ValueError(f"unknown call status {status!r}")
    started = status in ("invited", "not_invited")
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM support_alerts WHERE tenant_id = ? AND user_id = ?"
            " AND (call_id = ? OR (? AND resolved_at IS NULL)) ORDER BY id",
            (tenant_id, user_id, call_id, started),
        )
    ]
    out: list[Alert] = []
    for alert_id in ids:
        conn.execute(
            "UPDATE support_alerts SET first_call_at = coalesce(first_call_at, ?),"
            " first_call_by = coalesce(first_call_by, ?), call_id = ?, call_by = ?,"
            " call_status = ?, call_updated_at = ?, revision = revision + 1,"
            " slack_needs_update = (slack_ts IS NOT NULL OR delivery_status = 'pending'),"
            " updated_at = ? WHERE id = ?",
            (now, by, call_id, by, status, now, now, alert_id),
        )
        alert = alert_by_id(conn, alert_id)
        if alert is not None:
            out.append(alert)
    return out


def alert_by_id(conn: sqlite3.Connection, alert_id: int) -> Alert | None:
    """Alert ``alert_id`` of any tenant (for the notifier; admins use :func:`get_alert`)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM support_alerts WHERE id = ?", (alert_id,)
    ).fetchone()
    return None if row is None else _row_to_alert(row)


def get_alert(conn: sqlite3.Connection, tenant_id: int, alert_id: int) -> Alert | None:
    """Alert ``alert_id`` if it belongs to ``tenant_id``, else None."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM support_alerts WHERE id = ? AND tenant_id = ?",
        (alert_id, tenant_id),
    ).fetchone()
    return None if row is None else _row_to_alert(row)


_STATUS_WHERE: dict[str, str] = {
    "open": " AND resolved_at IS NULL AND acknowledged_at IS NULL",
    "acknowledged": " AND resolved_at IS NULL AND acknowledged_at IS NOT NULL",
    "resolved": " AND resolved_at IS NOT NULL",
}


def list_alerts(
    conn: sqlite3.Connection,
    tenant_id: int,
    *,
    status: AlertStatus | None = None,
    user_id: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Alert]:
    """A tenant's alerts, newest first; page on with ``before_id`` = the last id seen.

    ``status``: ``open`` (neither acknowledged nor resolved), ``acknowledged``
    (acknowledged, not resolved), ``resolved``, or None for all.
    """
    if status is not None and status not in _STATUS_WHERE:
        raise ValueError(f"unknown alert status {status!r}")
    sql = f"SELECT {_COLUMNS} FROM support_alerts WHERE tenant_id = ?"
    params: list[Any] = [tenant_id]
    if status is not None:
        sql += _STATUS_WHERE[status]
    if user_id is not None:
        sql += " AND user_id = ?"
        params.append(user_id)
    if before_id is not None:
        sql += " AND id < ?"
        params.append(before_id)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(max(0, limit))
    return [_row_to_alert(r) for r in conn.execute(sql, params)]


def alerts_opened_since(conn: sqlite3.Connection, tenant_id: int, since_ms: int) -> list[Alert]:
    """A tenant's alerts opened at or after ``since_ms`` (for response times)."""
    return [
        _row_to_alert(r)
        for r in conn.execute(
            f"SELECT {_COLUMNS} FROM support_alerts WHERE tenant_id = ? AND opened_at >= ?",
            (tenant_id, since_ms),
        )
    ]


def export_alerts(
    conn: sqlite3.Connection,
    tenant_id: int,
    *,
    after_id: int,
    limit: int,
    opened_from: int | None = None,
    opened_to: int | None = None,
) -> list[Alert]:
    """A page of a tenant's alerts for the CSV export: ids after ``after_id``,
    oldest first, opened within [``opened_from``, ``opened_to``) if given."""
    sql = f"SELECT {_COLUMNS} FROM support_alerts WHERE tenant_id = ? AND id > ?"
    params: list[Any] = [tenant_id, after_id]
    if opened_from is not None:
        sql += " AND opened_at >= ?"
        params.append(opened_from)
    if opened_to is not None:
        sql += " AND opened_at < ?"
        params.append(opened_to)
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    return [_row_to_alert(r) for r in conn.execute(sql, params)]


def count_alerts(conn: sqlite3.Connection, tenant_id: int) -> dict[AlertStatus, int]:
    """How many of a tenant's alerts are open and acknowledged (unresolved ones)."""
    counts: dict[AlertStatus, int] = {"open": 0, "acknowledged": 0}
    for acked, n in conn.execute(
        "SELECT acknowledged_at IS NOT NULL, count(*) FROM support_alerts"
        " WHERE tenant_id = ? AND resolved_at IS NULL GROUP BY 1",
        (tenant_id,),
    ):
        counts["acknowledged" if acked else "open"] = int(n)
    return counts


def delete_user_alerts(conn: sqlite3.Connection, tenant_id: int, user_id: str) -> int:
    """Erase a user's alerts and rate-limit record; return how many alerts went."""
    cur = conn.execute(
        "DELETE FROM support_alerts WHERE tenant_id = ? AND user_id = ?", (tenant_id, user_id)
    )
    conn.execute(
        "DELETE FROM alert_rate_limits WHERE tenant_id = ? AND user_id = ?", (tenant_id, user_id)
    )
    return cur.rowcount


# ---- delivery bookkeeping (the notifier) ----------------------------------


def undelivered_alert_ids(conn: sqlite3.Connection, *, limit: int) -> list[int]:
    """Alerts that still need Slack: posts pending, or updates the message lacks."""
    return [
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM support_alerts"
            " WHERE delivery_status = 'pending' OR slack_needs_update = 1"
            " ORDER BY id LIMIT ?",
            (limit,),
        )
    ]


def mark_sent(
    conn: sqlite3.Connection,
    alert_id: int,
    *,
    channel: str | None,
    ts: str | None,
    revision: int,
    now: int,
) -> Alert | None:
    """The message for ``revision`` of the alert was posted.

    It still needs an update if the alert changed since (and can be updated:
    only bot-mode messages have a ``ts``).
    """
    conn.execute(
        "UPDATE support_alerts SET delivery_status = 'sent', slack_channel = ?, slack_ts = ?,"
        " attempts = attempts + 1, last_error = NULL,"
        " slack_needs_update = (? IS NOT NULL AND revision != ?), updated_at = ?"
        " WHERE id = ? AND delivery_status = 'pending'",
        (channel, ts, ts, revision, now, alert_id),
    )
    return alert_by_id(conn, alert_id)


def mark_updated(
    conn: sqlite3.Connection, alert_id: int, *, revision: int, now: int
) -> Alert | None:
    """The Slack message now shows ``revision`` of the alert."""
    conn.execute(
        "UPDATE support_alerts SET attempts = attempts + 1, last_error = NULL,"
        " slack_needs_update = (revision != ?), updated_at = ? WHERE id = ?",
        (revision, now, alert_id),
    )
    return alert_by_id(conn, alert_id)


def record_attempt_error(
    conn: sqlite3.Connection, alert_id: int, error: str, *, now: int
) -> Alert | None:
    """A Slack call for the alert failed; it will be tried again."""
    conn.execute(
        "UPDATE support_alerts SET attempts = attempts + 1, last_error = ?, updated_at = ?"
        " WHERE id = ?",
        (error, now, alert_id),
    )
    return alert_by_id(conn, alert_id)


def mark_failed(
    conn: sqlite3.Connection, alert_id: int, error: str, *, counted: bool, now: int
) -> Alert | None:
    """Give up posting the alert; the user's rate-limit slot is freed if it held it.

    ``counted``: the failed call is one more attempt.
    """
    conn.execute(
        "UPDATE support_alerts SET delivery_status = 'failed', last_error = ?,"
        " attempts = attempts + ?, slack_needs_update = 0, updated_at = ?"
        " WHERE id = ? AND delivery_status = 'pending'",
        (error, int(counted), now, alert_id),
    )
    conn.execute("DELETE FROM alert_rate_limits WHERE alert_id = ?", (alert_id,))
    return alert_by_id(conn, alert_id)


def release_held_back(conn: sqlite3.Connection, failed: Alert, *, now: int) -> Alert | None:
    """After ``failed`` was given up: the next trigger of its user that the rate
    limit held back while ``failed`` was the latest message (and that still
    needs help) goes out instead.

    It becomes ``pending`` with the user's rate-limit slot from ``now``, its
    retry window starting now; it counts the triggers held back after it.
    Returns it, or None when there is none, or when a later message of the
    user went out meanwhile.  Triggers the tenant's Slack budget held back
    (counted in a digest) are not among them.
    """
    held = [
        (int(r[0]), r[1])
        for r in conn.execute(
            "SELECT id, delivery_status FROM support_alerts WHERE tenant_id = ? AND user_id = ?"
            " AND id > ? AND (delivery_status IN ('pending', 'sent') OR (delivery_status ="
            " 'suppressed' AND last_error IS NULL AND resolved_at IS NULL)) ORDER BY id",
            (failed.tenant_id, failed.user_id, failed.id),
        )
    ]
    if not held or any(status != SUPPRESSED for _, status in held):
        return None
    next_id = held[0][0]
    conn.execute(
        "UPDATE support_alerts SET delivery_status = 'pending', pending_since = ?,"
        " suppressed_count = ?, revision = revision + 1, updated_at = ? WHERE id = ?",
        (now, len(held) - 1, now, next_id),
    )
    _take_slot(conn, failed.tenant_id, failed.user_id, now, next_id)
    return alert_by_id(conn, next_id)


def give_up_update(
    conn: sqlite3.Connection, alert_id: int, error: str, *, counted: bool, now: int
) -> Alert | None:
    """Stop trying to update a posted message (it stays ``sent``)."""
    conn.execute(
        "UPDATE support_alerts SET slack_needs_update = 0, last_error = ?,"
        " attempts = attempts + ?, updated_at = ? WHERE id = ?",
        (error, int(counted), now, alert_id),
    )
    return alert_by_id(conn, alert_id)


def mark_held_back(
    conn: sqlite3.Connection, alert_id: int, reason: str, *, now: int
) -> Alert | None:
    """A pending alert not posted on its own (the tenant's Slack limit): ``suppressed``,
    with ``reason`` as its note; a digest message counts it instead."""
    conn.execute(
        "UPDATE support_alerts SET delivery_status = 'suppressed', last_error = ?,"
        " slack_needs_update = 0, updated_at = ? WHERE id = ? AND delivery_status = 'pending'",
        (reason, now, alert_id),
    )
    conn.execute("DELETE FROM alert_rate_limits WHERE alert_id = ?", (alert_id,))
    return alert_by_id(conn, alert_id)


def mark_disabled(conn: sqlite3.Connection, alert_id: int, *, now: int) -> Alert | None:
    """A pending alert whose tenant no longer has Slack: dashboard and log only."""
    conn.execute(
        "UPDATE support_alerts SET delivery_status = 'disabled', slack_needs_update = 0,"
        " updated_at = ? WHERE id = ? AND delivery_status = 'pending'",
        (now, alert_id),
    )
    conn.execute("DELETE FROM alert_rate_limits WHERE alert_id = ?", (alert_id,))
    return alert_by_id(conn, alert_id)
