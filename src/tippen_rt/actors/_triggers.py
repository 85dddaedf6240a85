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

    @property
    def severity(self) -> int:
        """How urgent it is, for the needs-help queue (docs/support.md): 3 for
        repeated errors (something is broken for them), 2 for stuck on a page
        (trying and getting nowhere), 1 for low activity and long inactivity
        (not getting going)."""
        return _SEVERITY[self]


_TITLES = {
    Trigger.STUCK_ON_PAGE: "Stuck on a page",
    Trigger.LOW_ACTIVITY: "Low activity",
    Trigger.MULTIPLE_ERRORS: "Repeated errors",
    Trigger.LONG_INACTIVITY: "Long inactivity",
}

_SEVERITY = {
    Trigger.MULTIPLE_ERRORS: 3,
    Trigger.STUCK_ON_PAGE: 2,
    Trigger.LOW_ACTIVITY: 1,
    Trigger.LONG_INACTIVITY: 1,
}
