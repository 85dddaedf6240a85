"""``tippen-rt backup PATH``: a consistent copy of the SQLite file, taken while
the service runs.

SQLite's online backup API copies every page of the database in one step,
inside one read transaction: the copy is the database as of one instant,
every committed batch in it whole, none half.  In WAL mode a reader never
blocks the writer, so ingest goes on meanwhile (its commits land in the WAL
and are not in the copy).  The copy is written next to ``PATH`` under a
temporary name, switched to a single self-contained file (journal mode
DELETE), checked with ``PRAGMA integrity_check``, synced, and only then
renamed to ``PATH``: a backup that exists is complete.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ._schema import schema_version

__all__ = ["BackupError", "BackupReport", "backup_database"]


class BackupError(Exception):
    """The backup could not be made; nothing was left at the destination."""


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What a backup holds."""

    path: Path
    bytes: int
    schema_version: int
    events: int
    tenants: int
    seconds: float


def backup_database(source: Path, dest: Path) -> BackupReport:
    """Copy the database at ``source`` to ``dest`` (which must not exist)."""
    started = time.monotonic()
    if not source.is_file():
        raise BackupError(f"there is no database at {source}")
    if dest.exists():
        raise BackupError(f"{dest} exists already; give a new file name")
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent} is not a directory")
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    # mode=rw: never create a database where there was none.
    src = sqlite3.connect(f"file:{source.resolve()}?mode=rw", uri=True)
    try:
        src.execute("PRAGMA busy_timeout = 10000")
        out = sqlite3.connect(partial)
        try:
            src.backup(out, pages=-1)  # one step: one read transaction, one instant
            out.execute("PRAGMA journal_mode = DELETE")
            (verdict,) = out.execute("PRAGMA integrity_check").fetchone()
            if verdict != "ok":
                raise BackupError(f"the copy failed its integrity check: {verdict}")
            version = schema_version(out)
            events = _count(out, "user_activity_events")
            tenants = _count(out, "tenants")
        finally:
            out.close()
        with partial.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    _fsync_dir(dest.parent)
    return BackupReport(
        path=dest,
        bytes=dest.stat().st_size,
        schema_version=version,
        events=events,
        tenants=tenants,
        seconds=time.monotonic() - started,
    )


def _count(conn: sqlite3.Connection, table: str) -> int:
    try:
        (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    except sqlite3.OperationalError:  # an empty or very old database
        return 0
    return int(n)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable too."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
