"""Keeps ``user_activity_summary`` current with coalesced writes.

Actors mark their user dirty on every change; this service waits until there
is something dirty, lets changes gather for ``coalesce_s``, then writes every
dirty user's summary in one EventStore job.  One write per user per window,
however many events arrived: not one write per event.
"""

from __future__ import annotations

import logging

import trio

from ..clock import Clock
from ..persist import EventStore, SummaryRow, upsert_summaries
from ._dirty import DirtySet
from ._registry import Key, Registry
from ._state import UserState

log = logging.getLogger(__name__)


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


def summary_row(state: UserState, now: float, live: bool) -> SummaryRow:
    """The summary row for ``state`` at ``now``."""
    return SummaryRow(
        tenant_id=state.tenant_id,
        user_id=state.user_id,
        email=state.email,
        tier=state.tier,
        session_started_at=int(state.session_started_at * 1000),
        last_active_at=int(state.last_event_at * 1000),
        current_route=state.current_route,
        time_on_current_page=int(
            state.time_on_current_page(now if live else state.last_event_at) * 1000
        ),
        session_events=state.total_events,
        session_errors=state.total_errors,
        last_error_at=_ms(state.last_error_at),
        needs_support=state.needs_support,
        support_reasons=tuple(t.value for t, _, _ in state.active),
        support_triggered_at=_ms(state.support_triggered_at),
        session_open=live,
        updated_at=int(now * 1000),
        name=state.name,
    )


class SummaryWriter:
    """Start with ``await nursery.start(writer.run)`` after the registry."""

    def __init__(
        self, registry: Registry, store: EventStore, clock: Clock, *, coalesce_s: float = 1.0
    ) -> None:
        self._registry = registry
        self._store = store
        self._clock = clock
        self._coalesce_s = coalesce_s
        self._dirty = registry.watch()
        self.writes = 0
        self.rows = 0
        self.in_flight = False

    @property
    def pending(self) -> DirtySet[Key]:
        """Users whose summary is not yet written."""
        return self._dirty

    async def run(
        self, *, task_status: trio.TaskStatus[SummaryWriter] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Flush dirty summaries until cancelled; flush once more on the way out."""
        task_status.started(self)
        try:
            while True:
                await self._dirty.wait()
                await trio.sleep(self._coalesce_s)
                await self.flush()
        finally:
            with trio.CancelScope(shield=True):
                await self.flush()

    async def flush(self) -> int:
        """Write every dirty user's summary now; return how many."""
        keys = self._dirty.take()
        if not keys:
            return 0
        rows = self._rows(keys)
        if rows:
            self.in_flight = True
            try:
                await self._store.write(lambda conn: upsert_summaries(conn, rows), rows=len(rows))
            finally:
                self.in_flight = False
            self.writes += 1
            self.rows += len(rows)
        return len(rows)

    def _rows(self, keys: set[Key]) -> list[SummaryRow]:
        now = self._clock.now()
        rows = []
        for key in keys:
            state, live = self._registry.state_for_flush(key)
            if state is not None:
                rows.append(summary_row(state, now, live))
        return rows
