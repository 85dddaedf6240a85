"""The EventStore: the one SQLite writer, with group commit.

Callers hand it a *job* (a function of the connection) and await the commit.
One writer task takes every job queued while the previous transaction ran,
runs them all in one transaction in a worker thread (each under its own
SAVEPOINT, so one failing job does not sink the others), commits once, and
then wakes every waiter.  Jobs that *combine* (ingest's batches) run as one
call for all of them that are queued side by side, so a group of 25 batches
costs a few SQLite statements rather than a hundred.  A caller that has
been woken knows its rows are committed: that is what lets ingest answer
"stored".

Reads use a second connection (WAL lets it read while the writer writes).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import trio

from ..observe import Histogram
from ._schema import connect, migrate

log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")

#: A job that combines: ``fn(conn, items)`` returns one result per item, in order.
Combined = Callable[[sqlite3.Connection, list[Item]], Sequence[T]]


Offload = Callable[..., Awaitable[Any]]


async def run_inline(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in the trio thread (blocking it): deterministic, for virtual-time tests."""
    await trio.lowlevel.checkpoint()
    return fn(*args)


class StoreBusy(Exception):
    """The writer queue is full: the caller should shed load (503)."""


class StoreClosed(Exception):
    """The store is shutting down and takes no more writes."""


