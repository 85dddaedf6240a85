"""Writing and reading ``user_activity_events`` rows."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import orjson

from ..events import Batch, Event

# One statement inserts a whole batch: the events go in as one JSON array
# (each event an array in Event's field order) that SQLite unpacks itself.
# Python's sqlite3 takes the GIL back after every row of an executemany, and
# each time it may wait for the event loop to let go of it; here the whole
# batch is one step, run without the GIL.
_INSERT_BATCH = (
    "INSERT INTO user_activity_events (tenant_id, user_id, user_email, subscription_tier,"
    " event_type, route, element, element_text, form_id, duration_ms, error_message,"
    " error_source, error_stack, event_name, event_data, visibility, timestamp,"
    " client_timestamp, received_at)"
    " SELECT ?, ?, ?, ?, e.value ->> 0, e.value ->> 3, e.value ->> 4, e.value ->> 5,"
    " e.value ->> 6, e.value ->> 7, e.value ->> 8, e.value ->> 9, e.value ->> 10,"
    " e.value ->> 11, e.value ->> 12, e.value ->> 13, e.value ->> 1, e.value ->> 2, ?"
    " FROM json_each(?) AS e ORDER BY e.key"
)
assert Event._fields[:4] == ("type", "timestamp", "client_timestamp", "route")
assert Event._fields[13] == "visibility"


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
    if batch.events:
        conn.execute(
            _INSERT_BATCH,
            (
                tenant_id,
                batch.user_id,
                batch.user_email,
                batch.tier,
                batch.received_at_ms,
                orjson.dumps(batch.events, default=tuple),
            ),
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
