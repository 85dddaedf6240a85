"""The snapshotter: live actor states to Redis (or SQLite) every few seconds.

It waits until some user's state changed, then writes the states of every
user changed since the last round in one batch, at most once per
``interval_s``, and deletes the snapshots of users who left.  If the backend
fails it keeps serving, reports itself unhealthy, retries with backoff, and
once the backend answers again writes every live state (a restarted Redis
may have lost them all).  On shutdown it writes every state once more.
"""

from __future__ import annotations

import logging
import math

import trio
import trio.lowlevel

from ..clock import Clock
from ..persist._snapshot_store import SnapshotStore
from ._codec import encode_state
from ._registry import Key, Registry

log = logging.getLogger(__name__)

#: States encoded between two checkpoints: keeps one round from holding the loop.
ENCODE_CHUNK = 250


class Snapshotter:
    """Start with ``await nursery.start(snapshotter.run)`` after recovery."""

    def __init__(
        self,
        registry: Registry,
        snapshots: SnapshotStore,
        clock: Clock,
        *,
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
        self._deleted: set[Key] = set()
        self._resync_all = False
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
        if self._resync_all:
            keys |= {s.key for s in self._registry.states()}
        snapshots: dict[Key, bytes] = {}
        now = self._clock.now()
        for i, key in enumerate(keys):
            state, live = self._registry.state_for_flush(key)
            if live and state is not None:
                snapshots[key] = encode_state(state, now)
            else:
                self._deleted.add(key)
            if i % ENCODE_CHUNK == ENCODE_CHUNK - 1:
                await trio.lowlevel.checkpoint()
        deleted = set(self._deleted)
        for key in snapshots:
            deleted.discard(key)  # a user who left and came back
        try:
            lost = await self._snapshots.save(snapshots, deleted)
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
        return True
