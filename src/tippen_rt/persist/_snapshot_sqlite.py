"""Snapshots in the SQLite file: the embedded default, written through the EventStore."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from ._event_store import EventStore
from ._snapshot_store import Key

WATERMARK = "watermark"


class SqliteSnapshotStore:
    """Snapshots in the ``live_snapshots`` table."""

    name = "sqlite"

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def save(
        self,
        snapshots: Mapping[Key, bytes],
        deleted: Iterable[Key] = (),
        watermark: float | None = None,
    ) -> bool:
        """Upsert ``snapshots``, delete ``deleted`` and set ``watermark`` in one transaction.

        Returns False: the table never loses snapshots behind our back.
        """
        gone = list(deleted)

        def write(conn: sqlite3.Connection) -> None:
            # The rows are built here, in the writer thread, not on the event loop.
            conn.executemany(
                "INSERT INTO live_snapshots (tenant_id, user_id, state) VALUES (?, ?, ?)"
                " ON CONFLICT (tenant_id, user_id) DO UPDATE SET state = excluded.state",
                [(t, u, blob) for (t, u), blob in snapshots.items()],
            )
            conn.executemany("DELETE FROM live_snapshots WHERE tenant_id = ? AND user_id = ?", gone)
            if watermark is not None:
                conn.execute(
                    "INSERT INTO snapshot_meta (name, value) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (WATERMARK, watermark),
                )

        await self._store.write(write, rows=len(snapshots) + len(gone) or 1)
        return False

    async def load_all(self) -> tuple[dict[Key, bytes], float | None]:
        """Every saved snapshot, and the last round's watermark."""

        def read(conn: sqlite3.Connection) -> tuple[dict[Key, bytes], float | None]:
            blobs = {
                (t, u): bytes(blob)
                for t, u, blob in conn.execute(
                    "SELECT tenant_id, user_id, state FROM live_snapshots"
                )
            }
            row = conn.execute(
                "SELECT value FROM snapshot_meta WHERE name = ?", (WATERMARK,)
            ).fetchone()
            return blobs, None if row is None else float(row[0])

        return await self._store.read(read)

    async def delete(self, keys: Iterable[Key]) -> None:
        """Forget these users' snapshots."""
        await self.save({}, keys)

    async def ping(self) -> None:
        """The SQLite file is the store itself: reachable while the store accepts writes."""
        if not self._store.accepting:
            raise ConnectionError("event store is closed")
