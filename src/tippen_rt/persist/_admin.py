"""What the admin dashboard reads and writes: plain functions of a connection.

Every query names its tenant: an admin sees only their own tenant's rows, and
that is enforced here, in the SQL, as well as by the HTTP layer.
Rows come back as dicts keyed by column name; the HTTP layer shapes the JSON.
"""

from __future__ import annotations

import math
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ErasedCounts",
    "VideoCall",
    "activity_since",
    "erase_user",
    "export_summaries",
    "get_user_summary",
    "list_journey_events",
    "list_user_events",
    "list_user_summaries",
    "list_video_calls",
    "load_or_create_secret",
    "load_revoked_sessions",
    "pending_invitations",
    "record_invitation",
    "record_video_call",
    "revoke_session",
]

Row = dict[str, Any]

#: The name of the secret that signs admin session cookies.
SESSION_SECRET = "admin_session"

_EVENT_COLUMNS = (
    "id, event_type, route, element, element_text, form_id, duration_ms, error_message,"
    " error_source, error_stack, event_name, event_data, visibility, timestamp,"
    " client_timestamp, received_at"
)
_SUMMARY_COLUMNS = (
    "user_id, user_email, subscription_tier, first_seen_at, last_active_at, current_route,"
    " time_on_current_page, total_events, total_errors, session_started_at, session_events,"
    " session_errors, last_error_at, needs_support, support_reasons, support_triggered_at,"
    " session_open, updated_at, user_name"
)


def _rows(cursor: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def load_or_create_secret(conn: sqlite3.Connection, name: str = SESSION_SECRET) -> str:
    """The secret called ``name``; made (256 random bits) and stored on first use.

    Run it as a write job: two first callers at once both get the one stored.
    """
    conn.execute(
        "INSERT OR IGNORE INTO server_secrets (name, value, created_at)"
        " VALUES (?, ?, CAST(strftime('%s','now') AS INTEGER) * 1000)",
        (name, secrets.token_urlsafe(32)),
    )
    (value,) = conn.execute("SELECT value FROM server_secrets WHERE name = ?", (name,)).fetchone()
    return str(value)


def revoke_session(conn: sqlite3.Connection, signature: str, expires_at: float, now: float) -> None:
    """Refuse the session cookie signed ``signature`` from now on (it was logged out).

    Kept until ``expires_at`` (epoch s), when the cookie is refused anyway;
    older entries are dropped on the way.
    """
    conn.execute("DELETE FROM revoked_sessions WHERE expires_at <= ?", (int(now),))
    conn.execute(
        "INSERT OR REPLACE INTO revoked_sessions (signature, expires_at) VALUES (?, ?)",
        (signature, math.ceil(expires_at)),
    )


def load_revoked_sessions(conn: sqlite3.Connection, now: float) -> dict[str, float]:
    """Signatures of revoked, not yet expired sessions, with their expiry (epoch s)."""
    return {
        str(sig): float(exp)
        for sig, exp in conn.execute(
            "SELECT signature, expires_at FROM revoked_sessions WHERE expires_at > ?", (int(now),)
        )
    }


# ---- users ----------------------------------------------------------------


def list_user_summaries(
    conn: sqlite3.Connection,
    tenant_id: int,
    *,
    tier: str | None = None,
    needs_support: bool | None = None,
    active_since_ms: int | None = None,
    limit: int = 200,
) -> list[Row]:
    """Users of one tenant from ``user_activity_summary``, most recently active first."""
    where = ["tenant_id = ?"]
    params: list[Any] = [tenant_id]
    if tier is not None:
        where.append("subscription_tier = ?")
        params.append(tier)
    if needs_support is not None:
        where.append("needs_support = ?")
        params.append(int(needs_support))
    if active_since_ms is not None:
        where.append("last_active_at >= ?")
        params.append(active_since_ms)
    params.append(limit)
    return _rows(
        conn.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM user_activity_summary"
            f" WHERE {' AND '.join(where)} ORDER BY last_active_at DESC LIMIT ?",
            params,
        )
    )


def export_summaries(
    conn: sqlite3.Connection, tenant_id: int, *, after_user: str | None, limit: int
) -> list[Row]:
    """A page of a tenant's summaries for the CSV export, by user id after ``after_user``."""
    return _rows(
        conn.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM user_activity_summary"
            " WHERE tenant_id = ? AND user_id > ? ORDER BY user_id LIMIT ?",
            (tenant_id, after_user or "", limit),
        )
    )


def get_user_summary(conn: sqlite3.Connection, tenant_id: int, user_id: str) -> Row | None:
    """One user's summary row, or None."""
    rows = _rows(
        conn.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM user_activity_summary"
            " WHERE tenant_id = ? AND user_id = ?",
            (tenant_id, user_id),
        )
    )
    return rows[0] if rows else None


def list_user_events(
    conn: sqlite3.Connection,
    tenant_id: int,
    user_id: str,
    *,
    before_id: int | None = None,
    after_id: int | None = None,
    limit: int = 100,
    types: Sequence[str] = (),
) -> list[Row]:
    """A page of one user's events, newest first (keyset pagination by id).

    With ``after_id``: the events stored after that one, oldest first, so a
    page that shows the newest events can catch up with every one that
    arrived since, page by page, however many they are.
    """
    where = ["tenant_id = ?", "user_id = ?"]
    params: list[Any] = [tenant_id, user_id]
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    if after_id is not None:
        where.append("id > ?")
        params.append(after_id)
    if types:
        where.append(f"event_type IN ({', '.join('?' for _ in types)})")
        params.extend(types)
    params.append(limit)
    order = "ASC" if after_id is not None else "DESC"
    return _rows(
        conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM user_activity_events"
            f" WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ?",
            params,
        )
    )


