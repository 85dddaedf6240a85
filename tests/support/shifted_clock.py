"""Run ``python -m tippen_rt ARGS...`` with its wall clock moved ahead.

Usage: ``python shifted_clock.py SHIFT_S ARGS...``.  ``time.time`` and
``time.time_ns`` read ``SHIFT_S`` seconds later than the real clock for the
whole life of the process (monotonic clocks, and so trio's, are untouched).

A restart with a larger shift than the process before it is a restart after
that much downtime: what SQLite and the snapshots hold is that much older,
without the test waiting for it (tests/integration/test_crash_sequences.py).
Run as a script, not imported: the clock is patched before ``tippen_rt`` is.
"""

from __future__ import annotations

import os
import runpy
import sys
import time


def main() -> None:
    shift_s = float(sys.argv[1])
    shift_ns = int(shift_s * 1_000_000_000)
    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: real_time() + shift_s
    time.time_ns = lambda: real_time_ns() + shift_ns
    sys.argv = ["tippen_rt", *sys.argv[2:]]
    # As ``python -m`` would have it: the working directory first, not this
    # script's directory (whose modules could shadow others).
    sys.path[0] = os.getcwd()
    runpy.run_module("tippen_rt", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
