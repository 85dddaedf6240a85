"""``GET /metrics``: the process's figures in Prometheus' text format.

Only with ``Authorization: Bearer <TIPPEN_OPERATOR_TOKEN>``, as /readyz's
details; without the token set, never (401).  A localhost bind is no
protection here: a reverse proxy on the same host makes every request local.

Nothing is counted for this page.  It reads, at scrape time, what the parts
already keep: the ingest guards' counters, ``EventStore.stats()`` and its
commit-time histogram, the Registry (live users and their presence), the
Feed's trigger counts, ``NotifierStats``, ``Hub.stats()``, the snapshotter,
the loop-lag and GC probes, plus prometheus-client's process and platform
collectors (memory, CPU, open files, Python version).  Live users are
labelled by tenant and presence; at most ``TIPPEN_METRICS_TENANTS`` tenants
(those with the most live users) by name, the rest as ``other``, so the
number of series stays bounded however many tenants there are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import trio
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from quart import Blueprint, Response, current_app, request

from ..actors import Trigger
from ..events import BadInput
from ..observe import Histogram
from ._errors import error_response
from ._health import is_operator
from ._server import live_connections
from ._services import AppServices, Probes, services

__all__ = ["METRICS_PATH", "OTHER_TENANTS", "count_live_users", "metric_families", "metrics"]

metrics = Blueprint("metrics", __name__)

METRICS_PATH = "/metrics"
#: The tenant label of the live users of tenants beyond TIPPEN_METRICS_TENANTS.
OTHER_TENANTS = "other"
#: Live states counted between two checkpoints, so 100,000 users never hold the loop long.
_STATES_PER_CHECKPOINT = 5_000


@dataclass
class LiveUsers:
    """Live users by (tenant label, presence), the tenant labels bounded."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)


