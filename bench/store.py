"""The SQLite ceiling: how many events per second our schema and EventStore can commit.

In one process, no HTTP, same pragmas as the service (WAL, synchronous=FULL):

* ``raw sqlite``: one thread calling ``insert_batch`` in big transactions, no
  trio, no queue: the most this schema takes on this disk;
* ``EventStore, W writers``: W trio tasks each writing 50-event batches through
  ``EventStore.write_nowait`` (as ingest does) as fast as commits come back;
  group commit puts everything queued meanwhile in one transaction.

The ingest benchmark's events/s is then a fraction of this ceiling.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from functools import partial
from pathlib import Path

import trio

from tippen_rt.events import Batch
from tippen_rt.persist import EventStore, StoreBusy, create_tenant, insert_batch, open_database

from ._batches import sample_batches
from ._options import Options
from ._report import Report, Table, filesystem_of

NAME = "store"
DESCRIPTION = "SQLite ceiling: events/s through our schema, raw and via the group-commit EventStore"

WRITER_COUNTS = (1, 50, 200)
RAW_BATCHES_PER_TXN = 40


def _setup(db: Path) -> int:
    conn = open_database(db)
    try:
        conn.execute("BEGIN IMMEDIATE")
        tenant, _ = create_tenant(conn, "bench", ["https://app.example.com"])
        conn.execute("COMMIT")
        return tenant.id
    finally:
        conn.close()


def _raw(db: Path, tenant_id: int, batches: list[Batch], seconds: float) -> dict[str, float]:
    conn = open_database(db)
    rows = txns = 0
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    try:
        while time.perf_counter() < deadline:
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(RAW_BATCHES_PER_TXN):
                b = batches[n % len(batches)]
                n += 1
                rows += insert_batch(
                    conn, tenant_id, dataclasses.replace(b, batch_id=f"r{n}")
                ).stored
            conn.execute("COMMIT")
            txns += 1
    finally:
        conn.close()
    elapsed = time.perf_counter() - start
    return {
        "elapsed_s": elapsed,
        "batches": n,
        "rows": rows,
        "commits": txns,
        "p50_ms": math.nan,
        "p99_ms": math.nan,
    }


async def _through_store(
    db: Path, tenant_id: int, batches: list[Batch], writers: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    busy = 0
    counter = 0
    async with trio.open_nursery() as nursery:
        store = EventStore(db)
        await nursery.start(store.run)
        before = store.stats()
        deadline = trio.current_time() + seconds

        async def writer(w: int) -> None:
            nonlocal busy, counter
            i = w
            while trio.current_time() < deadline:
                counter += 1
                batch = dataclasses.replace(batches[i % len(batches)], batch_id=f"w{counter}")
                i += writers
                t0 = time.perf_counter()
                try:
                    await store.write_nowait(
                        partial(insert_batch, tenant_id=tenant_id, batch=batch),
                        rows=len(batch.events),
                    )
                except StoreBusy:
                    busy += 1
                    await trio.sleep(0.001)
                    continue
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        async with trio.open_nursery() as inner:
            for w in range(writers):
                inner.start_soon(writer, w)
        elapsed = time.perf_counter() - start
        after = store.stats()
        await store.close()
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return {
        "elapsed_s": elapsed,
        "batches": after.jobs - before.jobs,
        "rows": after.rows - before.rows,
        "commits": after.commits - before.commits,
        "p50_ms": ms[len(ms) // 2] if ms else math.nan,
        "p99_ms": ms[min(len(ms) - 1, math.ceil(0.99 * len(ms)) - 1)] if ms else math.nan,
        "busy": busy,
    }


def run(opts: Options) -> Report:
    """Measure the raw and EventStore ceilings, each for a third of ``duration_s``."""
    seconds = max(1.0, opts.duration_s / 3)
    report = Report(
        NAME,
        params={
            "seconds_per_scenario": seconds,
            "events_per_batch": opts.events,
            "writer_counts": list(WRITER_COUNTS),
            "raw_batches_per_txn": RAW_BATCHES_PER_TXN,
        },
    )
    table = Table(
        f"SQLite ceiling: {opts.events}-event batches, our schema and pragmas "
        f"(WAL, synchronous=FULL), {seconds:g} s per scenario",
        ["scenario", "events/s", "batches/s", "commits/s", "events/commit", "p50 ms", "p99 ms"],
    )
    with tempfile.TemporaryDirectory(prefix="tippen-bench-store-") as tmp:
        report.params["db_filesystem"] = filesystem_of(Path(tmp))
        batches = sample_batches("client_bench", 200, users=opts.users, events=opts.events)
        scenarios: list[tuple[str, str, dict[str, float]]] = []
        db = Path(tmp) / "raw.db"
        tid = _setup(db)
        scenarios.append(("raw", "raw sqlite, 1 thread", _raw(db, tid, batches, seconds)))
        for writers in WRITER_COUNTS:
            db = Path(tmp) / f"store-{writers}.db"
            tid = _setup(db)
            res = trio.run(_through_store, db, tid, batches, writers, seconds)
            scenarios.append((f"store_{writers}w", f"EventStore, {writers} writers", res))
    for key, label, r in scenarios:
        el = r["elapsed_s"]
        row = {
            "events_per_s": r["rows"] / el,
            "batches_per_s": r["batches"] / el,
            "commits_per_s": r["commits"] / el,
            "events_per_commit": r["rows"] / r["commits"] if r["commits"] else math.nan,
            "p50_ms": r["p50_ms"],
            "p99_ms": r["p99_ms"],
        }
        table.add(label, *row.values())
        for name, value in row.items():
            report.figures[f"{key}_{name}"] = None if math.isnan(value) else round(value, 2)
        if r.get("busy"):
            report.notes.append(f"{label}: {int(r['busy'])} writes refused as busy (queue full)")
    report.figures["ceiling_events_per_s"] = max(
        v for k, v in report.figures.items() if k.endswith("_events_per_s") and v is not None
    )
    report.tables.append(table)
    return report
