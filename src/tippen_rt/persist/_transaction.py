"""One group commit: every queued job in one SQLite transaction.

No trio here: the same code runs in the EventStore's worker thread and in the
writer process (``_writer_process.py``).  Each job runs under its own
SAVEPOINT, so one failing job does not sink the others; jobs that *combine*
(ingest's batches) run as one call for all of them queued side by side.  If
that call raises, each of its jobs runs again alone, so only the one at
fault gets the error.  If the transaction itself fails (COMMIT, a full
disk), every job gets that error: none of them is stored.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")

#: A job that combines: ``fn(conn, items)`` returns one result per item, in order.
Combined = Callable[[sqlite3.Connection, list[Item]], Sequence[T]]


@dataclass(eq=False, slots=True)
class Work:
    """One job of a group, and what became of it."""

    fn: Callable[[sqlite3.Connection], Any] | None
    combined: Combined[Any, Any] | None = None
    item: Any = None
    result: Any = None
    error: BaseException | None = None


def run_group(conn: sqlite3.Connection, jobs: Sequence[Work]) -> None:
    """Run ``jobs`` in one transaction and commit; each job's result or error is
    set on it."""
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


def _run_alone(conn: sqlite3.Connection, job: Work) -> None:
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


def _run_combined(conn: sqlite3.Connection, fn: Combined[Any, Any], jobs: Sequence[Work]) -> None:
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
