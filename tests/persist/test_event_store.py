"""The EventStore: group commit, isolation of failing jobs, clean close."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio
import trio.testing

from tippen_rt.events import Batch, validate_batch
from tippen_rt.persist import (
    MIGRATIONS,
    EventStore,
    InsertResult,
    StoreBusy,
    StoreClosed,
    connect,
    count_events,
    create_tenant,
    insert_batch,
    insert_batches,
    migrate,
)
from tippen_rt.tenants import Tenant

from ..conftest import make_batch, now_ms


def _batch(tenant: Tenant, n: int = 2, **extra: object):  # type: ignore[no-untyped-def]
    ts = now_ms()
    events = [{"type": "click", "element": f"b{i}", "timestamp": ts} for i in range(n)]
    return validate_batch(make_batch(tenant, events, **extra), ts)


async def test_concurrent_writes_share_commits(store: EventStore, tenant: Tenant) -> None:
    before = store.stats().commits
    results: list[int] = []

    async def one() -> None:
        result = await store.write(lambda c: insert_batch(c, tenant.id, _batch(tenant)))
        results.append(result.stored)

    async with trio.open_nursery() as nursery:
        for _ in range(200):
            nursery.start_soon(one)
    assert results == [2] * 200
    assert await store.read(count_events) == 400
    commits = store.stats().commits - before
    # 200 writers queued at once: group commit needs far fewer transactions.
    assert commits < 50, commits


async def test_a_failing_job_does_not_sink_its_group(store: EventStore, tenant: Tenant) -> None:
    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO user_activity_events (tenant_id) VALUES (?)", (tenant.id,))

    outcomes: dict[str, object] = {}

    async def good() -> None:
        outcomes["good"] = await store.write(lambda c: insert_batch(c, tenant.id, _batch(tenant)))

    async def failing() -> None:
        with pytest.raises(sqlite3.IntegrityError):
            await store.write(bad)
        outcomes["bad"] = "raised"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(good)
        nursery.start_soon(failing)
        nursery.start_soon(good)
    assert outcomes["bad"] == "raised"
    assert await store.read(count_events) == 4


async def test_replayed_batch_id_is_stored_once(store: EventStore, tenant: Tenant) -> None:
    batch = _batch(tenant, 3, batchId="b-1")
    first = await store.write(lambda c: insert_batch(c, tenant.id, batch))
    again = await store.write(lambda c: insert_batch(c, tenant.id, batch))
    assert (first.stored, first.duplicate) == (3, False)
    assert (again.stored, again.duplicate) == (3, True)
    assert await store.read(count_events) == 3


async def _held(store: EventStore, nursery: trio.Nursery) -> threading.Event:
    """Occupy the writer thread until the returned event is set, so jobs queue up."""
    release = threading.Event()
    nursery.start_soon(store.write, lambda c: release.wait(10))
    await trio.testing.wait_all_tasks_blocked()
    return release


async def test_queued_batches_share_one_combined_call(store: EventStore, tenant: Tenant) -> None:
    calls: list[int] = []

    def counted(conn: sqlite3.Connection, items: list[tuple[int, Batch]]) -> list[InsertResult]:
        calls.append(len(items))
        return insert_batches(conn, items)

    results: list[InsertResult] = []

    async def one(batch: Batch) -> None:
        results.append(await store.write_combined_nowait(counted, (tenant.id, batch), rows=3))

    async with trio.open_nursery() as nursery:
        release = await _held(store, nursery)
        for i in range(10):
            nursery.start_soon(one, _batch(tenant, 3, batchId=f"c-{i}"))
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    assert calls == [10]
    assert [r.stored for r in results] == [3] * 10
    assert await store.read(count_events) == 30


async def test_a_failing_item_fails_alone_in_a_combined_call(
    store: EventStore, tenant: Tenant
) -> None:
    def picky(conn: sqlite3.Connection, items: list[tuple[int, Batch]]) -> list[InsertResult]:
        if any(batch.batch_id == "bad" for _, batch in items):
            insert_batches(conn, items)  # half done when it fails: must be undone
            raise ValueError("bad batch")
        return insert_batches(conn, items)

    outcomes: dict[str, object] = {}

    async def one(batch_id: str) -> None:
        job = store.write_combined_nowait(picky, (tenant.id, _batch(tenant, 2, batchId=batch_id)))
        try:
            outcomes[batch_id] = (await job).stored
        except ValueError as exc:
            outcomes[batch_id] = str(exc)

    async with trio.open_nursery() as nursery:
        release = await _held(store, nursery)
        for batch_id in ("a", "bad", "b"):
            nursery.start_soon(one, batch_id)
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    assert outcomes == {"a": 2, "bad": "bad batch", "b": 2}
    assert await store.read(count_events) == 4


def test_insert_batches_is_insert_batch_in_order(tmp_path: Path) -> None:
    conn = connect(tmp_path / "i.db")
    migrate(conn)
    conn.execute("BEGIN")
    tenant, _ = create_tenant(conn, "t")
    seen = _batch(tenant, 2, batchId="seen")
    insert_batch(conn, tenant.id, seen)
    items = [
        (tenant.id, _batch(tenant, 3, batchId="new")),
        (tenant.id, seen),  # stored before: a replay
        (tenant.id, _batch(tenant, 4, batchId="new")),  # same id as the first, later
        (tenant.id, _batch(tenant, 5)),  # no id: always stored
        (tenant.id, _batch(tenant, 0, batchId="empty")),
    ]
    got = [(r.stored, r.duplicate) for r in insert_batches(conn, items)]
    assert got == [(3, False), (2, True), (3, True), (5, False), (0, False)]
    assert count_events(conn) == 2 + 3 + 5
    # 1,300 rows in one call: more than one statement's worth of parameters.
    big = [(tenant.id, _batch(tenant, 50)) for _ in range(26)]
    assert sum(r.stored for r in insert_batches(conn, big)) == 1300
    assert count_events(conn) == 10 + 1300
    conn.execute("COMMIT")


async def test_full_queue_sheds_load(tmp_path: Path) -> None:
    small = EventStore(tmp_path / "small.db", queue_jobs=1)
    release = threading.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(small.run)
        # The first job holds the writer thread; the second fills the queue.
        nursery.start_soon(small.write, lambda c: release.wait(10))
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(small.write, lambda c: None)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(StoreBusy):
            await small.write_nowait(lambda c: None)
        release.set()
        assert await small.write(lambda c: "after") == "after"
        await small.close()


async def test_close_commits_queued_writes_and_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "own.db"
    own = EventStore(path)
    release = threading.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(own.run)
        tenant, _ = await own.write(lambda c: create_tenant(c, "t"))
        nursery.start_soon(own.write, lambda c: release.wait(10))
        await trio.testing.wait_all_tasks_blocked()
        # Five writes wait in the queue behind the one holding the writer.
        for _ in range(5):
            nursery.start_soon(own.write, lambda c: insert_batch(c, tenant.id, _batch(tenant)))
        await trio.testing.wait_all_tasks_blocked()
        await own.close()
        with pytest.raises(StoreClosed):
            await own.write(lambda c: None)
        release.set()
    # The queued writes were committed, and the WAL was checkpointed into the
    # main file and truncated at close.
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM user_activity_events").fetchone()[0] == 10


def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    conn = connect(tmp_path / "m.db")
    assert migrate(conn) == len(MIGRATIONS)
    assert migrate(conn) == len(MIGRATIONS)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tenants", "user_activity_events", "user_activity_summary"} <= tables


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path / "m.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        migrate(conn)


async def test_every_field_of_every_event_type_round_trips(
    store: EventStore, tenant: Tenant
) -> None:
    ts = now_ms()
    raw = [
        {"type": "route", "route": "/ünïcødé/😀?q=\"x\"&y='z'"},
        {"type": "click", "element": "button#pay", "text": "Pay \\ now\n"},
        {"type": "form_submit", "formId": "signup"},
        {"type": "page_time", "route": "/a", "duration": 604_800_000},
        {"type": "error", "message": "TypeError: \u2028 x", "source": "a.js:1:2", "stack": "at f"},
        {"type": "custom", "name": "export", "data": {"rows": [1, 2.5, None], "s": "ß"}},
        {"type": "heartbeat"},
        {"type": "visibility", "state": "unload"},
    ]
    batch = validate_batch(
        make_batch(tenant, [{"timestamp": ts - i, **e} for i, e in enumerate(raw)]), ts
    )
    await store.write(lambda c: insert_batch(c, tenant.id, batch))
    rows = await store.read(
        lambda c: c.execute(
            "SELECT event_type, route, element, element_text, form_id, duration_ms, error_message,"
            " error_source, error_stack, event_name, event_data, visibility, timestamp,"
            " client_timestamp, received_at, user_id, user_email, subscription_tier"
            " FROM user_activity_events ORDER BY id"
        ).fetchall()
    )
    expected = [
        (
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
            ts,
            "user-1",
            "user-1@example.com",
            "free_trial",
        )
        for e in batch.events
    ]
    assert rows == expected
