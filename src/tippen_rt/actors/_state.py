"""A live user's state, and how a batch of events changes it. Pure.

The state is immutable: an actor replaces it with a new one for every batch.
Other parts (summaries, the dashboard hub, snapshots) may hold on to a state
they were handed without copying, and it can never change under them.

It is a ``NamedTuple``, not a frozen dataclass: a new state is made for every
batch and rule round, 100k in a row at recovery, and a frozen dataclass
builds one through ``object.__setattr__`` per field (36 of them): 5 us a
state, against well under 1 us for a tuple.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

from ..events import INTERACTION_TYPES, Batch, Event, EventType
from ..tenants import TenantSettings
from ._triggers import Trigger


class UserState(NamedTuple):
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
    #: Since when ``visible`` has had its current value.
    visible_since: float = 0.0
    #: Last proof that the page is open: heartbeat, error, visibility or interaction.
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
    #: Triggers in an open episode: (trigger, when it fired, why in words).
    active: tuple[tuple[Trigger, float, str], ...] = ()
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
    #: Last real input: an interaction, or a heartbeat reporting input.
    last_input_at: float | None = None
    #: When the current unbroken stretch of input began (no gap of ``idle_after_s``).
    input_since: float = 0.0
    #: The last heartbeat's focus flag (None: never said).
    focused: bool | None = None
    #: The presence (a :class:`Presence` value) as of the last evaluation, and since when.
    presence: str = "active"
    presence_since: float = 0.0
    #: When this process began to watch the user (restored after a restart):
    #: no heartbeat could reach us before, so absence is judged from then.
    observed_from: float = 0.0
    # Fields below were added after snapshot layout 3 began: append new ones
    # at the end only (``_codec.py`` gives a shorter snapshot their defaults).
    #: The user's display name (``userName``), or None.
    name: str | None = None
    #: Who is helping the user ("I'm on it"), their agent id (0: the tenant's
    #: admin token) and since when; cleared when the user's last open episode
    #: ends (they recovered or left) or the claim is released.
    claimed_by: str | None = None
    claimed_by_agent: int = 0
    claimed_at: float | None = None

    @property
    def key(self) -> tuple[int, str]:
        """The registry key: (tenant id, user id)."""
        return (self.tenant_id, self.user_id)

    @property
    def active_triggers(self) -> frozenset[Trigger]:
        """Triggers in an open episode."""
        return frozenset(t for t, _, _ in self.active)

    def reason(self, trigger: Trigger) -> str | None:
        """Why ``trigger``'s open episode fired, or None if it is not open."""
        return next((why for t, _, why in self.active if t is trigger), None)

    def claimed_by_someone_else(self, name: str, agent_id: int) -> bool:
        """True if another agent (or admin login) than ``name``/``agent_id`` claimed the user."""
        if self.claimed_by is None:
            return False
        return (self.claimed_by, self.claimed_by_agent) != (name, agent_id)

    def time_on_current_page(self, now: float) -> float:
        """Seconds on the current route."""
        return max(0.0, now - self.route_entered_at) if self.current_route is not None else 0.0

    def replace(self, **changes: object) -> UserState:
        """A copy with ``changes`` (names of fields; a wrong name raises TypeError)."""
        values: list[object] = list(self)
        for name, value in changes.items():
            try:
                values[_INDEX[name]] = value
            except KeyError:
                raise TypeError(f"UserState has no field {name!r}") from None
        return _make(values)


_INDEX = {name: i for i, name in enumerate(UserState._fields)}
#: A state from a sequence of every field's value, in order (no checks).
_make = UserState._make


def new_state(tenant_id: int, batch: Batch, now: float) -> UserState:
    """The state of a user seen for the first time (before their first batch)."""
    start = min((_event_time(e.timestamp, now) for e in batch.events), default=now)
    return UserState(
        tenant_id=tenant_id,
        user_id=batch.user_id,
        email=batch.user_email,
        name=batch.user_name,
        tier=batch.tier,
        session_started_at=start,
        last_event_at=start,
        route_entered_at=start,
        visible_since=start,
        last_presence_at=start,
        present_since=start,
        input_since=start,
        # What the rules will say before the first event is applied: no input yet.
        presence="idle",
        presence_since=start,
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
    presence_timeout_s, idle_after_s = th.presence_timeout_s, th.idle_after_s
    keep_interactions, keep_errors = recent_kept(th)
    last_event = s.last_event_at
    last_interaction = s.last_interaction_at
    last_input, input_since, focused = s.last_input_at, s.input_since, s.focused
    route, route_entered = s.current_route, s.route_entered_at
    visible, visible_since = s.visible, s.visible_since
    presence, present_since = s.last_presence_at, s.present_since
    unloaded_at = s.unloaded_at
    interactions = list(s.recent_interactions)
    errors = list(s.recent_errors)
    total_errors, last_error, last_message = s.total_errors, s.last_error_at, s.last_error_message

    # Order by time: batches from one page are ordered, but retries (and
    # batches kept by the tracker for the next page load) may arrive late:
    # an event older than what it would change does not change it.
    # Written for speed (it runs for every event the service takes): locals,
    # no helper calls, comparisons instead of min()/max().
    ROUTE, ERROR, VISIBILITY, PAGE_TIME, HEARTBEAT = (
        EventType.ROUTE,
        EventType.ERROR,
        EventType.VISIBILITY,
        EventType.PAGE_TIME,
        EventType.HEARTBEAT,
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
            # Not input, but the page's code is running: the page is alive.
            errors.append(t)
            total_errors += 1
            if last_error is None or t >= last_error:
                last_error, last_message = t, event.message
        if etype is VISIBILITY:
            if t < visible_since:
                continue  # older than the visibility we know
            shown = event.visibility
            if shown == "visible":
                unloaded_at = None
                if not visible:
                    visible, visible_since = True, t
            else:
                if visible:
                    visible, visible_since = False, t
                if shown != "hidden":  # unload
                    unloaded_at = t
                continue
        elif etype is PAGE_TIME:
            continue  # says how long a page was shown; no presence now
        elif etype is HEARTBEAT:
            if event.input_count:
                if last_input is None or t - last_input >= idle_after_s:
                    input_since = t
                if last_input is None or t > last_input:
                    last_input = t
            if event.focused is not None and t >= presence:
                focused = event.focused
        elif etype in interaction_types:
            if last_interaction is None or t > last_interaction:
                last_interaction = t
            interactions.append(t)
            if last_input is None or t - last_input >= idle_after_s:
                input_since = t
            if last_input is None or t > last_input:
                last_input = t
            if not visible and t >= visible_since:
                visible, visible_since = True, t
        # heartbeats, errors, visible and interactions prove the page alive
        if t - (presence if presence > s.observed_from else s.observed_from) > presence_timeout_s:
            present_since = t
        if t > presence:
            presence = t
        event_route = event.route
        if event_route is not None and (
            route is None or (etype is ROUTE and event_route != route and t >= route_entered)
        ):
            route, route_entered = event_route, t

    interactions.sort()
    errors.sort()
    return s.replace(
        email=batch.user_email if batch.user_email is not None else s.email,
        name=batch.user_name if batch.user_name is not None else s.name,
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
        last_input_at=last_input,
        input_since=input_since,
        focused=focused,
    )