async def count_live_users(svc: AppServices, max_tenants: int) -> LiveUsers:
    """Live users by tenant and presence: the ``max_tenants`` tenants with the
    most live users by name, the rest as :data:`OTHER_TENANTS`."""
    out = LiveUsers()
    if svc.registry is None:
        return out
    by_tenant: Counter[tuple[int, str]] = Counter()
    for i, state in enumerate(svc.registry.states(), 1):
        by_tenant[(state.tenant_id, state.presence)] += 1
        if i % _STATES_PER_CHECKPOINT == 0:
            await trio.lowlevel.checkpoint()
    totals: Counter[int] = Counter()
    for (tenant_id, _), n in by_tenant.items():
        totals[tenant_id] += n
    named = {
        tenant_id
        for tenant_id, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))[
            :max_tenants
        ]
    }
    names = {t.id: t.name for t in svc.tenants.all()}
    for (tenant_id, presence), n in by_tenant.items():
        label = names.get(tenant_id, f"#{tenant_id}") if tenant_id in named else OTHER_TENANTS
        out.counts[(label, presence)] += n
    return out


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _histogram(
    name: str, doc: str, histograms: Iterable[tuple[tuple[str, ...], Histogram]], labels: list[str]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, h in histograms:
        family.add_metric(list(values), h.cumulative(), sum_value=h.sum)
    return family


def metric_families(svc: AppServices, live: LiveUsers, probes: Probes) -> list[Metric]:
    """Every tippen_* metric family, read from the services' own counters."""
    out: list[Metric] = []
    guards = svc.guards
    requests = CounterMetricFamily(
        "tippen_ingest_requests", "Ingest POSTs answered, by HTTP status.", labels=["status"]
    )
    for status, n in sorted(guards.responses.items()):
        requests.add_metric([str(status)], n)
    out += [
        requests,
        _gauge("tippen_ingest_in_flight", "Ingest requests being handled now.", guards.inflight),
        _counter(
            "tippen_ingest_shed",
            "Ingest requests refused with 503: too many in flight.",
            guards.shed,
        ),
        _counter(
            "tippen_ingest_rate_limited",
            "Ingest requests refused with 429 by the per-address or per-key rate limits.",
            guards.limited,
        ),
        _counter(
            "tippen_ingest_new_users_refused",
            "New users refused with 429: their tenant was at max_live_users.",
            guards.users_refused,
        ),
        _counter(
            "tippen_events_stored",
            "Events committed to SQLite by ingest (retried duplicates not counted).",
            guards.events_stored,
        ),
    ]
    store = svc.store.stats()
    out += [
        _gauge("tippen_store_queue_jobs", "Jobs waiting for the SQLite writer.", store.queued_jobs),
        _gauge(
            "tippen_store_queue_capacity",
            "Jobs the writer queue holds; when full, ingest answers 503.",
            store.queue_capacity,
        ),
        _counter("tippen_store_commits", "Group commits done.", store.commits),
        _counter("tippen_store_jobs", "Jobs committed (each ingest batch is one).", store.jobs),
        _histogram(
            "tippen_store_commit_seconds",
            "Time from handing a commit group to the writer thread to its COMMIT.",
            [((), svc.store.commit_seconds)],
            [],
        ),
        _gauge(
            "tippen_store_accepting", "1 while the store takes writes.", int(svc.store.accepting)
        ),
    ]
    if svc.registry is not None:
        users = GaugeMetricFamily(
            "tippen_live_users",
            f"Live users by tenant (the {svc.settings.metrics_tenants} with the most by name,"
            f" the rest as {OTHER_TENANTS!r}) and presence.",
            labels=["tenant", "presence"],
        )
        for (tenant, presence), n in sorted(live.counts.items()):
            users.add_metric([tenant, presence], n)
        stats = svc.registry.stats()
        out += [
            users,
            _counter("tippen_live_users_started", "Live users' actors started.", stats["spawned"]),
            _counter("tippen_live_users_ended", "Live users' actors ended.", stats["ended"]),
            _counter(
                "tippen_live_changes_dropped",
                "State changes not queued for the dashboards (they resync instead).",
                stats["changes_dropped"],
            ),
        ]
    if svc.feed is not None:
        fired = CounterMetricFamily(
            "tippen_triggers_fired", "Support triggers fired, by trigger.", labels=["trigger"]
        )
        cleared = CounterMetricFamily(
            "tippen_triggers_cleared",
            "Support triggers cleared (recovered, left, switched off), by trigger.",
            labels=["trigger"],
        )
        for family, counts in ((fired, svc.feed.fired), (cleared, svc.feed.cleared)):
            for trigger in Trigger:  # every one, 0 until it fires: no series appears late
                family.add_metric([trigger.value], counts.get(trigger.value, 0))
        out += [fired, cleared]
    if svc.notifier is not None:
        alerts = svc.notifier.stats
        deliveries = CounterMetricFamily(
            "tippen_alert_deliveries",
            "What became of alerts' Slack messages, by state: posted, updated (bot mode),"
            " suppressed (per-user rate limit or no Slack target), held_back (tenant budget),"
            " failed (retry window over).",
            labels=["state"],
        )
        for state, value in (
            ("posted", alerts.posted),
            ("updated", alerts.updated),
            ("suppressed", alerts.suppressed),
            ("held_back", alerts.held_back),
            ("failed", alerts.failed),
        ):
            deliveries.add_metric([state], value)
        out += [
            _counter("tippen_alerts_recorded", "Support alerts recorded.", alerts.recorded),
            deliveries,
            _counter("tippen_alert_delivery_retries", "Slack deliveries retried.", alerts.retries),
            _counter(
                "tippen_alert_digests", "Digest messages for held-back alerts.", alerts.digests
            ),
            _counter(
                "tippen_alert_queue_overflows",
                "Times the delivery queue was full (deliveries then wait for a sweep).",
                alerts.overflows,
            ),
        ]
    if svc.hub is not None:
        hub = svc.hub.stats()
        out += [
            _gauge("tippen_hub_subscribers", "Open dashboard WebSockets.", hub["subscribers"]),
            _counter(
                "tippen_hub_resyncs",
                "Dashboards sent a fresh snapshot after lagging.",
                hub["resyncs"],
            ),
            _counter(
                "tippen_hub_updates_sent", "User updates sent to dashboards.", hub["sent_updates"]
            ),
            _counter(
                "tippen_hub_updates_coalesced",
                "User updates merged into a later one (at most one per user per interval).",
                hub["coalesced"],
            ),
        ]
    if svc.snapshotter is not None:
        out += [
            _counter("tippen_snapshot_rounds", "Snapshot rounds written.", svc.snapshotter.rounds),
            _gauge(
                "tippen_snapshot_healthy",
                "1 while the last snapshot round succeeded.",
                int(svc.snapshotter.healthy),
            ),
        ]
    out.append(_gauge("tippen_http_connections", "Open HTTP connections.", live_connections()))
    if probes.loop_lag is not None:
        out.append(
            _histogram(
                "tippen_event_loop_lag_seconds",
                f"How late a timer woke (sampled every {probes.loop_lag.interval_s:g} s):"
                " every live user's next rule is that late too.",
                [((), probes.loop_lag.lag)],
                [],
            )
        )
    if probes.gc_pauses is not None:
        out.append(
            _histogram(
                "tippen_gc_pause_seconds",
                "Pauses of CPython's cyclic garbage collector, by generation.",
                [((str(g),), h) for g, h in probes.gc_pauses.pauses.items()],
                ["generation"],
            )
        )
    return out


class _Families(Collector):
    """Hands prometheus-client the families gathered for the scrape in progress."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


@dataclass
class _Exposition:
    registry: CollectorRegistry
    families: _Families


def _exposition() -> _Exposition:
    found = current_app.extensions.get("tippen_metrics")
    if found is None:
        registry = CollectorRegistry(auto_describe=False)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
        families = _Families()
        registry.register(families)
        found = current_app.extensions["tippen_metrics"] = _Exposition(registry, families)
    assert isinstance(found, _Exposition)
    return found


def _probes(svc: AppServices) -> Probes:
    return svc.probes if svc.probes is not None else Probes()


@metrics.get(METRICS_PATH)
async def metrics_page() -> Response:
    """Prometheus' text format (or OpenMetrics, if the scraper's Accept header
    asks for it), for the operator token only."""
    svc = services()
    if not svc.settings.operator_token:
        return _unauthorized("set TIPPEN_OPERATOR_TOKEN to scrape /metrics with it")
    if not is_operator(svc.settings.operator_token):
        return _unauthorized("send Authorization: Bearer <TIPPEN_OPERATOR_TOKEN>")
    live = await count_live_users(svc, svc.settings.metrics_tenants)
    exposition = _exposition()
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    # No checkpoint between these: the families are the ones of this scrape.
    exposition.families.families = metric_families(svc, live, _probes(svc))
    body = encode(exposition.registry)
    exposition.families.families = []
    return Response(
        body,
        status=200,
        content_type=content_type,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def _unauthorized(message: str) -> Response:
    return error_response(
        BadInput("operator_token_required", message, None, status=401),
        {"WWW-Authenticate": 'Bearer realm="tippen-rt operator"', "Cache-Control": "no-store"},
    )
