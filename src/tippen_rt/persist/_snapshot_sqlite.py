"""Snapshots in the SQLite file: the embedded default, written through the EventStore."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from ._event_store import EventStore
from ._snapshot_store import Key


class SqliteSnapshotStore:
    """Snapshots in the ``live_snapshots`` table."""

    name = "sqlite"

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def save(self, snapshots: Mapping[Key, bytes], deleted: Iterable[Key] = ()) -> bool:
        """Upsert ``snapshots`` and delete ``deleted`` in one transaction.

        Returns False: the table never loses snapshots behind our back.
        """
        rows = [(t, u, blob) for (t, u), blob in snapshots.items()]
        gone = list(deleted)

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO live_snapshots (tenant_id, user_id, state) VALUES (?, ?, ?)"
                " ON CONFLICT (tenant_id, user_id) DO UPDATE SET state = excluded.state",
                rows,
            )
            conn.executemany("DELETE FROM live_snapshots WHERE tenant_id = ? AND user_id = ?", gone)

        await self._store.write(write, rows=len(rows) + len(gone) or 1)
        return False

    async def load_all(self) -> dict[Key, bytes]:
        """Every saved snapshot."""

        def read(conn: sqlite3.Connection) -> dict[Key, bytes]:
            return {
                (t, u): bytes(blob)
                for t, u, blob in conn.execute(
                    "SELECT tenant_id, user_id, state FROM live_snapshots"
                )
            }

        return await self._store.read(read)

    async def delete(self, keys: Iterable[Key]) -> None:
        """Forget these users' snapshots."""
        await self.save({}, keys)

    async def ping(self) -> None:
        """The SQLite file is the store itself: reachable while the store accepts writes."""
        if not self._store.accepting:
            raise ConnectionError("event store is closed")
