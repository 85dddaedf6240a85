"""The EventStore: the one SQLite writer, with group commit.

Callers hand it a *job* (a function of the connection) and await the commit.
One writer task takes every job queued while the previous transaction ran,
runs them all in one transaction (each under its own SAVEPOINT, so one
failing job does not sink the others: ``_transaction.py``), commits once, and
then wakes every waiter.  Jobs that *combine* (ingest's batches) run as one
call for all of them that are queued side by side, so a group of 25 batches
costs a few SQLite statements rather than a hundred.  A caller that has
been woken knows its rows are committed: that is what lets ingest answer
"stored".

Where the transaction runs:

- ``writer_process=False``: in a worker thread of this process (and inline
  in tests on virtual time);
- ``writer_process=True`` (the service's default, ``TIPPEN_STORE_WRITER``):
  ingest's batches go to a child process with its own GIL
  (``_writer_process.py``) as bytes, and only the other jobs (alerts,
  summaries, tenants: a few a second) run in the worker thread.  A group is
  then cut where the kind of job changes, so the two connections never write
  at the same time.  If the child dies, the batches it held fail with
  :class:`WriterLost` (never "stored"), and the next group starts a new one;
  :attr:`EventStore.writer_ok` says whether one is running.

Reads use a second connection (WAL lets it read while the writer writes).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from ..observe import Histogram
from ._schema import connect, migrate
from ._transaction import Combined, Work, run_group
from ._writer_process import REMOTE_BY_FN, WriterLost, WriterProcess

log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")

Offload = Callable[..., Awaitable[Any]]

#: How long a writer process may take to start, and to stop after its last group.
WRITER_START_S = 30.0
WRITER_STOP_S = 30.0
#: After a writer process failed to start, the next try waits at least this long.
WRITER_RETRY_S = 1.0


async def run_inline(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in the trio thread (blocking it): deterministic, for virtual-time tests."""
    await trio.lowlevel.checkpoint()
    return fn(*args)


class StoreBusy(Exception):
    """The writer queue is full: the caller should shed load (503)."""


class StoreClosed(Exception):
    """The store is shutting down and takes no more writes."""


