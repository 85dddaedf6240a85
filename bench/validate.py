"""The CPU ceiling of the pure part of ingest: parse and validate batches.

``parse_batch`` (orjson decode + strict validation into frozen dataclasses)
runs on the event loop thread for every request, so its cost per batch is a
floor under ingest's CPU per request.  One core, no I/O.
"""

from __future__ import annotations

import time

from tippen_rt.events import parse_batch

from ._batches import now_ms, sample_bodies
from ._options import Options
from ._report import Report, Table

NAME = "validate"
DESCRIPTION = "CPU ceiling: parse_batch (orjson + validation) of 50-event bodies, one core"


def run(opts: Options) -> Report:
    """Parse the same sample bodies in a loop for a fifth of ``duration_s``."""
    seconds = max(1.0, opts.duration_s / 5)
    bodies = sample_bodies("client_bench", 200, users=opts.users, events=opts.events)
    now = now_ms()
    n = 0
    start = time.perf_counter()
    cpu_start = time.thread_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for body in bodies:
            parse_batch(body, now)
        n += len(bodies)
    elapsed = time.perf_counter() - start
    cpu = time.thread_time() - cpu_start
    per_s = n / elapsed
    # CPU time per batch is steadier than wall time when other processes compete.
    cpu_us = 1e6 * cpu / n
    size = sum(len(b) for b in bodies) / len(bodies)
    report = Report(NAME, params={"seconds": seconds, "events_per_batch": opts.events})
    table = Table(
        f"parse_batch on one core ({seconds:g} s, {size:,.0f}-byte bodies)",
        ["step", "batches/s", "events/s", "wall µs per batch", "CPU µs per batch"],
    )
    table.add("parse_batch", per_s, per_s * opts.events, 1e6 / per_s, cpu_us)
    report.tables.append(table)
    report.figures.update(
        parse_batches_per_s=round(per_s, 1),
        parse_events_per_s=round(per_s * opts.events, 1),
        parse_us_per_batch=round(1e6 / per_s, 1),
        parse_cpu_us_per_batch=round(cpu_us, 1),
        body_bytes=round(size),
    )
    return report
