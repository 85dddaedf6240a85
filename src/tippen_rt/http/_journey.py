"""A user's route journey from their stored route, page_time and visibility events. Pure.

Each step is one stay on a route: entered by a ``route`` event, left by the
next route change or by the page being closed (``visibility: unload``).  The
time spent is what the tracker measured for that stay (``page_time``) when it
sent one, else the time until the step was left, never more than a session
timeout: a user who closed the laptop and came back tomorrow did not spend a
night on the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Step", "build_journey", "journey_json"]


@dataclass(slots=True)
class Step:
    """One stay on one route. Times are epoch ms."""

    route: str
    entered_at: int
    left_at: int | None = None
    page_time_ms: int | None = None
    ongoing: bool = False
    closed_page: bool = False
    time_spent_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        """The step as the API returns it."""
        return {
            "route": self.route,
            "enteredAt": self.entered_at,
            "leftAt": self.left_at,
            "timeSpentMs": self.time_spent_ms,
            "pageTimeMs": self.page_time_ms,
            "ongoing": self.ongoing,
            "closedPage": self.closed_page,
        }


def build_journey(
    rows: Iterable[Mapping[str, Any]],
    *,
    end_ms: int,
    live_route: str | None,
    max_step_ms: int,
) -> list[Step]:
    """Steps from ``rows`` (oldest first: event_type, route, duration_ms, visibility,
    timestamp).

    ``end_ms`` ends the last step (now for a live user, else their last
    event); ``live_route`` is the live user's current route (the last step is
    then still going on), or None.
    """
    steps: list[Step] = []
    current: Step | None = None

    def close(at: int, *, closed_page: bool = False) -> None:
        nonlocal current
        if current is not None:
            current.left_at = max(current.entered_at, at)
            current.closed_page = closed_page
            current = None

    for row in rows:
        kind, route, t = row["event_type"], row["route"], int(row["timestamp"])
        if kind == "route" and route:
            if current is not None and current.route == route:
                continue  # the same route announced again (a reload)
            close(t)
            current = Step(route=route, entered_at=t)
            steps.append(current)
        elif kind == "page_time" and row["duration_ms"] is not None:
            # Sent on leaving a route, so usually stamped like the next route
            # event: it belongs to the latest stay on its route.
            target = _latest_stay(steps, route)
            if target is not None:
                target.page_time_ms = (target.page_time_ms or 0) + int(row["duration_ms"])
        elif kind == "visibility" and row["visibility"] == "unload":
            close(t, closed_page=True)

    if current is not None:
        if live_route is not None and live_route == current.route:
            current.ongoing = True
            current.time_spent_ms = max(0, end_ms - current.entered_at)
        else:
            close(end_ms)
    for step in steps:
        if step.ongoing:
            continue
        wall = (step.left_at if step.left_at is not None else end_ms) - step.entered_at
        spent = step.page_time_ms if step.page_time_ms is not None else wall
        step.time_spent_ms = max(0, min(spent, max_step_ms))
    return steps


def _latest_stay(steps: list[Step], route: str | None, lookback: int = 3) -> Step | None:
    recent = steps[-lookback:]
    if route is None:
        return recent[-1] if recent else None
    for step in reversed(recent):
        if step.route == route:
            return step
    return None


def journey_json(steps: list[Step], *, max_steps: int = 200) -> dict[str, Any]:
    """The latest ``max_steps`` steps and, per route, visits and total time."""
    totals: dict[str, dict[str, Any]] = {}
    for step in steps:
        entry = totals.setdefault(step.route, {"route": step.route, "visits": 0, "totalMs": 0})
        entry["visits"] += 1
        entry["totalMs"] += step.time_spent_ms
    return {
        "steps": [s.to_json() for s in steps[-max_steps:]],
        "truncated": len(steps) > max_steps,
        "routes": sorted(totals.values(), key=lambda e: -e["totalMs"]),
    }
