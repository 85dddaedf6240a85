"""Keeping CPython's cyclic GC from pausing timers when 100k actors are alive.

Every live actor is a few dozen long-lived objects (its task, coroutine frames,
cancel scope, channel, state).  A full (generation 2) collection walks all of
them: at 100k actors that is millions of objects and a pause of hundreds of
milliseconds, during which no deadline fires.  After a burst of spawning we
move everything alive into the permanent generation with ``gc.freeze()`` so
collections skip it; young garbage is still collected as usual.  Objects that
die while frozen are still freed by reference counting; only cyclic garbage
among them waits until the next :func:`GcGuard.maybe_unfreeze`.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


class GcGuard:
    """Freeze the heap after every ``freeze_every`` spawns.

    Also unfreezes (and collects once) when as many actors have ended since
    the last freeze as were alive then, so cyclic garbage cannot pile up.
    """

    def __init__(self, freeze_every: int = 2000) -> None:
        self.freeze_every = freeze_every
        self._spawned = 0
        self._ended = 0
        self._live_at_freeze = 0
        self.freezes = 0

    def spawned(self, live: int) -> None:
        """Count a spawn; freeze if a burst is over the threshold."""
        self._spawned += 1
        if self._spawned >= self.freeze_every:
            self._spawned = 0
            gc.collect(0)  # drop young garbage first so it is not frozen
            gc.freeze()
            self._live_at_freeze = live
            self.freezes += 1

    def settle(self) -> None:
        """Freeze what a periodic burst of work left alive (a snapshot round).

        Actors replace their state on every batch; between spawns those new
        long-lived objects pile up unfrozen until a full collection walks
        them all.  Freezing them after each round keeps those pauses short.
        """
        gc.collect(0)
        gc.freeze()
        self.freezes += 1

    def ended(self) -> None:
        """Count an actor that ended."""
        self._ended += 1
        if self._live_at_freeze and self._ended >= max(self._live_at_freeze, self.freeze_every):
            self._ended = 0
            self._live_at_freeze = 0
            gc.unfreeze()
            log.debug("gc: unfroze after many actors ended")
