"""The needs-help queue: who to help first. Pure.

One entry per live user with an open support episode (not one per trigger),
ranked by a documented priority (docs/support.md, "The queue"):

1. users nobody has acknowledged yet before those someone has;
2. the tenant's weight of the user's tier (``tippen-rt tenant set
   --tier-weight``; by default enterprise 3, paid 2, free trial 1), highest
   first;
3. the severity of the user's most severe open trigger
   (:attr:`Trigger.severity`: repeated errors 3, stuck on a page 2, low
   activity and long inactivity 1), highest first;
4. how long they have waited (since their oldest open episode began),
   longest first;
5. the user id, so the order is total and the same on every dashboard.

The dashboard sorts its live copy with the same key (it reads the weights
and severities from ``GET /api/admin/settings``), so every agent sees the
same order as ``GET /api/admin/queue`` returns.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..actors import Trigger, UserState
from ..tenants import TenantSettings

__all__ = ["QueueFilter", "in_queue", "queue_key", "ranked", "severity_of", "waiting_since"]

RankKey = tuple[bool, int, int, float, str]


def in_queue(state: UserState) -> bool:
    """True if the user has an open support episode (acknowledged or not)."""
    return bool(state.active)


def waiting_since(state: UserState) -> float:
    """When the user's oldest open episode began (they have waited since)."""
    return min((since for _, since, _ in state.active), default=state.last_event_at)


def severity_of(state: UserState) -> int:
    """The severity of the user's most severe open trigger (0 with none)."""
    return max((trigger.severity for trigger, _, _ in state.active), default=0)


def queue_key(state: UserState, settings: TenantSettings) -> RankKey:
    """Sort key: the first to help sorts first (see the module's docstring)."""
    return (
        not state.needs_support,
        -settings.tier_weight(state.tier),
        -severity_of(state),
        waiting_since(state),
        state.user_id,
    )


class QueueFilter:
    """What the queue's filters keep: a tier, a trigger, only unclaimed users."""

    def __init__(
        self, tier: str | None = None, trigger: Trigger | None = None, unclaimed: bool = False
    ) -> None:
        self.tier = tier
        self.trigger = trigger
        self.unclaimed = unclaimed

    def keeps(self, state: UserState) -> bool:
        """True if ``state`` passes every filter that is set."""
        if self.tier is not None and state.tier != self.tier:
            return False
        if self.trigger is not None and self.trigger not in state.active_triggers:
            return False
        return not (self.unclaimed and state.claimed_by is not None)


def ranked(
    states: Iterable[UserState], settings: TenantSettings, keep: QueueFilter | None = None
) -> list[UserState]:
    """The users in the queue, first to help first."""
    chosen = [s for s in states if in_queue(s) and (keep is None or keep.keeps(s))]
    chosen.sort(key=lambda s: queue_key(s, settings))
    return chosen
