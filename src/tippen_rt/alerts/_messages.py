"""What the notifier tells its subscribers (the dashboard) about alerts."""

from __future__ import annotations

from dataclasses import dataclass

from ..persist import Alert


@dataclass(frozen=True, slots=True)
class AlertOpened:
    """A trigger fired and was recorded (whatever its delivery status)."""

    alert: Alert


@dataclass(frozen=True, slots=True)
class AlertUpdated:
    """A stored alert changed: delivered, failed, resolved, acknowledged, or counted."""

    alert: Alert


AlertMessage = AlertOpened | AlertUpdated
