"""A histogram of observations by upper bound, kept by whoever observes them.

Prometheus' client keeps its metrics behind locks, which a ``gc.callbacks``
hook must not take (the collection may start while this very thread holds
one).  This one is a list of counts that only the observing thread changes;
``/metrics`` reads it in the trio thread and turns it into Prometheus' text.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

__all__ = ["LATENCY_BOUNDS_S", "Histogram"]

#: Upper bounds, in seconds, for latencies from 0.1 ms to 10 s.
LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Histogram:
    """Observations counted by the first bound they do not exceed (and +Inf)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BOUNDS_S) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation of ``value``."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(upper bound, observations at or below it), ..., ("+Inf", all)]``."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
