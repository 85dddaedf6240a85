"""Start-up recovery: bring every live user back before requests are accepted.

1. Load every snapshot (Redis or SQLite) and decode it.
2. Replay from SQLite, the source of truth, the events each user sent after
   their snapshot was taken; users with no snapshot (first seen after the last
   round, or every user if the snapshots are missing or unreachable) are
   rebuilt from the events of the last ``replay_window_s``.
3. Recreate each actor.  Times in the state are wall-clock, so deadlines
   re-arm at the right moment: a trigger that came due while the process was
   down fires right after start; a trigger already fired is still "active" and
   does not fire (or alert) again; a session whose timeout passed ends properly.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import trio

from ..clock import Clock
from ..events import Batch, Event, EventType, read_heartbeat_data
from ..persist import EventStore
from ..persist._snapshot_store import SnapshotStore
from ..tenants import Tenant, TenantSettings
from ._codec import SnapshotError, decode_state
from ._registry import Key, Registry
from ._rules import evaluate
from ._state import UserState, apply_batch, new_state

log = logging.getLogger(__name__)

_EVENT_COLUMNS = (
    "tenant_id, user_id, user_email, subscription_tier, event_type, route, element,"
    " element_text, form_id, duration_ms, error_message, error_source, error_stack,"
    " event_name, event_data, visibility, timestamp, client_timestamp, received_at"
)


@dataclass
class RecoveryReport:
    """What recovery did, for the log, /readyz and benchmarks."""

    source: str = "none"
    snapshots_loaded: int = 0
    snapshots_bad: int = 0
    replayed_events: int = 0
    users_restored: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


#: Events received this long before the last snapshot round's watermark are
#: replayed too: a batch may be committed before a round takes its changes and
#: reach its actor only after (queues, backpressure).
WATERMARK_MARGIN_S = 60.0


async def recover(
    registry: Registry,
    store: EventStore,
    snapshots: SnapshotStore | None,
    tenants: dict[int, Tenant],
    clock: Clock,
    *,
    replay_window_s: float = 30 * 60,
) -> RecoveryReport:
    """Restore live users into ``registry``; return what was done."""
    started = time.perf_counter()
    with registry.gc_guard.held():
        report = await _recover(
            registry, store, snapshots, tenants, clock, replay_window_s=replay_window_s
        )
        # Let every restored actor run its first round before freezing.
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
    report.seconds = time.perf_counter() - started
    log.info(
        "recovered %d live users (%s: %d snapshots, %d events replayed) in %.2f s",
        report.users_restored,
        report.source,
        report.snapshots_loaded,
        report.replayed_events,
        report.seconds,
    )
    return report


async def _recover(
    registry: Registry,
    store: EventStore,
    snapshots: SnapshotStore | None,
    tenants: dict[int, Tenant],
    clock: Clock,
    *,
    replay_window_s: float,
) -> RecoveryReport:
    report = RecoveryReport()
    states: dict[Key, tuple[UserState, float]] = {}
    #: Keys whose snapshot could not be used: those users are rebuilt from
    #: all their events in the window, not only the watermark's tail.
    unusable: set[Key] = set()
    watermark: float | None = None
    # Restored users are watched from now on (UserState.observed_from): set as
    # each snapshot is decoded, not by a copy of every state afterwards.
    now = clock.now()
    blobs: dict[Key, bytes] = {}
    if snapshots is not None:
        try:
            blobs, watermark = await snapshots.load_all()
        except Exception as exc:
            report.errors.append(f"snapshot store {snapshots.name} unreachable: {exc}")
            log.error("could not load snapshots from %s: %s; replaying events", snapshots.name, exc)
        else:
            for key, blob in blobs.items():
                try:
                    decoded, taken = decode_state(blob, observed_from=now)
                    if decoded.key != key:
                        raise SnapshotError(f"it holds user {decoded.key}")
                except SnapshotError as exc:
                    report.snapshots_bad += 1
                    unusable.add(key)
                    log.warning("snapshot of %s unusable (%s): rebuilt from events", key, exc)
                    continue
                states[key] = (decoded, taken)
            report.snapshots_loaded = len(states)
            if report.snapshots_bad:
                log.warning(
                    "%d snapshot entries were unusable; their users are rebuilt from events",
                    report.snapshots_bad,
                )
    report.source = snapshots.name if snapshots is not None and states else "replay"

    window_start = now - replay_window_s
    # Replay what may be missing from the snapshots, but never more than one
    # session timeout back: older events belong to sessions that are over.
    if not states:
        since = window_start
    elif watermark is not None:
        since = max(window_start, watermark - WATERMARK_MARGIN_S)
    else:
        # No watermark (none yet, or the round that found Redis's data lost
        # removed it): nothing says the snapshots are complete.
        since = window_start
    covered_ms = {key: int(taken * 1000) for key, (_, taken) in states.items()}
    window_ms = int(window_start * 1000)

    since_ms = int(since * 1000)
    rebuild = sorted(unusable - states.keys())

    def read(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
        rows = _events_since(conn, since_ms)
        if rebuild and since > window_start:
            rows += _older_events_of(conn, rebuild, int(window_start * 1000), since_ms)
            rows.sort(key=_user_arrival)
        return rows

    rows = await store.read(read)
    # The restarts before this one, and until when the process before each
    # was alive; then this start, recorded for the next recovery.
    alive_until = max(
        watermark or 0.0,
        await store.read(_last_received_ms) / 1000,
        *(t for _, t in states.values()),
    )
    starts = await store.write(lambda conn: _record_start(conn, now, alive_until, window_start))
    by_user = dict(_batches_by_user(rows, covered_ms, window_ms))
    restored: dict[Key, UserState] = {}
    last_start = starts[-1][0] if starts else -float("inf")
    for key in by_user.keys() | states.keys():
        tenant = tenants.get(key[0])
        if tenant is None:
            continue
        batches = by_user.get(key, [])
        snapshot = states.get(key)
        if not batches and snapshot is not None and snapshot[1] >= last_start:
            # Nothing happened to this user since the snapshot: as it was (the
            # common case, and most users at 100k: no rule rounds to run here).
            restored[key] = snapshot[0]
            continue
        report.replayed_events += sum(len(b.events) for b in batches)
        if snapshot is not None:
            # Replay goes through the history as it was: the snapshot as stored.
            snapshot = decode_state(blobs[key])
        state = _replay(snapshot, batches, starts, alive_until, tenant.settings, key[0])
        if state is not None:
            restored[key] = state.replace(observed_from=now)
    for key, state in restored.items():
        registry.restore(state, tenants[key[0]].settings)
        report.users_restored += 1
    # A removed tenant's users (tippen-rt tenant remove) do not come back, and
    # their snapshots go: tenant ids are never reused, but Redis outlives SQLite rows.
    orphans = [key for key in states.keys() | unusable if key[0] not in tenants]
    if orphans and snapshots is not None:
        log.warning("%d snapshots belong to no tenant (removed): deleted", len(orphans))
        try:
            await snapshots.delete(orphans)
        except Exception as exc:
            log.error("could not delete them from %s: %s", snapshots.name, exc)
    return report


def _events_since(conn: sqlite3.Connection, since_ms: int) -> list[tuple[object, ...]]:
    # INDEXED BY: without it SQLite walks the whole table in user order (to
    # avoid a sort) instead of reading only the recent rows.
    return conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM user_activity_events INDEXED BY idx_events_received"
        " WHERE received_at > ? ORDER BY tenant_id, user_id, received_at, id",
        (since_ms,),
    ).fetchall()


#: Rule rounds replay runs between two batches at most (one per deadline).
MAX_ROUNDS_BETWEEN_BATCHES = 16


def _replay(
    snapshot: tuple[UserState, float] | None,
    batches: list[Batch],
    starts: list[tuple[float, float]],
    alive_until: float,
    settings: TenantSettings,
    tenant_id: int,
) -> UserState | None:
    """One user's state as the processes before held it when the last one died:
    the snapshot (if any), then each batch and each restart in the order they
    happened, with the rule rounds the actor ran between them.

    A session that ended (then, or would have before the crash) comes back as
    its last state: the restored actor ends it at once, properly (summary,
    alerts resolved as "user left", snapshot deleted), as before the crash.
    """
    state: UserState | None = None
    next_at: float | None = None
    last: UserState | None = None  # the latest state, ended or not
    at = -float("inf")
    if snapshot is not None:
        last = snapshot[0]
        state, next_at = _evaluated(snapshot[0], snapshot[1], settings)
        at = snapshot[1]
    timeline: list[tuple[float, int, object]] = [(r, 0, a) for r, a in starts if r > at]
    timeline += [(b.received_at_ms / 1000, 1, b) for b in batches]
    timeline.sort(key=lambda item: (item[0], item[1]))
    for t, kind, item in timeline:
        if kind == 0:
            if state is None:
                continue
            # The process before ran until it died (about ``item``), then this
            # one restored the user at ``t``, judging absence from then on.
            last = state
            state, next_at = _rounds_before(state, next_at, float(item), settings)  # type: ignore[arg-type]
            if state is not None:
                last = state = state.replace(observed_from=t)
                state, next_at = _evaluated(state, t, settings)
            continue
        assert isinstance(item, Batch)
        if state is not None:
            last = state
            state, next_at = _rounds_before(state, next_at, t, settings)
        if state is None:
            state = new_state(tenant_id, item, t)
        last = state = apply_batch(state, item, t, settings)
        state, next_at = _evaluated(state, t, settings)
    if state is not None:
        # What came due before the last process died, it announced already.
        last = state
        state, _ = _rounds_before(state, next_at, alive_until, settings)
    return state if state is not None else last


def _last_received_ms(conn: sqlite3.Connection) -> int:
    (value,) = conn.execute("SELECT MAX(received_at) FROM user_activity_events").fetchone()
    return int(value or 0)


def _record_start(
    conn: sqlite3.Connection, now: float, alive_until: float, window_start: float
) -> list[tuple[float, float]]:
    """Record this start; return the earlier ones in the replay window, oldest first."""
    conn.execute("DELETE FROM service_starts WHERE started_at < ?", (window_start - 3600,))
    starts = [
        (float(r), float(a))
        for r, a in conn.execute(
            "SELECT started_at, alive_until FROM service_starts"
            " WHERE started_at > ? AND started_at < ? ORDER BY started_at",
            (window_start, now),
        )
    ]
    conn.execute(
        "INSERT OR REPLACE INTO service_starts (started_at, alive_until) VALUES (?, ?)",
        (now, alive_until),
    )
    return starts


def _evaluated(
    state: UserState, now: float, settings: TenantSettings
) -> tuple[UserState | None, float | None]:
    """The rule round the actor ran at ``now``: (state, next deadline), None if it ended."""
    step = evaluate(state, now, settings)
    return (None, None) if step.session_over else (step.state, step.next_at)


def _rounds_before(
    state: UserState, next_at: float | None, until: float, settings: TenantSettings
) -> tuple[UserState | None, float | None]:
    """``state`` after the rule rounds the live actor ran before ``until`` (one per
    deadline: episodes opened and closed, presence), announced to nobody (what the
    actor announced is in SQLite already), and its next deadline.  None if the
    session ended meanwhile."""
    for _ in range(MAX_ROUNDS_BETWEEN_BATCHES):
        if next_at is None or next_at >= until:
            return state, next_at
        evaluated, next_at = _evaluated(state, next_at, settings)
        if evaluated is None:
            return None, None
        state = evaluated
    return state, next_at


def _older_events_of(
    conn: sqlite3.Connection, keys: list[Key], from_ms: int, to_ms: int
) -> list[tuple[object, ...]]:
    """Events of ``keys`` received in ``(from_ms, to_ms]`` (users to rebuild in full)."""
    rows: list[tuple[object, ...]] = []
    for tenant_id, user_id in keys:
        rows += conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM user_activity_events INDEXED BY idx_events_user_time"
            " WHERE tenant_id = ? AND user_id = ? AND received_at > ? AND received_at <= ?"
            " ORDER BY received_at, id",
            (tenant_id, user_id, from_ms, to_ms),
        ).fetchall()
    return rows


def _user_arrival(row: tuple[object, ...]) -> tuple[object, ...]:
    """The order replay reads rows in: user, then arrival (a stable sort keeps ids in order)."""
    return (row[0], row[1], row[18])


def _batches_by_user(
    rows: list[tuple[object, ...]], covered_ms: dict[Key, int], default_ms: int
) -> Iterator[tuple[Key, list[Batch]]]:
    """Group rows (sorted by user, then arrival) into per-user lists of batches.

    Rows a user's snapshot already covers (received at or before it was taken,
    else before ``default_ms``) are skipped before any object is built for them.
    """
    key: Key | None = None
    batches: list[Batch] = []
    events: list[Event] = []
    batch_row: tuple[object, ...] | None = None
    after_ms = default_ms

    def close_batch() -> None:
        if batch_row is not None and events:
            batches.append(_batch(batch_row, events))

    for row in rows:
        row_key = (int(row[0]), str(row[1]))  # type: ignore[call-overload]
        if row_key != key:
            close_batch()
            if key is not None and batches:
                yield key, batches
            key, batches, events, batch_row = row_key, [], [], None
            after_ms = covered_ms.get(row_key, default_ms)
        if int(row[18]) <= after_ms:  # type: ignore[call-overload]
            continue
        if batch_row is None or row[18] != batch_row[18]:
            close_batch()
            events, batch_row = [], row
        events.append(_event(row))
    close_batch()
    if key is not None and batches:
        yield key, batches


def _event(row: tuple[object, ...]) -> Event:
    (
        _t,
        _u,
        _e,
        _tier,
        etype,
        route,
        element,
        text,
        form_id,
        duration,
        message,
        source,
        stack,
        name,
        data,
        visibility,
        ts,
        client_ts,
        _received,
    ) = row
    event_type = EventType(str(etype))
    count, focused = (
        read_heartbeat_data(data)  # type: ignore[arg-type]
        if event_type is EventType.HEARTBEAT and data is not None
        else (None, None)
    )
    return Event(
        type=event_type,
        timestamp=int(ts),  # type: ignore[call-overload]
        client_timestamp=int(client_ts),  # type: ignore[call-overload]
        route=route,  # type: ignore[arg-type]
        element=element,  # type: ignore[arg-type]
        text=text,  # type: ignore[arg-type]
        form_id=form_id,  # type: ignore[arg-type]
        duration_ms=duration,  # type: ignore[arg-type]
        message=message,  # type: ignore[arg-type]
        source=source,  # type: ignore[arg-type]
        stack=stack,  # type: ignore[arg-type]
        name=name,  # type: ignore[arg-type]
        data=data,  # type: ignore[arg-type]
        visibility=visibility,  # type: ignore[arg-type]
        input_count=count,
        focused=focused,
    )


def _batch(row: tuple[object, ...], events: list[Event]) -> Batch:
    return Batch(
        api_key="",
        user_id=str(row[1]),
        user_email=row[2],  # type: ignore[arg-type]
        tier=str(row[3]),
        events=tuple(events),
        received_at_ms=int(row[18]),  # type: ignore[call-overload]
    )
