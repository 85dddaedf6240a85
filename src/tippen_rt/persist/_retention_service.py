"""The retention service: sleeps until data is due to expire, then deletes it.

It computes when the oldest stored event passes its tenant's retention period
and sleeps until then (at most ``max_sleep_s``, so a tenant whose retention is
shortened is honoured within that time).  Deletes go in batches of
``batch_rows``, one EventStore job each: ingest commits slip in between them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import trio

from ..clock import Clock
from ._event_store import EventStore
from ._retention import (
    BATCH_ID_RETENTION_MS,
    delete_old_batch_ids,
    delete_old_events,
    delete_old_summaries,
    oldest_event_ms,
)
from ._tenants import list_tenants

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0


@dataclass
class SweepReport:
    """What one sweep deleted."""

    events: int = 0
    summaries: int = 0
    batch_ids: int = 0
    transactions: int = 0


class RetentionService:
    """Start with ``await nursery.start(service.run)``."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        *,
        batch_rows: int = 1000,
        min_sleep_s: float = 60.0,
        max_sleep_s: float = 3600.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._batch_rows = batch_rows
        self._min_sleep_s = min_sleep_s
        self._max_sleep_s = max_sleep_s
        self.sweeps = 0
        self.deleted_events = 0
        self._scope = trio.CancelScope()

    async def run(
        self, *, task_status: trio.TaskStatus[RetentionService] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Sweep, then sleep until the next expiry, until :meth:`stop` or cancelled."""
        task_status.started(self)
        with self._scope:
            while True:
                await self.sweep()
                await trio.sleep(await self.seconds_until_due())

    def stop(self) -> None:
        """End :meth:`run` (a sweep in progress stops between transactions)."""
        self._scope.cancel()

    async def seconds_until_due(self) -> float:
        """How long until the oldest event expires (bounded by min and max sleep)."""
        tenants = await self._store.read(list_tenants)
        oldest = await self._store.read(oldest_event_ms)
        if oldest is None or not tenants:
            return self._max_sleep_s
        shortest_days = min(t.settings.retention_days for t in tenants)
        due = oldest / 1000 + shortest_days * DAY_S
        wait = due - self._clock.now()
        return min(self._max_sleep_s, max(self._min_sleep_s, wait))

    async def sweep(self) -> SweepReport:
        """Delete everything past retention now, in small transactions."""
        report = SweepReport()
        now_ms = self._clock.now_ms()
        for tenant in await self._store.read(list_tenants):
            cutoff_ms = now_ms - int(tenant.settings.retention_days * DAY_S * 1000)
            tid = tenant.id
            while True:
                n = await self._store.write(
                    partial(
                        delete_old_events,
                        tenant_id=tid,
                        cutoff_ms=cutoff_ms,
                        limit=self._batch_rows,
                    ),
                    rows=self._batch_rows,
                )
                report.events += n
                report.transactions += 1
                if n < self._batch_rows:
                    break
            report.summaries += await self._store.write(
                partial(delete_old_summaries, tenant_id=tid, cutoff_ms=cutoff_ms)
            )
        batch_cutoff = now_ms - BATCH_ID_RETENTION_MS
        while True:
            n = await self._store.write(
                lambda c: delete_old_batch_ids(c, batch_cutoff, self._batch_rows),
                rows=self._batch_rows,
            )
            report.batch_ids += n
            report.transactions += 1
            if n < self._batch_rows:
                break
        self.sweeps += 1
        self.deleted_events += report.events
        if report.events or report.summaries:
            log.info(
                "retention: deleted %d events, %d summaries, %d batch ids",
                report.events,
                report.summaries,
                report.batch_ids,
            )
        return report
