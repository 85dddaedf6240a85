"""Support rules as pure functions of (state, now, thresholds).

Each rule answers two questions: is it firing now, and when is the next time
its answer could change if no new event arrives (``None``: only an event can
change it).  The actor sleeps until the earliest such time; it never polls.

Boundaries: a rule whose condition is "more than N minutes" fires at the
instant N minutes have passed (``>=``), so 4:59 does not fire and 5:00 does.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..tenants import TenantSettings
from ._state import UserState
from ._triggers import Trigger

FREE_TRIAL = "free_trial"


@dataclass(frozen=True, slots=True)
class RuleResult:
    """A rule's verdict at one instant."""

    firing: bool
    #: When the verdict could next change without a new event, or None.
    next_change_at: float | None
    #: Why, in words (for the alert), when firing.
    reason: str = ""


NOT_FIRING = RuleResult(False, None)


def in_words(seconds: float) -> str:
    """A duration for people: ``45 s``, ``5 min``, ``1 h 5 min``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _min(*times: float | None) -> float | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def session_end_at(s: UserState, th: TenantSettings) -> float:
    """When the session ends unless another event arrives."""
    end = s.last_event_at + th.session_timeout_s
    if s.unloaded_at is not None:
        end = min(end, s.unloaded_at + th.unload_grace_s)
    return end


def is_present(s: UserState, now: float, th: TenantSettings) -> bool:
    """True while recent heartbeats or interactions show someone at the page."""
    return now - s.last_presence_at < th.presence_timeout_s and s.unloaded_at is None


def stuck_on_page(s: UserState, now: float, th: TenantSettings) -> RuleResult:
    """Same route for ``stuck_on_page_s`` while the page is visible and the user present."""
    if s.current_route is None or not s.visible or s.unloaded_at is not None:
        return NOT_FIRING
    presence_ends = s.last_presence_at + th.presence_timeout_s
    if now >= presence_ends:
        return NOT_FIRING
    since = max(s.route_entered_at, s.visible_since, s.present_since)
    fires_at = since + th.stuck_on_page_s
    if now >= fires_at:
        return RuleResult(
            True,
            presence_ends,
            f"on {s.current_route} for {in_words(now - since)} without moving on",
        )
    return RuleResult(False, fires_at if fires_at < presence_ends else presence_ends)


def low_activity(s: UserState, now: float, th: TenantSettings) -> RuleResult:
    """Free trial: fewer than N interactions in the window, once the session is that old."""
    if s.tier != FREE_TRIAL or s.unloaded_at is not None:
        return NOT_FIRING
    window, needed = th.low_activity_window_s, th.low_activity_min_events
    if needed <= 0:
        return NOT_FIRING
    old_enough_at = s.session_started_at + window
    recent = s.recent_interactions
    # Fewer than `needed` in (now - window, now] <=> the needed-th most recent
    # interaction is at or before now - window (or there are not that many).
    quiet_from = recent[-needed] + window if len(recent) >= needed else -float("inf")
    fires_at = max(old_enough_at, quiet_from)
    if now >= fires_at:
        count = sum(1 for t in recent if t > now - window)
        return RuleResult(
            True, None, f"{count} interactions in the last {in_words(window)} (free trial)"
        )
    return RuleResult(False, fires_at)


def multiple_errors(s: UserState, now: float, th: TenantSettings) -> RuleResult:
    """More than N errors within the error window (any tier)."""
    n, window = th.error_burst_count, th.error_window_s
    recent = s.recent_errors
    if len(recent) <= n:
        return NOT_FIRING
    # More than n errors in (now - window, now] <=> the (n+1)-th most recent is inside.
    oldest_of_burst = recent[-(n + 1)]
    ends_at = oldest_of_burst + window
    if now < ends_at:
        count = sum(1 for t in recent if t > now - window)
        return RuleResult(True, ends_at, f"{count} errors in {in_words(window)}")
    return NOT_FIRING


def long_inactivity(s: UserState, now: float, th: TenantSettings) -> RuleResult:
    """Free trial: no interaction for ``inactivity_s`` while the session is open."""
    if s.tier != FREE_TRIAL or s.unloaded_at is not None:
        return NOT_FIRING
    last = s.last_interaction_at if s.last_interaction_at is not None else s.session_started_at
    fires_at = last + th.inactivity_s
    if now >= fires_at:
        return RuleResult(True, None, f"no interaction for {in_words(now - last)}")
    return RuleResult(False, fires_at)


RULES = {
    Trigger.STUCK_ON_PAGE: stuck_on_page,
    Trigger.LOW_ACTIVITY: low_activity,
    Trigger.MULTIPLE_ERRORS: multiple_errors,
    Trigger.LONG_INACTIVITY: long_inactivity,
}


@dataclass(frozen=True, slots=True)
class Step:
    """What changed when the rules were evaluated at one instant."""

    state: UserState
    fired: tuple[tuple[Trigger, str], ...]
    cleared: tuple[Trigger, ...]
    #: The earliest time a rule could change its verdict or the session end.
    next_at: float
    session_over: bool


def evaluate(s: UserState, now: float, th: TenantSettings) -> Step:
    """Run every rule at ``now``: open episodes that start, close those that end.

    A trigger fires once per episode: while its condition holds it is
    "active" and does not fire again; when the condition stops holding the
    episode closes (the user recovered) and a later one may fire.
    """
    end_at = session_end_at(s, th)
    if now >= end_at:
        return Step(s, (), tuple(t for t, _ in s.active), end_at, True)
    active = dict(s.active)
    last_fired = dict(s.last_fired)
    fired: list[tuple[Trigger, str]] = []
    cleared: list[Trigger] = []
    next_at: float | None = end_at
    for trigger, rule in RULES.items():
        result = rule(s, now, th)
        next_at = _min(next_at, result.next_change_at)
        if result.firing and trigger not in active:
            active[trigger] = now
            last_fired[trigger] = now
            fired.append((trigger, result.reason))
        elif not result.firing and trigger in active:
            del active[trigger]
            cleared.append(trigger)
    if not fired and not cleared:
        return Step(s, (), (), next_at if next_at is not None else end_at, False)
    support_at = s.support_triggered_at
    needs_support = s.needs_support
    if fired:
        needs_support, support_at = True, now
    elif not active:
        needs_support = False
    state = s.replace(
        active=tuple(active.items()),
        last_fired=tuple(last_fired.items()),
        needs_support=needs_support,
        support_triggered_at=support_at,
    )
    return Step(
        state, tuple(fired), tuple(cleared), next_at if next_at is not None else end_at, False
    )
