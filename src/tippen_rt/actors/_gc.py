"""Keeping CPython's cyclic GC from pausing timers when 100k actors are alive.

Every live actor is a few dozen GC-tracked objects (its task, coroutine
frames, cancel scope, channel, state), and each wake-up replaces some of them
with new ones.  A full (generation 2) collection walks all of them: at 100k
actors that is millions of objects and pauses of seconds, during which no
deadline fires (measured in ``bench/actors.py``: up to 3.8 s).

So whatever survives a generation 1 or 2 collection is moved into the
permanent generation (``gc.freeze()``), which collections skip: old objects
are never walked again, and each collection only looks at what is new.
Frozen objects that die are still freed by reference counting; actors make
no cyclic garbage (measured), but other parts may.  Cyclic garbage that was
frozen waits for the leak check: when the frozen heap grows far beyond what
the live actors explain (looked at every few minutes), it is unfrozen and
collected once, and that is logged.

Young collections need a second trigger besides CPython's own.  Its
generation 0 threshold counts allocations *minus deallocations* of tracked
objects, and an actor that wakes up replaces old (frozen) objects by new ones:
the count stays flat while every new object joins the young list.  Left alone,
a young collection under 2,000 wake-ups a second walked a young list hundreds
of thousands of objects long: 85 ms per generation 0 collection and up to
570 ms per generation 1 at 100k actors (bench/actors.py).  So every
``collect_every_steps`` actor steps the young generation is collected and its
survivors frozen, as after a burst of spawns.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

#: Frozen objects per live actor above which frozen garbage is suspected.
FROZEN_PER_ACTOR = 200
#: ... and never below this many frozen objects in all.
FROZEN_FLOOR = 2_000_000
#: How often (at most) settle() looks for frozen garbage.
LEAK_CHECK_EVERY_S = 300.0


class GcGuard:
    """The GC policy of a registry: freeze survivors, check for frozen leaks."""

    def __init__(self, freeze_every: int = 2000, collect_every_steps: int = 1000) -> None:
        self.freeze_every = freeze_every
        self.collect_every_steps = collect_every_steps
        self._spawned = 0
        self._steps = 0
        self._live = 0
        self._installed = False
        self._held = False
        self._next_leak_check = time.monotonic() + LEAK_CHECK_EVERY_S
        self.freezes = 0
        self.leak_checks = 0

    def install(self) -> None:
        """Freeze after every generation 1 and 2 collection from now on."""
        if not self._installed:
            gc.callbacks.append(self._after_collection)
            self._installed = True

    def uninstall(self) -> None:
        """Stop freezing after collections."""
        if self._installed:
            gc.callbacks.remove(self._after_collection)
            self._installed = False

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        # gc.freeze() is O(1) (it splices lists); nothing here may walk the heap.
        if phase == "stop" and info.get("generation", 0) >= 1:
            gc.freeze()
            self.freezes += 1

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No collection at all inside (recovery's burst of 100k spawns and first
        rounds); what it made is frozen at the end, in one step.

        Collecting while several hundred thousand long-lived objects are made
        only walks them again and again: young collections every few thousand
        spawns cost a second at 100k (bench recovery).  No collection at the
        end either: with collection off, what died meanwhile was freed by
        reference counting, and a full pass over everything just made would
        cost more than the little cyclic garbage it could find.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        self._held = True
        try:
            yield
        finally:
            self._held = False
            self._spawned = self._steps = 0
            gc.freeze()
            self.freezes += 1
            if was_enabled:
                gc.enable()

    def spawned(self, live: int) -> None:
        """Count a spawn; freeze after a burst of them."""
        self._live = live
        self._spawned += 1
        if self._spawned >= self.freeze_every and not self._held:
            self._spawned = 0
            self._freeze_young()

    def stepped(self) -> None:
        """Count an actor step; collect the young generation after enough of them."""
        self._steps += 1
        if self._steps >= self.collect_every_steps and not self._held:
            self._steps = 0
            self._freeze_young()

    def settle(self) -> None:
        """Freeze what a periodic burst of work left alive (a snapshot round).

        Also the moment to deal with suspected frozen garbage, outside any
        collection.
        """
        now = time.monotonic()
        if now >= self._next_leak_check:
            # get_freeze_count() walks the frozen list (~6 ms per million
            # objects), so it is asked rarely.
            self._next_leak_check = now + LEAK_CHECK_EVERY_S
            frozen = gc.get_freeze_count()
            if frozen > max(FROZEN_FLOOR, FROZEN_PER_ACTOR * self._live):
                self._collect_frozen(frozen)
        self._freeze_young()

    def _freeze_young(self) -> None:
        gc.collect(0)  # drop young garbage first so it is not frozen
        gc.freeze()
        self.freezes += 1

    def ended(self, live: int) -> None:
        """Count an actor that ended."""
        self._live = live

    def _collect_frozen(self, frozen: int) -> None:
        self.leak_checks += 1
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        log.warning(
            "gc: %d objects were frozen for %d live actors; one full collection freed %d",
            frozen,
            self._live,
            found,
        )
