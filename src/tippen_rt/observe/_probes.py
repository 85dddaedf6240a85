"""What the process itself feels: event-loop lag and garbage-collection pauses.

Loop lag is how late a task that asked to wake at a deadline actually woke:
every timer in the process (each live user's next rule) is late by as much.
The probe sleeps to a deadline every ``interval_s`` and records the lateness;
it is the one timer here that exists only to be measured.

GC pauses are timed from ``gc.callbacks``: CPython calls the hook at the start
and the end of every collection, in the thread that triggered it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from ._histogram import Histogram

__all__ = ["GcPauses", "LoopLagProbe"]

#: Lateness bounds, seconds: a healthy loop is under a millisecond.
LAG_BOUNDS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Pause bounds, seconds: young collections take microseconds, full ones more.
GC_BOUNDS_S = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class LoopLagProbe:
    """Start with ``await nursery.start(probe.run)``; read :attr:`lag`."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.lag = Histogram(LAG_BOUNDS_S)
        #: The worst lateness seen since start, seconds.
        self.worst_s = 0.0

    async def run(
        self, *, task_status: trio.TaskStatus[LoopLagProbe] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Wake at a deadline every ``interval_s`` and record how late it was, until cancelled."""
        task_status.started(self)
        while True:
            deadline = trio.current_time() + self.interval_s
            await trio.sleep_until(deadline)
            late = max(0.0, trio.current_time() - deadline)
            self.lag.observe(late)
            if late > self.worst_s:
                self.worst_s = late


class GcPauses:
    """Pauses of CPython's cyclic GC, per generation, while :meth:`installed` runs."""

    GENERATIONS = (0, 1, 2)

    def __init__(self) -> None:
        self.pauses = {g: Histogram(GC_BOUNDS_S) for g in self.GENERATIONS}
        self._started = 0.0

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        # No locks, no logging: the collection may have started anywhere.
        if phase == "start":
            self._started = time.perf_counter()
            return
        pauses = self.pauses.get(info.get("generation", 2))
        if pauses is not None and self._started:
            pauses.observe(time.perf_counter() - self._started)
            self._started = 0.0

    @contextmanager
    def installed(self) -> Iterator[GcPauses]:
        """Time every collection until the block ends."""
        gc.callbacks.append(self._hook)
        try:
            yield self
        finally:
            gc.callbacks.remove(self._hook)