def activity_since(conn: sqlite3.Connection, tenant_id: int, since_ms: int) -> dict[str, int]:
    """A tenant's events, errors and distinct users received since ``since_ms``
    (the dashboard's last-hour cards), read by arrival time through the
    ``received_at`` index."""
    events, errors, users = conn.execute(
        "SELECT count(*), coalesce(sum(event_type = 'error'), 0), count(DISTINCT user_id)"
        # INDEXED BY: on its own SQLite may pick (tenant, user, time) and count
        # the tenant's whole history to find the last hour.
        " FROM user_activity_events INDEXED BY idx_events_received"
        " WHERE received_at >= ? AND tenant_id = ?",
        (since_ms, tenant_id),
    ).fetchone()
    return {"events": int(events), "errors": int(errors), "users": int(users)}


def list_journey_events(
    conn: sqlite3.Connection, tenant_id: int, user_id: str, *, limit: int = 2000
) -> list[Row]:
    """The latest route, page_time and visibility events of one user, oldest first."""
    rows = _rows(
        conn.execute(
            "SELECT id, event_type, route, duration_ms, visibility, timestamp"
            " FROM user_activity_events"
            " WHERE tenant_id = ? AND user_id = ?"
            " AND event_type IN ('route', 'page_time', 'visibility')"
            " ORDER BY id DESC LIMIT ?",
            (tenant_id, user_id, limit),
        )
    )
    rows.sort(key=lambda r: (r["timestamp"], r["id"]))
    return rows


# ---- video calls ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VideoCall:
    """A video call an admin started with a user, and its invitation to the user's page."""

    id: int
    tenant_id: int
    user_id: str
    started_by: str
    url: str
    started_at: int
    agent_id: int = 0
    #: ``pending``, ``joined``, ``declined``, ``ignored`` or ``replaced``; None:
    #: no invitation (the tenant switched them off).
    invite_status: str | None = None
    invite_expires_at: int | None = None
    invite_delivered_at: int | None = None
    invite_answered_at: int | None = None


_CALL_COLUMNS = (
    "id, tenant_id, user_id, started_by, url, started_at, agent_id, invite_status,"
    " invite_expires_at, invite_delivered_at, invite_answered_at"
)


def record_video_call(
    conn: sqlite3.Connection,
    tenant_id: int,
    user_id: str,
    *,
    started_by: str,
    url: str,
    at_ms: int,
    agent_id: int = 0,
) -> VideoCall:
    """Remember that ``started_by`` started a call with ``user_id``."""
    cur = conn.execute(
        "INSERT INTO video_calls (tenant_id, user_id, started_by, url, started_at, agent_id)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (tenant_id, user_id, started_by, url, at_ms, agent_id),
    )
    return VideoCall(cur.lastrowid or 0, tenant_id, user_id, started_by, url, at_ms, agent_id)


def list_video_calls(
    conn: sqlite3.Connection, tenant_id: int, user_id: str, *, limit: int = 50
) -> list[VideoCall]:
    """Calls started with one user, newest first."""
    return [
        VideoCall(*row)
        for row in conn.execute(
            f"SELECT {_CALL_COLUMNS} FROM video_calls"
            " WHERE tenant_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?",
            (tenant_id, user_id, limit),
        )
    ]


def record_invitation(
    conn: sqlite3.Connection,
    call_id: int,
    status: str,
    *,
    expires_at: int | None = None,
    delivered_at: int | None = None,
    answered_at: int | None = None,
) -> None:
    """The invitation of call ``call_id`` as it is now."""
    conn.execute(
        "UPDATE video_calls SET invite_status = ?,"
        " invite_expires_at = coalesce(?, invite_expires_at),"
        " invite_delivered_at = coalesce(?, invite_delivered_at),"
        " invite_answered_at = coalesce(?, invite_answered_at) WHERE id = ?",
        (status, expires_at, delivered_at, answered_at, call_id),
    )


def pending_invitations(conn: sqlite3.Connection) -> list[VideoCall]:
    """Every call whose invitation still waits for its answer (after a restart)."""
    return [
        VideoCall(*row)
        for row in conn.execute(
            f"SELECT {_CALL_COLUMNS} FROM video_calls WHERE invite_status = 'pending' ORDER BY id"
        )
    ]


# ---- erasure --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErasedCounts:
    """Rows deleted by :func:`erase_user`."""

    events: int
    summaries: int
    video_calls: int
    batches: int
    #: Saved live state in SQLite (the embedded snapshot store; Redis is separate).
    snapshots: int


def erase_user(conn: sqlite3.Connection, tenant_id: int, user_id: str) -> ErasedCounts:
    """Delete every stored row about one user of one tenant."""

    def delete(table: str) -> int:
        cur = conn.execute(
            f"DELETE FROM {table} WHERE tenant_id = ? AND user_id = ?", (tenant_id, user_id)
        )
        return cur.rowcount

    return ErasedCounts(
        events=delete("user_activity_events"),
        summaries=delete("user_activity_summary"),
        video_calls=delete("video_calls"),
        batches=delete("ingest_batches"),
        snapshots=delete("live_snapshots"),
    )
