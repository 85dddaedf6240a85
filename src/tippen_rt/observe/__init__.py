"""What operators watch: histograms, the loop-lag and GC probes, log formats.

A leaf package: the store, the HTTP layer and the CLI use it; it uses none of them.
"""

from ._histogram import LATENCY_BOUNDS_S, Histogram
from ._logs import LOG_FORMATS, JsonFormatter, configure_logging
from ._probes import GcPauses, LoopLagProbe

__all__ = [
    "LATENCY_BOUNDS_S",
    "LOG_FORMATS",
    "GcPauses",
    "Histogram",
    "JsonFormatter",
    "LoopLagProbe",
    "configure_logging",
]
