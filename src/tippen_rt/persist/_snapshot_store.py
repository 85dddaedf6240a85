"""Where live actor state is snapshotted so a restart loses nothing.

Two implementations share this interface: Redis (``TIPPEN_REDIS_URL``) and a
SQLite table (the embedded default).  Snapshots are opaque bytes per user key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

Key = tuple[int, str]


class SnapshotStore(Protocol):
    """Saved actor states, one blob per (tenant id, user id)."""

    name: str

    async def save(self, snapshots: Mapping[Key, bytes], deleted: Iterable[Key] = ()) -> bool:
        """Write ``snapshots`` and delete ``deleted`` in one round trip.

        Returns True if the backend had lost earlier snapshots (a Redis that
        restarted empty): the caller should write every live state again.
        """

    async def load_all(self) -> dict[Key, bytes]:
        """Every saved snapshot."""

    async def delete(self, keys: Iterable[Key]) -> None:
        """Forget these users' snapshots (the user left, or their data was erased)."""

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""
