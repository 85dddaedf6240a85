"""Deleting data past its retention period, in small batches.

Plain functions of a connection; the RetentionService runs them through the
EventStore one small transaction at a time, so ingest commits interleave with
them and never wait behind one large delete.
"""

from __future__ import annotations

import sqlite3

#: Retried batches are recognised for this long (the tracker retries within hours).
BATCH_ID_RETENTION_MS = 48 * 3600 * 1000


def delete_old_events(conn: sqlite3.Connection, tenant_id: int, cutoff_ms: int, limit: int) -> int:
    """Delete up to ``limit`` of a tenant's events received before ``cutoff_ms``."""
    cur = conn.execute(
        "DELETE FROM user_activity_events WHERE id IN ("
        # INDEXED BY: left alone, SQLite walks the tenant's whole history through
        # (tenant, user, time) at every sweep, even when nothing is old enough.
        " SELECT id FROM user_activity_events INDEXED BY idx_events_received"
        " WHERE received_at < ? AND tenant_id = ? LIMIT ?)",
        (cutoff_ms, tenant_id, limit),
    )
    return cur.rowcount


def delete_old_summaries(conn: sqlite3.Connection, tenant_id: int, cutoff_ms: int) -> int:
    """Delete summaries of users not seen since ``cutoff_ms`` whose session is closed."""
    cur = conn.execute(
        "DELETE FROM user_activity_summary"
        " WHERE tenant_id = ? AND last_active_at < ? AND session_open = 0",
        (tenant_id, cutoff_ms),
    )
    return cur.rowcount


def delete_old_batch_ids(conn: sqlite3.Connection, cutoff_ms: int, limit: int) -> int:
    """Forget up to ``limit`` batch ids received before ``cutoff_ms``."""
    cur = conn.execute(
        "DELETE FROM ingest_batches WHERE (tenant_id, user_id, batch_id) IN ("
        " SELECT tenant_id, user_id, batch_id FROM ingest_batches"
        " WHERE received_at < ? LIMIT ?)",
        (cutoff_ms, limit),
    )
    return cur.rowcount


def oldest_event_ms(conn: sqlite3.Connection) -> int | None:
    """When the oldest stored event was received (any tenant), or None."""
    row = conn.execute("SELECT min(received_at) FROM user_activity_events").fetchone()
    return None if row[0] is None else int(row[0])
