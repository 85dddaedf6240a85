"""Is the user there?  Presence as a pure function of (state, now, thresholds).

``docs/presence.md`` has the states, the deadlines between them and why.
Like the rules, :func:`presence_at` also says when its answer would next
change without a new event, so the actor can sleep until then.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from ..tenants import TenantSettings
from ._state import UserState


class Presence(enum.StrEnum):
    """Where the user is, as far as their page can tell."""

    #: Page visible, heartbeats arriving, real input within ``idle_after_s``.
    ACTIVE = "active"
    #: Page visible, heartbeats arriving, no input for ``idle_after_s``.
    IDLE = "idle"
    #: Tab in the background; heartbeats still arriving.
    HIDDEN = "hidden"
    #: No heartbeat for ``presence_timeout_s`` (browser vanished), or the page
    #: was closed and nothing came since.
    AWAY = "away"
    #: The session is over; only ever the state of an ended actor.
    GONE = "gone"

    @property
    def is_there(self) -> bool:
        """True while the page is open and alive (active, idle or hidden)."""
        return self in _THERE

    @property
    def at_the_page(self) -> bool:
        """True while the page is visible and alive (active or idle)."""
        return self is Presence.ACTIVE or self is Presence.IDLE


_THERE = frozenset({Presence.ACTIVE, Presence.IDLE, Presence.HIDDEN})


class PresenceNow(NamedTuple):
    """The presence at one instant."""

    presence: Presence
    #: Since when (server time); for ``away``, when the user was last seen.
    since: float
    #: When it would change without a new event, or None.
    next_change_at: float | None


def away_at(s: UserState, th: TenantSettings) -> float:
    """When heartbeats will have been missing long enough to call the user away.

    After a restart, missing heartbeats count only from the restart: the
    tracker kept them while we were down and sends them when it retries.
    """
    seen = s.last_presence_at if s.last_presence_at > s.observed_from else s.observed_from
    return seen + th.presence_timeout_s


def presence_at(s: UserState, now: float, th: TenantSettings) -> PresenceNow:
    """The user's presence at ``now`` (the session is not over)."""
    if s.unloaded_at is not None:
        return PresenceNow(Presence.AWAY, s.unloaded_at, None)
    away = away_at(s, th)
    if now >= away:
        return PresenceNow(Presence.AWAY, s.last_presence_at, None)
    there_since = s.present_since if s.present_since > s.visible_since else s.visible_since
    if not s.visible:
        return PresenceNow(Presence.HIDDEN, there_since, away)
    last_input = s.last_input_at
    idle_at = None if last_input is None else last_input + th.idle_after_s
    if idle_at is None or now >= idle_at:
        since = there_since if idle_at is None or idle_at < there_since else idle_at
        return PresenceNow(Presence.IDLE, since, away)
    since = s.input_since if s.input_since > there_since else there_since
    return PresenceNow(Presence.ACTIVE, since, idle_at if idle_at < away else away)