@dataclass(eq=False, slots=True)
class _Job(Work):
    rows: int = 1
    done: trio.Event = field(default_factory=trio.Event)


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counters for health pages and benchmarks."""

    commits: int
    jobs: int
    rows: int
    queued_jobs: int
    #: Most jobs the queue holds; beyond it writes wait or get StoreBusy.
    queue_capacity: int = 0
    #: Writer processes started, and how many of them died under us.
    writer_starts: int = 0
    writer_deaths: int = 0


class EventStore:
    """Owner of the SQLite file. Start it with ``await nursery.start(store.run)``."""

    def __init__(
        self,
        path: Path | str,
        *,
        queue_jobs: int = 2048,
        max_rows_per_commit: int = 20_000,
        offload: Offload | None = None,
        writer_process: bool = False,
    ) -> None:
        """``offload`` runs blocking SQLite calls; a worker thread by default.

        Tests on virtual time pass :func:`run_inline`: a worker thread would let
        the autojump clock race ahead while SQLite works.  ``writer_process``
        sends ingest's batches to a writer process (see the module docstring).
        """
        self.path = Path(path)
        self._use_process = writer_process
        self._process: WriterProcess | None = None
        self._process_retry_at = -float("inf")
        self._writer_starts = 0
        self._writer_deaths = 0
        self._offload: Offload = offload or trio.to_thread.run_sync
        self._max_rows = max_rows_per_commit
        self._send, self._recv = trio.open_memory_channel[_Job](queue_jobs)
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
            if self._use_process:
                await self._start_writer_process()
                if self._process is None:
                    raise WriterLost("the writer process did not start; see the log above")
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
                await self._stop_writer_process()
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
        job = _Job(fn, rows=rows)
        try:
            await self._send.send(job)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed("event store is closed") from None
        result: T = await self._wait(job)
        return result

    async def write_nowait(self, fn: Callable[[sqlite3.Connection], T], *, rows: int = 1) -> T:
        """Like :meth:`write`, but raise :class:`StoreBusy` at once if the queue is full."""
        result: T = await self._run_nowait(_Job(fn, rows=rows))
        return result

    async def write_combined_nowait(self, fn: Combined[Item, T], item: Item, *, rows: int = 1) -> T:
        """Queue ``item`` for ``fn(conn, [item, ...])``; raise :class:`StoreBusy` if full.

        Every job of the same ``fn`` queued next to this one in a commit group
        runs in the same call, which must return one result per item, in
        order.  If that call raises, each item runs again alone (under its own
        savepoint), so only the item at fault gets the error.
        """
        result: T = await self._run_nowait(_Job(None, fn, item, rows=rows))
        return result

    async def _run_nowait(self, job: _Job) -> Any:
        try:
            self._send.send_nowait(job)
        except trio.WouldBlock:
            raise StoreBusy("too many writes queued") from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed("event store is closed") from None
        return await self._wait(job)

    @staticmethod
    async def _wait(job: _Job) -> Any:
        await job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    async def _commit_group(self, first: _Job) -> None:
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
            if self._use_process:
                for remote, part in _by_where(jobs):
                    if remote:
                        await self._run_remote(part)
                    else:
                        await self._offload(run_group, self._writer, part)
            else:
                await self._offload(run_group, self._writer, jobs)
        finally:
            for job in jobs:
                job.done.set()
        self.commit_seconds.observe(time.perf_counter() - started)
        self._commits += 1
        self._jobs += len(jobs)
        self._rows += rows

    async def _run_remote(self, jobs: list[_Job]) -> None:
        """One group of a remote kind, in the writer process; if there is none (it
        died and could not be started again), every job fails with WriterLost."""
        if self._process is not None and self._process.exited:
            # It died between groups: nothing was in flight, so nothing fails.
            self._writer_deaths += 1
            log.error("writer process %d ended by itself; starting another", self._process.pid)
            self._process = None
        if self._process is None:
            await self._start_writer_process()
        process = self._process
        if process is None:
            error = WriterLost("the writer process is not running; retry later")
            for job in jobs:
                job.error = error
            return
        job_kind = REMOTE_BY_FN[jobs[0].combined]  # type: ignore[index]
        try:
            results = await process.run(job_kind, [job.item for job in jobs])
        except WriterLost as exc:
            # Whether it committed before dying is unknown: nobody is told "stored".
            self._writer_deaths += 1
            log.error("writer process %d lost: %s; %d batches fail", process.pid, exc, len(jobs))
            process.kill()
            self._process = None
            for job in jobs:
                job.error = exc
            await self._start_writer_process()
            return
        for job, (ok, value) in zip(jobs, results, strict=True):
            if ok:
                job.result = value
            else:
                job.error = value

    async def _start_writer_process(self) -> None:
        """Start a writer process unless one failed to start moments ago."""
        if trio.current_time() < self._process_retry_at:
            return
        try:
            with trio.fail_after(WRITER_START_S):
                self._process = await WriterProcess.start(self.path)
        except (OSError, WriterLost, trio.TooSlowError) as exc:
            log.error("could not start the writer process: %s", exc)
            self._process_retry_at = trio.current_time() + WRITER_RETRY_S
            return
        self._writer_starts += 1

    async def _stop_writer_process(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with trio.move_on_after(WRITER_STOP_S):
                await process.aclose()
            process.kill()

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

    @property
    def writer_ok(self) -> bool:
        """False while ingest's writer process is not running (it died, and the
        next group starts another); always True without one."""
        return not self._use_process or self._process is not None

    def stats(self) -> StoreStats:
        """Counters since start."""
        return StoreStats(
            commits=self._commits,
            jobs=self._jobs,
            rows=self._rows,
            queued_jobs=self._send.statistics().current_buffer_used,
            queue_capacity=self._capacity,
            writer_starts=self._writer_starts,
            writer_deaths=self._writer_deaths,
        )


def _by_where(jobs: list[_Job]) -> list[tuple[bool, list[_Job]]]:
    """``jobs`` cut into runs that go to the writer process (True) or stay here."""
    parts: list[tuple[bool, list[_Job]]] = []
    for job in jobs:
        remote = job.combined in REMOTE_BY_FN
        if parts and parts[-1][0] == remote:
            parts[-1][1].append(job)
        else:
            parts.append((remote, [job]))
    return parts
