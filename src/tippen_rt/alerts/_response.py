"""Response times: how fast the support team reached the users who needed help. Pure.

The plan's success metric is "a flagged user answered within 10 minutes".
Per alert, three times are kept (docs/support.md, "Response times"): to the
first claim ("I'm on it"), to the acknowledgement and to the first video
call; the **response** is the first of them, and whoever did it responded.

Over a window of alerts opened (today, the last 7 days):

- *answered*: alerts with a response; their median and 90th percentile
  time to response (nearest rank), and how many came within the goal;
- *missed*: alerts nobody responded to although they stayed open longer
  than the goal (still open, or closed later without a response);
- *closed unanswered within the goal*: the user recovered or left before the
  goal was up and before anyone responded: neither a hit nor a miss;
- the share within the goal: answered within it / (answered + missed), and
  whether the goal is met: nine in ten within it (the 90th percentile, the
  missed ones counted as never answered, within the goal).

Alerts replaced by a newer one for the same trigger (``superseded``) are
left out: the newer one counts.  Per agent: the alerts they responded to
first, with the same figures.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..persist import SUPERSEDED, Alert

__all__ = ["GOAL_MS", "ResponseFigures", "response_figures"]

#: The plan's goal: a user who needs help is answered within 10 minutes.
GOAL_MS = 10 * 60_000


def _percentile(sorted_ms: list[int], q: float) -> int | None:
    """Nearest rank: the smallest value with at least ``q`` of them at or below it."""
    if not sorted_ms:
        return None
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


@dataclass
class ResponseFigures:
    """The figures of one set of alerts (a window, or one agent's part of it)."""

    answered_ms: list[int] = field(default_factory=list)
    missed: int = 0
    closed_unanswered: int = 0
    #: Still open, unanswered, and the goal not up yet: not decided.
    waiting: int = 0

    def to_json(self, goal_ms: int = GOAL_MS) -> dict[str, Any]:
        """``{alerts, answered, medianMs, p90Ms, withinGoal, missed, ...}``."""
        times = sorted(self.answered_ms)
        within = sum(1 for t in times if t <= goal_ms)
        counted = len(times) + self.missed
        p90 = _percentile(times, 0.9)
        return {
            "alerts": len(times) + self.missed + self.closed_unanswered + self.waiting,
            "answered": len(times),
            "medianMs": None if not times else int(statistics.median(times)),
            "p90Ms": p90,
            "withinGoal": within,
            "missed": self.missed,
            "closedUnansweredWithinGoal": self.closed_unanswered,
            "waiting": self.waiting,
            "withinGoalShare": None if not counted else round(within / counted, 4),
            # Nine in ten reached within the goal, counting the missed ones as
            # never: the 90th percentile with them is within it.
            "metGoal": None if not counted else within >= 0.9 * counted,
        }


def response_figures(
    alerts: Iterable[Alert], *, now_ms: int, goal_ms: int = GOAL_MS
) -> tuple[ResponseFigures, dict[str, ResponseFigures]]:
    """The figures of ``alerts`` overall and per responding agent, as of ``now_ms``."""
    overall = ResponseFigures()
    agents: dict[str, ResponseFigures] = {}
    for alert in alerts:
        if alert.resolution == SUPERSEDED:
            continue
        response = alert.response
        if response is not None:
            ms, by = response
            overall.answered_ms.append(ms)
            agents.setdefault(by, ResponseFigures()).answered_ms.append(ms)
            continue
        open_for = (
            alert.resolved_at if alert.resolved_at is not None else now_ms
        ) - alert.opened_at
        if open_for > goal_ms:
            overall.missed += 1
        elif alert.resolved_at is not None:
            overall.closed_unanswered += 1
        else:
            overall.waiting += 1
    return overall, agents
