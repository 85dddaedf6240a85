"""The four support triggers (DESIGN.md, "Support triggers")."""

from __future__ import annotations

import enum


class Trigger(enum.StrEnum):
    STUCK_ON_PAGE = "stuck_on_page"
    LOW_ACTIVITY = "low_activity"
    MULTIPLE_ERRORS = "multiple_errors"
    LONG_INACTIVITY = "long_inactivity"

    @property
    def in_words(self) -> str:
        """The trigger in words, for people."""
        return _TITLES[self]


_TITLES = {
    Trigger.STUCK_ON_PAGE: "Stuck on a page",
    Trigger.LOW_ACTIVITY: "Low activity",
    Trigger.MULTIPLE_ERRORS: "Repeated errors",
    Trigger.LONG_INACTIVITY: "Long inactivity",
}
