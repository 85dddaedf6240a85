"""Support rules as pure functions of (state, now, thresholds).

Each rule answers two questions: is it firing now, and when is the next time
its answer could change if no new event arrives (``None``: only an event can
change it).  The actor sleeps until the earliest such time; it never polls.
A rule is told the user's presence (``_presence.py``) and, if its episode is
open, when it fired: what opens an episode (the user there, a threshold
passed) is not what closes it (the user recovering), so an episode does not
flicker while the user pauses.  ``docs/presence.md`` explains each rule.

Boundaries: a rule whose condition is "more than N minutes" fires at the
instant N minutes have passed (``>=``), so 4:59 does not fire and 5:00 does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..tenants import TenantSettings
from ._presence import Presence, PresenceNow, away_at, presence_at
from ._state import UserState
from ._triggers import Trigger


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


def session_end_at(s: UserState, th: TenantSettings) -> float:
    """When the session ends ("gone") unless another event arrives."""
    end = s.last_event_at + th.session_timeout_s
    gone_after_away = away_at(s, th) + th.away_end_s
    if gone_after_away < end:
        end = gone_after_away
    if s.unloaded_at is not None:
        end = min(end, s.unloaded_at + th.unload_grace_s)
    return end


def end_reason(s: UserState, now: float, th: TenantSettings) -> str:
    """Why a session that ended at ``now`` ended, in words."""
    if s.unloaded_at is not None:
        return "page closed"
    if now >= away_at(s, th) + th.away_end_s:
        return f"no heartbeat for {in_words(now - s.last_presence_at)}"
    return "session timed out"


def _there_since(s: UserState) -> float:
    """Start of the current unbroken stretch of a visible, live page."""
    return s.present_since if s.present_since > s.visible_since else s.visible_since


def stuck_on_page(
    s: UserState, now: float, th: TenantSettings, p: PresenceNow, opened_at: float | None
) -> RuleResult:
    """Active on one route, input never pausing for ``idle_after_s``, for ``stuck_on_page_s``.

    An open episode lasts until the user moves on to another route.
    """
    if opened_at is not None:
        return RuleResult(s.current_route is not None and s.route_entered_at <= opened_at, None)
    if s.current_route is None or p.presence is not Presence.ACTIVE:
        return NOT_FIRING
    since = max(s.route_entered_at, s.input_since, _there_since(s))
    fires_at = since + th.stuck_on_page_s
    if now >= fires_at:
        return RuleResult(
            True,
            None,
            f"active on {s.current_route} for {in_words(now - since)} without moving on",
        )
    return RuleResult(False, fires_at)


def low_activity(
    s: UserState, now: float, th: TenantSettings, p: PresenceNow, opened_at: float | None
) -> RuleResult:
    """Fewer than N interactions in the window, the page visible all along.

    An open episode lasts until interactions pick up.
    """
    window, needed = th.low_activity_window_s, th.low_activity_min_events
    if needed <= 0:
        return NOT_FIRING
    recent = s.recent_interactions
    # Fewer than `needed` in (now - window, now] <=> the needed-th most recent
    # interaction is at or before now - window (or there are not that many).
    quiet_from = recent[-needed] + window if len(recent) >= needed else -float("inf")
    if opened_at is not None:
        return RuleResult(now >= quiet_from, None)
    if not p.presence.at_the_page:
        return NOT_FIRING
    fires_at = max(max(s.session_started_at, _there_since(s)) + window, quiet_from)
    if now >= fires_at:
        count = sum(1 for t in recent if t > now - window)
        return RuleResult(True, None, f"{count} interactions in the last {in_words(window)}")
    return RuleResult(False, fires_at)


def multiple_errors(
    s: UserState, now: float, th: TenantSettings, p: PresenceNow, opened_at: float | None
) -> RuleResult:
    """More than N errors within the error window, the page alive."""
    n, window = th.error_burst_count, th.error_window_s
    recent = s.recent_errors
    if len(recent) <= n or (opened_at is None and not p.presence.is_there):
        return NOT_FIRING
    # More than n errors in (now - window, now] <=> the (n+1)-th most recent is inside.
    oldest_of_burst = recent[-(n + 1)]
    ends_at = oldest_of_burst + window
    if now < ends_at:
        count = sum(1 for t in recent if t > now - window)
        return RuleResult(True, ends_at, f"{count} errors in {in_words(window)}")
    return NOT_FIRING


def long_inactivity(
    s: UserState, now: float, th: TenantSettings, p: PresenceNow, opened_at: float | None
) -> RuleResult:
    """No input of any kind for ``inactivity_s`` while the page is visible.

    An open episode lasts until the next input.
    """
    last = s.last_input_at
    if opened_at is not None:
        return RuleResult(last is None or last <= opened_at, None)
    if not p.presence.at_the_page:
        return NOT_FIRING
    start = max(last if last is not None else s.session_started_at, _there_since(s))
    fires_at = start + th.inactivity_s
    if now >= fires_at:
        return RuleResult(True, None, f"no input for {in_words(now - start)} with the app open")
    return RuleResult(False, fires_at)


Rule = Callable[[UserState, float, TenantSettings, PresenceNow, "float | None"], RuleResult]

RULES: dict[Trigger, Rule] = {
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
    #: Episodes that ended because the user recovered.
    cleared: tuple[Trigger, ...]
    #: The earliest time a rule or the presence could change or the session end.
    next_at: float
    session_over: bool
    #: Episodes that ended because the user left (away, or the session over).
    left: tuple[Trigger, ...] = ()
    #: Episodes that ended because their trigger no longer applies to the user:
    #: the tenant turned it off, or it no longer covers the user's tier.
    switched_off: tuple[Trigger, ...] = ()


def evaluate(s: UserState, now: float, th: TenantSettings) -> Step:
    """Run every rule at ``now``: open episodes that start, close those that end.

    A trigger fires once per episode: while its episode is open it does not
    fire again.  An episode closes when the user recovers (the rule says so)
    or leaves: heartbeats stop (``away``) or the session ends.  Nothing fires
    for a user who is away, nor for one restored after a restart before
    anything from them arrived (their tracker retries within seconds).
    A trigger the tenant turned off, or whose tiers leave out the user's, is
    not run at all; its open episode closes as ``switched_off``.  When the
    last open episode closes, an agent's claim on the user ends with it.
    """
    end_at = session_end_at(s, th)
    if now >= end_at:
        return Step(s, (), (), end_at, True, tuple(t for t, _, _ in s.active))
    p = presence_at(s, now, th)
    # Heartbeats stopped: they left.  After an unload they may be on their way
    # to the app's next page, so open episodes wait for the session to end.
    left_now = p.presence is Presence.AWAY and s.unloaded_at is None
    opened = {t: at for t, at, _ in s.active}
    fired: list[tuple[Trigger, str]] = []
    cleared: list[Trigger] = []
    left: list[Trigger] = []
    switched_off: list[Trigger] = []
    next_at = end_at
    if p.next_change_at is not None and p.next_change_at < next_at:
        next_at = p.next_change_at
    applies = th.triggers_for(s.tier)
    for trigger, rule in RULES.items():
        opened_at = opened.get(trigger)
        if left_now:
            if opened_at is not None:
                left.append(trigger)
            continue
        if trigger not in applies:
            if opened_at is not None:
                switched_off.append(trigger)
            continue
        result = rule(s, now, th, p, opened_at)
        if result.next_change_at is not None and result.next_change_at < next_at:
            next_at = result.next_change_at
        if result.firing and opened_at is None and p.presence is not Presence.AWAY:
            if s.last_presence_at < s.observed_from:
                continue  # restored, not heard from since: wait for proof they are there
            fired.append((trigger, result.reason))
        elif not result.firing and opened_at is not None:
            cleared.append(trigger)
    presence_changed = p.presence != s.presence or p.since != s.presence_since
    if not fired and not cleared and not left and not switched_off:
        if not presence_changed:
            return Step(s, (), (), next_at, False)
        # The common change (a restored user, an idle tab): presence alone.
        return Step(s.replace(presence=p.presence, presence_since=p.since), (), (), next_at, False)
    ended = set(cleared) | set(left) | set(switched_off)
    active = [entry for entry in s.active if entry[0] not in ended]
    active += [(trigger, now, reason) for trigger, reason in fired]
    last_fired = dict(s.last_fired)
    for trigger, _ in fired:
        last_fired[trigger] = now
    support_at = s.support_triggered_at
    needs_support = s.needs_support
    if fired:
        needs_support, support_at = True, now
    elif not active:
        needs_support = False
    # A claim lasts while there is something to help with.
    claim: dict[str, object] = {}
    if not active and s.claimed_by is not None:
        claim = {"claimed_by": None, "claimed_by_agent": 0, "claimed_at": None}
    state = s.replace(
        active=tuple(active),
        last_fired=tuple(last_fired.items()),
        needs_support=needs_support,
        support_triggered_at=support_at,
        presence=p.presence,
        presence_since=p.since,
        **claim,
    )
    return Step(
        state, tuple(fired), tuple(cleared), next_at, False, tuple(left), tuple(switched_off)
    )
