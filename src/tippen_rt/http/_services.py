"""What the HTTP layer needs from the rest of the process, in one object."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from quart import current_app

from ..actors import Feed, RecoveryReport, Registry, Snapshotter
from ..alerts import Notifier, SlackDefaults
from ..calls import CallBoard
from ..config import Settings
from ..events import Batch, Limits
from ..observe import GcPauses, LoopLagProbe
from ..persist import EventStore
from ..persist._snapshot_store import SnapshotStore
from ..tenants import Tenant
from ._hub import Hub
from ._rate_limit import TokenBuckets
from ._tenant_directory import TenantDirectory
from ._views import settings_json


class BatchSink(Protocol):
    """Where committed batches go next (the actors' Registry)."""

    async def deliver(self, tenant: Tenant, batch: Batch) -> None:
        """Hand over a committed batch; may wait (backpressure)."""


class DiscardSink:
    """A sink that drops batches: for a store-only process and for benchmarks."""

    async def deliver(self, tenant: Tenant, batch: Batch) -> None:
        """Drop ``batch``."""


def wall_clock_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass
class AppServices:
    """The services one app instance talks to."""

    settings: Settings
    store: EventStore
    tenants: TenantDirectory
    sink: BatchSink = field(default_factory=DiscardSink)
    wall_ms: Callable[[], int] = wall_clock_ms
    #: The live users (None in a store-only app, as some tests build).
    registry: Registry | None = None
    feed: Feed | None = None
    #: Saved live state (None until the snapshotter runs).
    snapshots: SnapshotStore | None = None
    #: Live updates for admin dashboards (None without live users).
    hub: Hub | None = None
    snapshotter: Snapshotter | None = None
    recovery: RecoveryReport | None = None
    #: Support alerts and their Slack delivery (None in apps built without one).
    notifier: Notifier | None = None
    #: Loop-lag and GC probes for /metrics (None: not running).
    probes: Probes | None = None
    #: Video call invitations waiting for their user's answer (None: none are sent).
    calls: CallBoard | None = None

    #: Rate limits and the in-flight count of the ingest endpoint.
    guards: IngestGuards = field(init=False)

    def __post_init__(self) -> None:
        self.guards = IngestGuards(self.settings)
        self.tenants.on_removed(self.forget_tenant)
        self.tenants.on_settings_change(self.settings_changed)

    def forget_tenant(self, tenant_id: int) -> None:
        """A tenant was removed with its data: end its live users' actors at once,
        without a summary, alert or goodbye (their snapshots go with the next round)."""
        if self.registry is None:
            return
        at = self.wall_ms() / 1000
        for user_id in self.registry.drop_tenant(tenant_id):
            if self.hub is not None:
                self.hub.user_gone(tenant_id, user_id, "removed", at)

    def settings_changed(self, tenant: Tenant) -> None:
        """A tenant's settings changed: its open dashboards show the new ones."""
        if self.hub is not None:
            self.hub.settings_changed(tenant.id, self.settings_json(tenant))

    def settings_json(self, tenant: Tenant) -> dict[str, Any]:
        """``tenant``'s settings as its dashboards show them (service Slack defaults included)."""
        return settings_json(tenant, self.slack_defaults)

    @cached_property
    def slack_defaults(self) -> SlackDefaults:
        """The service's own Slack target, for tenants that set none."""
        return SlackDefaults.from_settings(self.settings)

    @cached_property
    def limits(self) -> Limits:
        """Batch limits from the settings."""
        return Limits(
            max_events=self.settings.max_events_per_batch,
            max_clock_skew_ms=int(self.settings.max_clock_skew_s * 1000),
        )


@dataclass
class Probes:
    """The process probes /metrics reports (None: not running in this app)."""

    loop_lag: LoopLagProbe | None = None
    gc_pauses: GcPauses | None = None


class IngestGuards:
    """Load shedding for ingest (token buckets, an in-flight ceiling) and its counters."""

    def __init__(self, settings: Settings) -> None:
        self.per_key = TokenBuckets(settings.ingest_rate_per_key, settings.ingest_burst_per_key)
        self.per_address = TokenBuckets(
            settings.ingest_rate_per_address, settings.ingest_burst_per_address
        )
        self.max_inflight = settings.max_inflight_requests
        self.inflight = 0
        self.shed = 0
        self.limited = 0
        #: New users refused because their tenant was at max_live_users.
        self.users_refused = 0
        #: Answers to ingest POSTs since start, by HTTP status.
        self.responses: Counter[int] = Counter()
        #: Events committed by ingest (a retried batch's duplicates are not).
        self.events_stored = 0


def services() -> AppServices:
    """The services of the app serving the current request."""
    svc: AppServices = current_app.extensions["tippen"]
    return svc
