"""Where live actor state is snapshotted so a restart loses nothing.

Two implementations share this interface: Redis (``TIPPEN_REDIS_URL``) and a
SQLite table (the embedded default).  Snapshots are opaque bytes per user key.

With each round the snapshotter also stores a *watermark*: the server time at
which it took the set of changed users.  Every user whose state changed before
the watermark has a current snapshot, so recovery only replays events received
after it (minus a margin), however old some idle user's snapshot is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

Key = tuple[int, str]


class SnapshotStore(Protocol):
    """Saved actor states, one blob per (tenant id, user id)."""

    name: str

    async def save(
        self,
        snapshots: Mapping[Key, bytes],
        deleted: Iterable[Key] = (),
        watermark: float | None = None,
    ) -> bool:
        """Write ``snapshots``, delete ``deleted`` and set ``watermark``, in one round trip.

        Returns True if the backend had lost earlier snapshots (a Redis that
        restarted empty): the caller should write every live state again.
        """

    async def load_all(self) -> tuple[dict[Key, bytes], float | None]:
        """Every saved snapshot, and the watermark of the last round (None if unknown)."""

    async def delete(self, keys: Iterable[Key]) -> None:
        """Forget these users' snapshots (the user left, or their data was erased)."""

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""
