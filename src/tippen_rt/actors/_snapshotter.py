"""The snapshotter: live actor states to Redis (or SQLite) every few seconds.

It waits until some user's state changed, then writes the states of every
user changed since the last round in one batch, at most once per
``interval_s``, and deletes the snapshots of users who left.  If the backend
fails it keeps serving, reports itself unhealthy, retries with backoff, and
once the backend answers again writes every live state (a restarted Redis
may have lost them all).  On shutdown it writes every state once more.

The watermark a round writes promises that every user live at that instant
has a current snapshot.  So the first round after start writes every live
user (those restored at start are in no snapshot yet, or in one this process
cannot vouch for), and so does the round after any failure or data loss.
"""

from __future__ import annotations

import logging
import math
import time

import trio
import trio.lowlevel

from ..clock import Clock
from ..persist._snapshot_store import SnapshotStore
from ._codec import encode_state
from ._gc import GcGuard
from ._registry import Key, Registry

log = logging.getLogger(__name__)

#: Encoding yields to other tasks after this much time: one round of 10k
#: states must not hold back actors whose deadlines come due meanwhile.
ENCODE_SLICE_S = 0.001


class Snapshotter:
    """Start with ``await nursery.start(snapshotter.run)`` after recovery."""

    def __init__(
        self,
        registry: Registry,
        snapshots: SnapshotStore,
        clock: Clock,
        *,
        gc_guard: GcGuard | None = None,
        interval_s: float = 2.0,
        max_backoff_s: float = 30.0,
        final_save_s: float = 10.0,
    ) -> None:
        self._registry = registry
        self._snapshots = snapshots
        self._clock = clock
        self._interval_s = interval_s
        self._max_backoff_s = max_backoff_s
        self._final_save_s = final_save_s
        self._dirty = registry.watch()
        self._gc = gc_guard or registry.gc_guard
        self._deleted: set[Key] = set()
        #: Write every live state in the next round (see the module docstring).
        self._resync_all = True
        self._last_round = -math.inf
        self.healthy = True
        self.last_error: str | None = None
        self.rounds = 0
        self.written = 0
        self.deleted = 0

    @property
    def backend(self) -> str:
        """Which store the snapshots go to."""
        return self._snapshots.name

    async def run(
        self, *, task_status: trio.TaskStatus[Snapshotter] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Write rounds until cancelled; then write every live state once more."""
        task_status.started(self)
        self._dirty.poke()  # the first round writes everyone restored at start
        backoff = 1.0
        try:
            while True:
                await self._dirty.wait()
                await trio.sleep_until(self._last_round + self._interval_s)
                self._last_round = trio.current_time()
                if await self.save_round():
                    backoff = 1.0
                else:
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff_s)
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(self._final_save_s) as scope:
                    self._resync_all = True
                    await self.save_round()
                if scope.cancelled_caught:
                    log.error("final snapshot did not finish in %.0f s", self._final_save_s)

    async def save_round(self) -> bool:
        """Write what changed since the last round; False if the backend failed."""
        keys = self._dirty.take()
        # Every change before this instant is in this round or an earlier one.
        watermark = self._clock.now()
        if self._resync_all:
            keys |= {s.key for s in self._registry.states()}
        snapshots: dict[Key, bytes] = {}
        slice_ends = time.perf_counter() + ENCODE_SLICE_S
        for key in keys:
            state, live = self._registry.state_for_flush(key)
            if live and state is not None:
                snapshots[key] = encode_state(state, watermark)
            else:
                self._deleted.add(key)
            if time.perf_counter() >= slice_ends:
                await trio.lowlevel.checkpoint()
                slice_ends = time.perf_counter() + ENCODE_SLICE_S
        deleted = self._deleted - snapshots.keys()  # a user may have left and come back
        try:
            lost = await self._snapshots.save(snapshots, deleted, watermark)
        except Exception as exc:
            if self.healthy:
                log.error("snapshot backend %s failed: %s", self.backend, exc)
            self.healthy = False
            self.last_error = str(exc) or type(exc).__name__
            self._resync_all = True  # it may have lost what it had
            self._dirty.poke()  # try again (after the caller's backoff)
            return False
        if not self.healthy:
            log.info("snapshot backend %s is back; wrote all live states", self.backend)
        if lost:
            log.warning("snapshot backend %s lost its data; writing all live states", self.backend)
            self._dirty.poke()
        self.healthy = True
        self.last_error = None
        self._resync_all = lost
        self._deleted -= deleted
        self.rounds += 1
        self.written += len(snapshots)
        self.deleted += len(deleted)
        self._gc.settle()
        return True
