"""Writing and reading ``user_activity_events`` rows."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..events import Batch

_INSERT_EVENT = (
    "INSERT INTO user_activity_events (tenant_id, user_id, user_email, subscription_tier,"
    " event_type, route, element, element_text, form_id, duration_ms, error_message,"
    " error_source, error_stack, event_name, event_data, visibility, timestamp,"
    " client_timestamp, received_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


@dataclass(frozen=True, slots=True)
class InsertResult:
    """What :func:`insert_batch` did: rows stored, or that the batch was a replay."""

    stored: int
    duplicate: bool = False


def insert_batch(conn: sqlite3.Connection, tenant_id: int, batch: Batch) -> InsertResult:
    """Store every event of ``batch``; a batch id seen before stores nothing again."""
    if batch.batch_id is not None:
        seen = conn.execute(
            "SELECT event_count FROM ingest_batches"
            " WHERE tenant_id = ? AND user_id = ? AND batch_id = ?",
            (tenant_id, batch.user_id, batch.batch_id),
        ).fetchone()
        if seen is not None:
            return InsertResult(stored=int(seen[0]), duplicate=True)
        conn.execute(
            "INSERT INTO ingest_batches (tenant_id, user_id, batch_id, event_count, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (tenant_id, batch.user_id, batch.batch_id, len(batch.events), batch.received_at_ms),
        )
    uid, email, tier, received = batch.user_id, batch.user_email, batch.tier, batch.received_at_ms
    conn.executemany(
        _INSERT_EVENT,
        [
            (
                tenant_id,
                uid,
                email,
                tier,
                e.type.value,
                e.route,
                e.element,
                e.text,
                e.form_id,
                e.duration_ms,
                e.message,
                e.source,
                e.stack,
                e.name,
                e.data,
                e.visibility,
                e.timestamp,
                e.client_timestamp,
                received,
            )
            for e in batch.events
        ],
    )
    return InsertResult(stored=len(batch.events))


def count_events(conn: sqlite3.Connection, tenant_id: int | None = None) -> int:
    """Stored events, for one tenant or all."""
    if tenant_id is None:
        return int(conn.execute("SELECT count(*) FROM user_activity_events").fetchone()[0])
    return int(
        conn.execute(
            "SELECT count(*) FROM user_activity_events WHERE tenant_id = ?", (tenant_id,)
        ).fetchone()[0]
    )
