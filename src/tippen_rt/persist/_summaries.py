"""``user_activity_summary``: one row per user, kept current from live state."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import orjson

_UPSERT = """
INSERT INTO user_activity_summary (
    tenant_id, user_id, user_email, user_name, subscription_tier, first_seen_at, last_active_at,
    current_route, time_on_current_page, total_events, total_errors,
    session_started_at, session_events, session_errors, last_error_at,
    needs_support, support_reasons, support_triggered_at, session_open, updated_at)
VALUES (:tenant_id, :user_id, :email, :name, :tier, :session_started_at, :last_active_at,
    :current_route, :time_on_current_page, :session_events, :session_errors,
    :session_started_at, :session_events, :session_errors, :last_error_at,
    :needs_support, :support_reasons, :support_triggered_at, :session_open, :updated_at)
ON CONFLICT (tenant_id, user_id) DO UPDATE SET
    user_email = coalesce(excluded.user_email, user_email),
    user_name = coalesce(excluded.user_name, user_name),
    subscription_tier = excluded.subscription_tier,
    last_active_at = max(last_active_at, excluded.last_active_at),
    current_route = excluded.current_route,
    time_on_current_page = excluded.time_on_current_page,
    total_events = CASE WHEN session_started_at = excluded.session_started_at
        THEN total_events - session_events + excluded.session_events
        ELSE total_events + excluded.session_events END,
    total_errors = CASE WHEN session_started_at = excluded.session_started_at
        THEN total_errors - session_errors + excluded.session_errors
        ELSE total_errors + excluded.session_errors END,
    session_started_at = excluded.session_started_at,
    session_events = excluded.session_events,
    session_errors = excluded.session_errors,
    last_error_at = coalesce(excluded.last_error_at, last_error_at),
    needs_support = excluded.needs_support,
    support_reasons = excluded.support_reasons,
    support_triggered_at = coalesce(excluded.support_triggered_at, support_triggered_at),
    session_open = excluded.session_open,
    updated_at = excluded.updated_at
"""


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One user's summary as written. Times are epoch milliseconds."""

    tenant_id: int
    user_id: str
    email: str | None
    tier: str
    session_started_at: int
    last_active_at: int
    current_route: str | None
    time_on_current_page: int
    session_events: int
    session_errors: int
    last_error_at: int | None
    needs_support: bool
    support_reasons: tuple[str, ...]
    support_triggered_at: int | None
    session_open: bool
    updated_at: int
    #: The display name (``userName``), or None.
    name: str | None = None


def upsert_summaries(conn: sqlite3.Connection, rows: list[SummaryRow]) -> int:
    """Write ``rows``; a session's counts replace its earlier share of the totals.

    Rows of a tenant that is gone are left out: the service learns of a
    ``tippen-rt tenant remove`` within seconds, and its users may be flushed
    once more meanwhile.
    """
    tenants = {tenant_id for (tenant_id,) in conn.execute("SELECT id FROM tenants")}
    rows = [r for r in rows if r.tenant_id in tenants]
    conn.executemany(
        _UPSERT,
        [
            {
                "tenant_id": r.tenant_id,
                "user_id": r.user_id,
                "email": r.email,
                "name": r.name,
                "tier": r.tier,
                "session_started_at": r.session_started_at,
                "last_active_at": r.last_active_at,
                "current_route": r.current_route,
                "time_on_current_page": r.time_on_current_page,
                "session_events": r.session_events,
                "session_errors": r.session_errors,
                "last_error_at": r.last_error_at,
                "needs_support": int(r.needs_support),
                "support_reasons": orjson.dumps(list(r.support_reasons)).decode(),
                "support_triggered_at": r.support_triggered_at,
                "session_open": int(r.session_open),
                "updated_at": r.updated_at,
            }
            for r in rows
        ],
    )
    return len(rows)
