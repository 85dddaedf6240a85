"""Token buckets in memory: per API key and per client address on ingest.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a request
takes one.  An empty bucket answers with the seconds until the next token, for
``Retry-After``.  Buckets are kept only while they are below full: a full
bucket is the same as no bucket, so the map is pruned of them when it grows,
and memory stays bounded by the number of clients actually being limited.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

import trio


class TokenBuckets:
    """One token bucket per key."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(burst, 1.0)
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)

    @property
    def enabled(self) -> bool:
        """A rate of 0 switches limiting off."""
        return self.rate_per_s > 0

    def take(self, key: Hashable) -> float:
        """Take a token for ``key``: 0.0 if allowed, else seconds to wait."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self._max_keys:
                self._prune(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate_per_s

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate_per_s
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
        if len(self._buckets) > self._max_keys:
            # Still too many clients limited at once: forget the oldest half.
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1][1])
            self._buckets = dict(keep[len(keep) // 2 :])

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(wait_s: float) -> str:
    """Whole seconds for ``Retry-After``, at least 1."""
    return str(max(1, math.ceil(wait_s)))
