"""The observe package: histograms, the GC and loop-lag probes, JSON log lines."""

from __future__ import annotations

import gc
import io
import logging

import orjson
import trio
import trio.testing

from tippen_rt.observe import GcPauses, Histogram, JsonFormatter, LoopLagProbe, configure_logging


def test_histogram_counts_by_upper_bound_cumulatively() -> None:
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        h.observe(value)
    assert h.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert (h.count, h.sum) == (4, 3.65)


def test_gc_pauses_are_timed_per_generation_while_installed() -> None:
    pauses = GcPauses()
    with pauses.installed():
        gc.collect(0)
        gc.collect(2)
    gc.collect(1)  # not any more
    assert [pauses.pauses[g].count for g in (0, 1, 2)] == [1, 0, 1]
    assert pauses.pauses[2].sum >= 0


async def test_the_loop_lag_probe_samples_every_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        probe = await nursery.start(LoopLagProbe(interval_s=0.5).run)
        await trio.sleep(2.25)
        nursery.cancel_scope.cancel()
    assert probe.lag.count == 4
    assert probe.worst_s == 0.0  # virtual time: nothing is ever late


def test_json_log_records_are_one_line_each_with_their_fields() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("INFO", "json", stream=out)
    try:
        log = logging.getLogger("tippen_rt.test")
        log.info("two\nlines %s", "here", extra={"status": 201})
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            log.exception("failed")
        log.debug("not at INFO")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert first["message"] == "two\nlines here" and first["status"] == 201
    assert (first["level"], first["logger"]) == ("INFO", "tippen_rt.test")
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: bad\nvalue" in second["exception"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)
