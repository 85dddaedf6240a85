"""Validated batches for in-process benchmarks, made the way ingest makes them."""

from __future__ import annotations

import random
import time

from tippen_rt.events import Batch, parse_batch

from ._loadgen import batch_body


def now_ms() -> int:
    """Wall-clock milliseconds, as the tracker sends them."""
    return time.time_ns() // 1_000_000


def sample_bodies(api_key: str, n: int, *, users: int, events: int, seed: int = 1) -> list[bytes]:
    """``n`` JSON bodies of ``events`` events each, from random users."""
    random.seed(seed)
    now = now_ms()
    return [
        batch_body(api_key, random.randint(1, users), f"s-{seed}-{i}", events, now)
        for i in range(n)
    ]


def sample_batches(api_key: str, n: int, *, users: int, events: int) -> list[Batch]:
    """``n`` validated batches (parsed with the service's own ``parse_batch``)."""
    now = now_ms()
    return [parse_batch(b, now) for b in sample_bodies(api_key, n, users=users, events=events)]
