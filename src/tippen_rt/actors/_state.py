"""A live user's state, and how a batch of events changes it. Pure.

The state is immutable: an actor replaces it with a new one for every batch.
Other parts (summaries, the dashboard hub, snapshots) may hold on to a state
they were handed without copying, and it can never change under them.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass

from ..events import INTERACTION_TYPES, Batch, Event, EventType
from ..tenants import TenantSettings
from ._triggers import Trigger


@dataclass(frozen=True, slots=True)
class UserState:
    """Everything live about one user. Times are wall-clock seconds (server frame)."""

    tenant_id: int
    user_id: str
    email: str | None
    tier: str
    session_started_at: float
    last_event_at: float
    #: Last route/click/form_submit/custom, or None before the first one.
    last_interaction_at: float | None = None
    current_route: str | None = None
    route_entered_at: float = 0.0
    visible: bool = True
    visible_since: float = 0.0
    #: Last proof that someone is at the page: heartbeat, visibility or interaction.
    last_presence_at: float = 0.0
    #: When the current unbroken stretch of presence began.
    present_since: float = 0.0
    #: Set by a ``visibility: unload`` event; cleared by any later event.
    unloaded_at: float | None = None
    recent_interactions: tuple[float, ...] = ()
    recent_errors: tuple[float, ...] = ()
    total_events: int = 0
    total_errors: int = 0
    last_error_at: float | None = None
    last_error_message: str | None = None
    #: Triggers in an open episode, with the time each fired.
    active: tuple[tuple[Trigger, float], ...] = ()
    #: When each trigger last fired (any episode).
    last_fired: tuple[tuple[Trigger, float], ...] = ()
    needs_support: bool = False
    support_triggered_at: float | None = None
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    #: When a Slack alert for this user last went out (the rate limit).
    last_alert_sent_at: float | None = None
    #: Server minus client clock, as last measured from ``sentAt`` (ms).
    clock_offset_ms: int = 0

    @property
    def key(self) -> tuple[int, str]:
        """The registry key: (tenant id, user id)."""
        return (self.tenant_id, self.user_id)

    @property
    def active_triggers(self) -> frozenset[Trigger]:
        """Triggers in an open episode."""
        return frozenset(t for t, _ in self.active)

    def time_on_current_page(self, now: float) -> float:
        """Seconds on the current route."""
        return max(0.0, now - self.route_entered_at) if self.current_route is not None else 0.0

    def replace(self, **changes: object) -> UserState:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def new_state(tenant_id: int, batch: Batch, now: float) -> UserState:
    """The state of a user seen for the first time (before their first batch)."""
    start = min((_event_time(e.timestamp, now) for e in batch.events), default=now)
    return UserState(
        tenant_id=tenant_id,
        user_id=batch.user_id,
        email=batch.user_email,
        tier=batch.tier,
        session_started_at=start,
        last_event_at=start,
        route_entered_at=start,
        visible_since=start,
        last_presence_at=start,
        present_since=start,
    )


_BY_TIMESTAMP = operator.itemgetter(Event._fields.index("timestamp"))


def _event_time(timestamp_ms: int, now: float) -> float:
    # Skew-corrected client time, never later than the server's now: a client
    # clock can not push a user's deadlines into the future.
    return min(timestamp_ms / 1000.0, now)


def recent_kept(th: TenantSettings) -> tuple[int, int]:
    """How many interaction and error times the rules need: (interactions, errors)."""
    return max(1, th.low_activity_min_events), th.error_burst_count + 1


def apply_batch(state: UserState, batch: Batch, now: float, th: TenantSettings) -> UserState:
    """The state after ``batch``, received at server time ``now``."""
    s = state
    presence_timeout_s = th.presence_timeout_s
    keep_interactions, keep_errors = recent_kept(th)
    last_event = s.last_event_at
    last_interaction = s.last_interaction_at
    route, route_entered = s.current_route, s.route_entered_at
    visible, visible_since = s.visible, s.visible_since
    presence, present_since = s.last_presence_at, s.present_since
    unloaded_at = s.unloaded_at
    interactions = list(s.recent_interactions)
    errors = list(s.recent_errors)
    total_errors, last_error, last_message = s.total_errors, s.last_error_at, s.last_error_message

    # Order by time: batches from one page are ordered, but retries may not be.
    # Written for speed (it runs for every event the service takes): locals,
    # no helper calls, comparisons instead of min()/max().
    ROUTE, ERROR, VISIBILITY, PAGE_TIME = (
        EventType.ROUTE,
        EventType.ERROR,
        EventType.VISIBILITY,
        EventType.PAGE_TIME,
    )
    interaction_types = INTERACTION_TYPES
    for event in sorted(batch.events, key=_BY_TIMESTAMP):
        t = event.timestamp / 1000.0
        if t > now:
            t = now  # skew-corrected client time, never later than the server's now
        if t > last_event:
            last_event = t
        etype = event.type
        if unloaded_at is not None and t >= unloaded_at and etype is not VISIBILITY:
            unloaded_at = None  # they came back
        if etype is ERROR:
            errors.append(t)
            total_errors += 1
            if last_error is None or t >= last_error:
                last_error, last_message = t, event.message
            continue
        if etype is VISIBILITY:
            shown = event.visibility
            if shown == "visible":
                unloaded_at = None
                if not visible:
                    visible, visible_since = True, t
            else:
                visible = False
                if shown != "hidden":  # unload
                    unloaded_at = t
                continue
        elif etype is PAGE_TIME:
            continue  # says how long a page was shown; no presence now
        elif etype in interaction_types:
            if last_interaction is None or t > last_interaction:
                last_interaction = t
            interactions.append(t)
            if not visible:
                visible, visible_since = True, t
        # heartbeat, visible, and interactions prove presence
        if t - presence > presence_timeout_s:
            present_since = t
        if t > presence:
            presence = t
        event_route = event.route
        if event_route is not None and (route is None or (etype is ROUTE and event_route != route)):
            route, route_entered = event_route, t

    interactions.sort()
    errors.sort()
    return s.replace(
        email=batch.user_email if batch.user_email is not None else s.email,
        tier=batch.tier,
        last_event_at=last_event,
        last_interaction_at=last_interaction,
        current_route=route,
        route_entered_at=route_entered,
        visible=visible,
        visible_since=visible_since,
        last_presence_at=presence,
        present_since=present_since,
        unloaded_at=unloaded_at,
        recent_interactions=tuple(interactions[-keep_interactions:]),
        recent_errors=tuple(errors[-keep_errors:]),
        total_events=s.total_events + len(batch.events),
        total_errors=total_errors,
        last_error_at=last_error,
        last_error_message=last_message,
        clock_offset_ms=batch.clock_offset_ms
        if batch.sent_at_ms is not None
        else s.clock_offset_ms,
    )
