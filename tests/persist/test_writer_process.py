"""The EventStore with its writer process: ingest's batches committed by a child
process with its own GIL; the writer never outlives the store, and a writer
that dies costs only the batches it held, which are never reported stored."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from tippen_rt.events import Batch, validate_batch
from tippen_rt.persist import (
    EventStore,
    InsertResult,
    WriterLost,
    connect,
    count_events,
    create_tenant,
    insert_batches,
)
from tippen_rt.tenants import Tenant

from ..conftest import make_batch, now_ms


@pytest.fixture
async def pstore(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[EventStore]:
    store = EventStore(tmp_path / "p.db", writer_process=True)
    await nursery.start(store.run)
    yield store
    await store.close()


@pytest.fixture
async def ptenant(pstore: EventStore) -> Tenant:
    tenant, _ = await pstore.write(lambda c: create_tenant(c, "acme", ["https://a.example"]))
    return tenant


def _batch(tenant: Tenant, n: int = 2, **extra: object) -> Batch:
    ts = now_ms()
    events = [{"type": "click", "element": f"b{i}", "timestamp": ts} for i in range(n)]
    return validate_batch(make_batch(tenant, events, **extra), ts)


def _writer_pid(store: EventStore) -> int:
    process = store._process
    assert process is not None
    return process.pid


async def _store(store: EventStore, tenant_id: int, batch: Batch) -> InsertResult:
    result: InsertResult = await store.write_combined_nowait(
        insert_batches, (tenant_id, batch), rows=len(batch.events)
    )
    return result


async def test_batches_are_committed_by_the_child(pstore: EventStore, ptenant: Tenant) -> None:
    pid = _writer_pid(pstore)
    assert pid != os.getpid()
    results: list[InsertResult] = []

    async def one(i: int) -> None:
        results.append(await _store(pstore, ptenant.id, _batch(ptenant, 3, batchId=f"b{i}")))

    async with trio.open_nursery() as nursery:
        for i in range(100):
            nursery.start_soon(one, i)
    assert [r.stored for r in results] == [3] * 100
    assert await pstore.read(count_events) == 300
    # The replayed one is recognised by the child's transaction as before.
    again = await _store(pstore, ptenant.id, _batch(ptenant, 3, batchId="b7"))
    assert again == InsertResult(stored=3, duplicate=True)
    assert await pstore.read(count_events) == 300
    assert pstore.stats().writer_starts == 1


async def test_other_jobs_still_run_here_in_order(pstore: EventStore, ptenant: Tenant) -> None:
    order: list[str] = []

    async def count_now(label: str) -> None:
        n = await pstore.write(lambda c: count_events(c))
        order.append(f"{label}:{n}")

    await _store(pstore, ptenant.id, _batch(ptenant, 2))
    await count_now("after one")
    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(_store, pstore, ptenant.id, _batch(ptenant, 2, batchId=f"x{i}"))
    await count_now("after six")
    assert order == ["after one:2", "after six:12"]


async def test_an_item_that_fails_fails_alone_with_sqlites_error(
    pstore: EventStore, ptenant: Tenant
) -> None:
    outcomes: dict[str, object] = {}

    async def one(label: str, tenant_id: int) -> None:
        try:
            outcomes[label] = (await _store(pstore, tenant_id, _batch(ptenant, 2))).stored
        except sqlite3.IntegrityError as exc:
            outcomes[label] = f"IntegrityError: {exc}"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, "a", ptenant.id)
        nursery.start_soon(one, "no such tenant", ptenant.id + 999)
        nursery.start_soon(one, "b", ptenant.id)
    assert outcomes["a"] == 2 and outcomes["b"] == 2
    assert str(outcomes["no such tenant"]).startswith("IntegrityError: FOREIGN KEY")
    assert await pstore.read(count_events) == 4


async def test_a_writer_that_died_between_groups_is_replaced_without_loss(
    pstore: EventStore, ptenant: Tenant
) -> None:
    pid = _writer_pid(pstore)
    os.kill(pid, signal.SIGKILL)
    assert pstore._process is not None
    with trio.fail_after(10):
        await pstore._process.wait()
    result = await _store(pstore, ptenant.id, _batch(ptenant, 2))
    assert result.stored == 2
    assert _writer_pid(pstore) != pid
    assert pstore.stats().writer_deaths == 1
    assert pstore.writer_ok


async def test_a_writer_killed_holding_a_group_fails_it_and_a_new_one_takes_over(
    pstore: EventStore, ptenant: Tenant
) -> None:
    pid = _writer_pid(pstore)
    os.kill(pid, signal.SIGSTOP)  # it cannot read the group we send
    outcome: list[object] = []

    async def held() -> None:
        try:
            outcome.append(await _store(pstore, ptenant.id, _batch(ptenant, 5)))
        except WriterLost as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(held)
        await trio.testing.wait_all_tasks_blocked()
        assert outcome == []  # in flight: sent, not answered
        os.kill(pid, signal.SIGKILL)
    assert len(outcome) == 1 and isinstance(outcome[0], WriterLost), outcome
    assert await pstore.read(count_events) == 0  # never stored, never reported stored
    # The next group goes to a new writer.
    assert (await _store(pstore, ptenant.id, _batch(ptenant, 2))).stored == 2
    assert _writer_pid(pstore) != pid
    assert pstore.stats().writer_deaths == 1


async def test_the_writer_ignores_sigint_and_sigterm(pstore: EventStore, ptenant: Tenant) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the parent decides.
    pid = _writer_pid(pstore)
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    assert (await _store(pstore, ptenant.id, _batch(ptenant, 2))).stored == 2
    assert _writer_pid(pstore) == pid


async def test_close_commits_queued_batches_and_stops_the_writer(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db", writer_process=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        tenant, _ = await store.write(lambda c: create_tenant(c, "acme", []))
        pid = _writer_pid(store)
        process = store._process
        assert process is not None
        for i in range(20):
            nursery.start_soon(_store, store, tenant.id, _batch(tenant, 2, batchId=f"q{i}"))
        await trio.testing.wait_all_tasks_blocked()
        await store.close()
    assert process.exited
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    conn = connect(tmp_path / "c.db")
    assert count_events(conn) == 40
    conn.close()
    assert not (tmp_path / "c.db-wal").exists() or (tmp_path / "c.db-wal").stat().st_size == 0


_PARENT = textwrap.dedent(
    """
    import os, sys, trio
    from tippen_rt.persist import EventStore

    async def main():
        store = EventStore(sys.argv[1], writer_process=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            print(store._process.pid, flush=True)
            await trio.sleep_forever()

    trio.run(main)
    """
)


def test_the_writer_does_not_outlive_a_killed_service(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "k.db")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # running
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            # A zombie child of the dead parent is reaped by init; check its state.
            if _is_zombie(child):
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"writer {child} still running 10 s after its parent was killed")
    finally:
        parent.kill()


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.slow
async def test_the_writer_outlives_the_thread_that_started_it(
    pstore: EventStore, ptenant: Tenant
) -> None:
    # trio starts processes from a worker thread and retires idle worker
    # threads after 10 s: a writer tied to that thread (PR_SET_PDEATHSIG)
    # was killed then, in the middle of a benchmark.
    pid = _writer_pid(pstore)
    await trio.sleep(12)
    assert (await _store(pstore, ptenant.id, _batch(ptenant, 2))).stored == 2
    assert _writer_pid(pstore) == pid
    assert pstore.stats().writer_deaths == 0


async def test_the_wal_is_checkpointed_beside_the_commits(
    pstore: EventStore, ptenant: Tenant
) -> None:
    # The writer's own connection never checkpoints (wal_autocheckpoint = 0):
    # only its Checkpointer thread moves pages into the database file.
    db = pstore.path
    before = db.stat().st_size
    for i in range(20):
        await _store(pstore, ptenant.id, _batch(ptenant, 50, batchId=f"w{i}"))
    for _ in range(100):
        if db.stat().st_size > before:
            break
        await trio.sleep(0.1)
    assert db.stat().st_size > before, "no checkpoint moved the WAL into the database"
