"""Writing and reading ``user_activity_events`` rows."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from ..events import Batch

_EVENT_COLUMNS = (
    "tenant_id, user_id, user_email, subscription_tier, event_type, route, element,"
    " element_text, form_id, duration_ms, error_message, error_source, error_stack,"
    " event_name, event_data, visibility, timestamp, client_timestamp, received_at"
)
_EVENT_WIDTH = _EVENT_COLUMNS.count(",") + 1
_INSERT_EVENTS = f"INSERT INTO user_activity_events ({_EVENT_COLUMNS}) VALUES "
_INSERT_KEYS = (
    "INSERT INTO ingest_batches (tenant_id, user_id, batch_id, event_count, received_at) VALUES "
)
_SEEN_KEYS = (
    "SELECT k.column1, k.column2, k.column3, b.event_count FROM (VALUES {}) AS k"
    " CROSS JOIN ingest_batches AS b ON b.tenant_id = k.column1"
    " AND b.user_id = k.column2 AND b.batch_id = k.column3"
)
#: Rows per statement at most: SQLite binds at most 32766 parameters (19 x 512 = 9728).
_MAX_ROWS_PER_STATEMENT = 512

BatchKey = tuple[int, str, str]


@dataclass(frozen=True, slots=True)
class InsertResult:
    """What :func:`insert_batch` did: rows stored, or that the batch was a replay."""

    stored: int
    duplicate: bool = False


def insert_batch(conn: sqlite3.Connection, tenant_id: int, batch: Batch) -> InsertResult:
    """Store every event of ``batch``; a batch id seen before stores nothing again."""
    return insert_batches(conn, [(tenant_id, batch)])[0]


def insert_batches(
    conn: sqlite3.Connection, items: Sequence[tuple[int, Batch]]
) -> list[InsertResult]:
    """Store many ``(tenant_id, batch)`` at once, in a few multi-row statements.

    The same as :func:`insert_batch` on each item in order (a batch id seen
    before, or earlier in ``items``, stores nothing again), but with a handful
    of SQLite calls for a whole commit group instead of several per batch:
    the sqlite3 module hands the GIL back and forth around every statement
    step, and each handover can leave the event loop waiting.
    """
    results: list[InsertResult | None] = [None] * len(items)
    keys = [
        (tid, batch.user_id, batch.batch_id) for tid, batch in items if batch.batch_id is not None
    ]
    seen = _seen_keys(conn, keys) if keys else {}
    fresh: list[tuple[int, Batch]] = []
    new_keys: list[object] = []
    for i, (tid, batch) in enumerate(items):
        if batch.batch_id is not None:
            key = (tid, batch.user_id, batch.batch_id)
            count = seen.get(key)
            if count is not None:
                results[i] = InsertResult(stored=count, duplicate=True)
                continue
            seen[key] = len(batch.events)
            new_keys += (*key, len(batch.events), batch.received_at_ms)
        fresh.append((tid, batch))
        results[i] = InsertResult(stored=len(batch.events))
    _insert_rows(conn, _INSERT_KEYS, 5, new_keys)
    _insert_rows(conn, _INSERT_EVENTS, _EVENT_WIDTH, _event_params(fresh))
    return results  # type: ignore[return-value]


def _seen_keys(conn: sqlite3.Connection, keys: list[BatchKey]) -> dict[BatchKey, int]:
    """Event counts of the batch keys already in ``ingest_batches``."""
    seen: dict[BatchKey, int] = {}
    start = 0
    for n in _chunk_sizes(len(keys)):
        params = [part for key in keys[start : start + n] for part in key]
        start += n
        for tid, uid, bid, count in conn.execute(_seen_keys_sql(n), params):
            seen[(tid, uid, bid)] = count
    return seen


def _event_params(items: list[tuple[int, Batch]]) -> list[object]:
    params: list[object] = []
    extend = params.extend
    for tid, batch in items:
        uid, email, tier, received = (
            batch.user_id,
            batch.user_email,
            batch.tier,
            batch.received_at_ms,
        )
        for e in batch.events:
            extend(
                (
                    tid,
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
            )
    return params


def _insert_rows(conn: sqlite3.Connection, head: str, width: int, params: list[object]) -> None:
    start = 0
    for n in _chunk_sizes(len(params) // width):
        end = start + n * width
        conn.execute(_values_sql(head, width, n), params[start:end])
        start = end


def _chunk_sizes(rows: int) -> list[int]:
    """Split ``rows`` into full chunks and powers of two.

    Few distinct statement shapes (each is prepared once and cached) and
    few statements per call: 1,250 rows are 512 + 512 + 128 + 64 + 32 + 2.
    """
    full, rest = divmod(rows, _MAX_ROWS_PER_STATEMENT)
    sizes = [_MAX_ROWS_PER_STATEMENT] * full
    bit = _MAX_ROWS_PER_STATEMENT >> 1
    while rest:
        if rest & bit:
            sizes.append(bit)
            rest -= bit
        bit >>= 1
    return sizes


@functools.cache
def _values_sql(head: str, width: int, n: int) -> str:
    row = "(" + ",".join("?" * width) + ")"
    return head + ",".join([row] * n)


@functools.cache
def _seen_keys_sql(n: int) -> str:
    return _SEEN_KEYS.format(",".join(["(?,?,?)"] * n))


def count_events(conn: sqlite3.Connection, tenant_id: int | None = None) -> int:
    """Stored events, for one tenant or all."""
    if tenant_id is None:
        return int(conn.execute("SELECT count(*) FROM user_activity_events").fetchone()[0])
    return int(
        conn.execute(
            "SELECT count(*) FROM user_activity_events WHERE tenant_id = ?", (tenant_id,)
        ).fetchone()[0]
    )
