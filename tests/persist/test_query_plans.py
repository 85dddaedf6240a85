"""Indexes follow the queries: every query we run on the events table reads it
through an index, and every index on it is used by one of them.

The statements are the ones the real functions execute (captured with
sqlite3's trace callback), explained with EXPLAIN QUERY PLAN on a migrated
database with rows in it and, as in the service, no ANALYZE statistics.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tippen_rt.actors import _recovery
from tippen_rt.events import validate_batch
from tippen_rt.persist import connect, count_events, create_tenant, insert_batch, migrate
from tippen_rt.persist._admin import (
    activity_since,
    erase_user,
    list_journey_events,
    list_user_events,
)
from tippen_rt.persist._retention import delete_old_events

from ..conftest import make_batch, now_ms

#: The query each one stands for, and the function that runs it.
QUERIES: dict[str, Callable[[sqlite3.Connection, int], object]] = {
    "dashboard: last-hour cards": lambda c, t: activity_since(c, t, now_ms() - 3_600_000),
    "user page: events": lambda c, t: list_user_events(c, t, "u1", limit=100),
    "user page: events of a type": lambda c, t: list_user_events(c, t, "u1", types=["error"]),
    "user page: journey": lambda c, t: list_journey_events(c, t, "u1"),
    "recovery: events since the watermark": lambda c, t: _recovery._events_since(c, 0),
    "recovery: one user's older events": lambda c, t: _recovery._older_events_of(
        c, [(t, "u1")], 0, now_ms()
    ),
    "recovery: the last arrival": lambda c, t: _recovery._last_received_ms(c),
    "retention": lambda c, t: delete_old_events(c, t, now_ms() - 86_400_000, 1000),
    "erase a user": lambda c, t: erase_user(c, t, "u1"),
    "count a tenant's events": lambda c, t: count_events(c, t),
}


#: Where a query must use one index in particular (the others: any index).
EXPECTED_INDEX = {
    "dashboard: last-hour cards": "idx_events_received",
    "user page: events": "idx_events_user_time",
    "user page: events of a type": "idx_events_user_time",
    "user page: journey": "idx_events_user_time",
    "recovery: events since the watermark": "idx_events_received",
    "recovery: one user's older events": "idx_events_user_time",
    "erase a user": "idx_events_user_time",
    "retention": "idx_events_received",
}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("plans") / "p.db"
    conn = connect(path)
    migrate(conn)
    tenant, _ = create_tenant(conn, "acme", [])
    ts = now_ms()
    for u in range(20):
        events = [{"type": "click", "element": "b", "timestamp": ts}] * 5
        insert_batch(
            conn, tenant.id, validate_batch(make_batch(tenant, events, userId=f"u{u}"), ts)
        )
    conn.close()
    return path, tenant.id


def plan_lines(conn: sqlite3.Connection, run: Callable[[sqlite3.Connection], object]) -> list[str]:
    """EXPLAIN QUERY PLAN of every statement ``run`` executes that reads
    user_activity_events (in a transaction that is rolled back)."""
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    conn.execute("BEGIN")
    try:
        run(conn)
    finally:
        conn.set_trace_callback(None)
        conn.execute("ROLLBACK")
    lines: list[str] = []
    for sql in statements:
        if "user_activity_events" not in sql or not sql.lstrip().upper().startswith(
            ("SELECT", "DELETE", "UPDATE")
        ):
            continue
        lines += [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
    assert lines, "the function ran no query on user_activity_events"
    return lines


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_each_query_reads_the_events_through_an_index(db: tuple[Path, int], name: str) -> None:
    path, tenant_id = db
    conn = connect(path)
    try:
        lines = plan_lines(conn, lambda c: QUERIES[name](c, tenant_id))
    finally:
        conn.close()
    full_scans = [
        line for line in lines if re.fullmatch(r"SCAN user_activity_events", line.strip())
    ]
    assert not full_scans, f"{name} scans the whole table: {lines}"
    if name in EXPECTED_INDEX:
        assert any(EXPECTED_INDEX[name] in line for line in lines), lines


def test_every_index_on_the_events_is_used(db: tuple[Path, int]) -> None:
    path, tenant_id = db
    conn = connect(path)
    try:
        indexes = {
            str(row[1])
            for row in conn.execute("PRAGMA index_list('user_activity_events')")
            if str(row[1]).startswith("idx_")
        }
        used = {
            index
            for run in QUERIES.values()
            for line in plan_lines(conn, lambda c, run=run: run(c, tenant_id))  # type: ignore[misc]
            for index in indexes
            if index in line
        }
    finally:
        conn.close()
    assert indexes == used, f"no query uses {sorted(indexes - used)}"
