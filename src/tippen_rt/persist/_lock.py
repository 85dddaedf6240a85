"""One service per database: an exclusive lock taken before anything is opened.

``tippen-rt serve`` holds ``<db>.lock`` (``flock``) for as long as it runs;
a second ``serve`` on the same file refuses to start before it reads or
writes anything.  The kernel drops the lock when the process ends, however
it ends (``kill -9`` included), so a stale lock file never blocks a start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class DatabaseInUse(Exception):
    """Another process serves this database."""


@contextlib.contextmanager
def database_lock(db_path: Path | str) -> Iterator[Path]:
    """Hold the database's lock for the block; raise :class:`DatabaseInUse` if taken."""
    lock_path = Path(f"{db_path}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise DatabaseInUse(
                f"{db_path} is already served by process {holder} (lock {lock_path});"
                " one tippen-rt serve per database"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock_path
    finally:
        os.close(fd)  # releases the lock
