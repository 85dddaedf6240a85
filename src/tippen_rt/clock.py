"""Server time: wall-clock seconds that advance with trio's clock.

Rules and snapshots need absolute (wall-clock) times, so that a deadline
survives a restart; trio's deadlines are on its own monotonic clock.  A
:class:`Clock` ties the two with one offset taken at start-up, so
``clock.now()`` is the epoch time in production and runs on virtual time under
``trio.testing.MockClock`` in tests.
"""

from __future__ import annotations

import time

import trio


class Clock:
    """Wall-clock time derived from ``trio.current_time()``."""

    def __init__(self, offset_s: float | None = None) -> None:
        self._offset = (time.time() - trio.current_time()) if offset_s is None else offset_s

    @classmethod
    def starting_at(cls, wall_s: float) -> Clock:
        """A clock that reads ``wall_s`` now (for tests on virtual time)."""
        return cls(wall_s - trio.current_time())

    def now(self) -> float:
        """Seconds since the epoch."""
        return trio.current_time() + self._offset

    def now_ms(self) -> int:
        """Milliseconds since the epoch."""
        return int((trio.current_time() + self._offset) * 1000)

    def to_trio(self, wall_s: float) -> float:
        """The ``trio.current_time()`` value at which the wall clock reads ``wall_s``."""
        return wall_s - self._offset