@dataclass(eq=False, slots=True)
class _Job(Generic[T]):
    fn: Callable[[sqlite3.Connection], T] | None
    rows: int
    combined: Combined[Any, T] | None = None
    item: Any = None
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counters for health pages and benchmarks."""

    commits: int
    jobs: int
    rows: int
    queued_jobs: int
    #: Most jobs the queue holds; beyond it writes wait or get StoreBusy.
    queue_capacity: int = 0


class EventStore:
    """Owner of the SQLite file. Start it with ``await nursery.start(store.run)``."""

    def __init__(
        self,
        path: Path | str,
        *,
        queue_jobs: int = 2048,
        max_rows_per_commit: int = 20_000,
        offload: Offload | None = None,
    ) -> None:
        """``offload`` runs blocking SQLite calls; a worker thread by default.

        Tests on virtual time pass :func:`run_inline`: a worker thread would let
        the autojump clock race ahead while SQLite works.
        """
        self.path = Path(path)
        self._offload: Offload = offload or trio.to_thread.run_sync
        self._max_rows = max_rows_per_commit
        self._send, self._recv = trio.open_memory_channel[_Job[Any]](queue_jobs)
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = trio.Lock()
        self._closed = False
        self._commits = 0
        self._jobs = 0
        self._rows = 0
        self._capacity = queue_jobs
        #: Seconds from handing a group to the writer thread to its COMMIT done:
        #: what every waiter of the group waited once its turn came.
        self.commit_seconds = Histogram()

    # ---- lifecycle -------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[EventStore] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Open and migrate the database, then commit jobs until :meth:`close`.

        On the way out (closed or cancelled) it commits what is queued, runs a
        WAL checkpoint and closes both connections.
        """
        self._writer = await self._offload(self._open_writer)
        self._reader = await self._offload(connect, self.path)
        try:
            task_status.started(self)
            async for first in self._recv:
                await self._commit_group(first)
        finally:
            with trio.CancelScope(shield=True):
                self._closed = True
                self._send.close()
                # Jobs still queued after a cancellation: commit them too.
                while True:
                    try:
                        job = self._recv.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    await self._commit_group(job)
                await self._offload(self._close_connections)

    async def close(self) -> None:
        """Stop taking writes; :meth:`run` commits what is queued and returns."""
        self._closed = True
        await self._send.aclose()

    def _open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path)
        migrate(conn)
        return conn

    def _close_connections(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._writer is not None:
            try:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                log.exception("WAL checkpoint at close failed")
            self._writer.close()
        log.info("event store closed (%d commits, %d rows)", self._commits, self._rows)

    # ---- writing ---------------------------------------------------------

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, rows: int = 1) -> T:
        """Run ``fn(conn)`` inside the next group transaction; return after COMMIT.

        Waits for room in the queue.  ``fn`` runs in the writer thread; it must
        not commit or roll back itself.
        """
        job: _Job[T] = _Job(fn, rows)
        try:
            await self._send.send(job)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed("event store is closed") from None
        return await self._wait(job)

    async def write_nowait(self, fn: Callable[[sqlite3.Connection], T], *, rows: int = 1) -> T:
        """Like :meth:`write`, but raise :class:`StoreBusy` at once if the queue is full."""
        return await self._run_nowait(_Job(fn, rows))

    async def write_combined_nowait(self, fn: Combined[Item, T], item: Item, *, rows: int = 1) -> T:
        """Queue ``item`` for ``fn(conn, [item, ...])``; raise :class:`StoreBusy` if full.

        Every job of the same ``fn`` queued next to this one in a commit group
        runs in the same call, which must return one result per item, in
        order.  If that call raises, each item runs again alone (under its own
        savepoint), so only the item at fault gets the error.
        """
        job: _Job[T] = _Job(None, rows, fn, item)
        return await self._run_nowait(job)

    async def _run_nowait(self, job: _Job[T]) -> T:
        try:
            self._send.send_nowait(job)
        except trio.WouldBlock:
            raise StoreBusy("too many writes queued") from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed("event store is closed") from None
        return await self._wait(job)

    @staticmethod
    async def _wait(job: _Job[T]) -> T:
        await job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    async def _commit_group(self, first: _Job[Any]) -> None:
        jobs = [first]
        rows = first.rows
        while rows < self._max_rows:
            try:
                job = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            jobs.append(job)
            rows += job.rows
        started = time.perf_counter()
        try:
            await self._offload(self._run_transaction, jobs)
        finally:
            for job in jobs:
                job.done.set()
        self.commit_seconds.observe(time.perf_counter() - started)
        self._commits += 1
        self._jobs += len(jobs)
        self._rows += rows

    def _run_transaction(self, jobs: list[_Job[Any]]) -> None:
        conn = self._writer
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            start = 0
            while start < len(jobs):
                combined = jobs[start].combined
                end = start + 1
                if combined is None:
                    _run_alone(conn, jobs[start])
                else:
                    while end < len(jobs) and jobs[end].combined is combined:
                        end += 1
                    _run_combined(conn, combined, jobs[start:end])
                start = end
            conn.execute("COMMIT")
        except Exception as exc:
            log.exception("group commit of %d jobs failed", len(jobs))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in jobs:
                if job.error is None:
                    job.error = exc
                    job.result = None

    # ---- reading ---------------------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the read connection in a worker thread."""
        if self._reader is None:
            raise StoreClosed("event store is not open")
        reader = self._reader
        async with self._read_lock:
            result: T = await self._offload(fn, reader)
        return result

    # ---- introspection ---------------------------------------------------

    @property
    def accepting(self) -> bool:
        """False once shutdown has begun."""
        return not self._closed

    def stats(self) -> StoreStats:
        """Counters since start."""
        return StoreStats(
            commits=self._commits,
            jobs=self._jobs,
            rows=self._rows,
            queued_jobs=self._send.statistics().current_buffer_used,
            queue_capacity=self._capacity,
        )


def _run_alone(conn: sqlite3.Connection, job: _Job[Any]) -> None:
    conn.execute("SAVEPOINT job")
    try:
        if job.combined is not None:
            job.result = job.combined(conn, [job.item])[0]
        else:
            assert job.fn is not None
            job.result = job.fn(conn)
    except Exception as exc:  # the job's own failure: undo just it
        job.error = exc
        conn.execute("ROLLBACK TO job")
    conn.execute("RELEASE job")


def _run_combined(conn: sqlite3.Connection, fn: Combined[Any, Any], jobs: list[_Job[Any]]) -> None:
    if len(jobs) == 1:
        _run_alone(conn, jobs[0])
        return
    conn.execute("SAVEPOINT jobs")
    try:
        results = fn(conn, [job.item for job in jobs])
        if len(results) != len(jobs):
            raise RuntimeError(f"{fn!r} returned {len(results)} results for {len(jobs)} items")
    except Exception:
        # Someone's item is at fault: undo the call, and find out whose.
        conn.execute("ROLLBACK TO jobs")
        conn.execute("RELEASE jobs")
        for job in jobs:
            _run_alone(conn, job)
        return
    conn.execute("RELEASE jobs")
    for job, result in zip(jobs, results, strict=True):
        job.result = result
