"""Options shared by every benchmark, set from ``python -m bench`` flags."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Options:
    """Run-wide knobs. Durations are per measured phase, in seconds."""

    #: Measured time per target (ingest, no-op) or per store scenario.
    duration_s: float = 15.0
    #: Unmeasured load before each measured phase.
    warmup_s: float = 3.0
    #: Keep-alive connections of the HTTP load generator.
    connections: int = 50
    #: wrk threads (each is one event loop on one core).
    threads: int = 1
    #: Distinct user ids the batches are spread over.
    users: int = 1000
    #: Events per batch (the tracker's maximum is 50).
    events: int = 50
    #: Offered load of the paced latency phase, req/s (0 = skip it).  The default is
    #: 1,000 users each sending a batch every 5 s, as the tracker does.
    rate_per_s: float = 200.0
    #: "auto" (wrk if installed), "wrk" or "trio".
    loadgen: str = "auto"
    #: Seconds of py-spy sampling of the ingest server after the measured phases (0 = off).
    profile_s: float = 0.0
    #: Benchmarks that compare before and after (``presence``) also run the service
    #: at this git revision as "before": "auto" (HEAD if src/ has uncommitted
    #: changes, else the commit before the one measured), a revision, or "none".
    baseline: str = "auto"
    #: ``--quick``: a smoke run; benchmarks may shrink their population and times.
    quick: bool = False
