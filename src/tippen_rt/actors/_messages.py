"""Messages into actors (mailbox) and out of them (to alerts and the hub)."""

from __future__ import annotations

from dataclasses import dataclass

from ..events import Batch
from ..tenants import TenantSettings
from ._state import UserState
from ._triggers import Trigger

# ---- into an actor's mailbox ---------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchArrived:
    """A committed batch of this user's events."""

    batch: Batch
    settings: TenantSettings


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """An admin has seen the user's support need."""

    by: str


@dataclass(frozen=True, slots=True)
class Claim:
    """An agent is helping the user ("I'm on it"); ``by`` None releases the claim."""

    by: str | None
    agent_id: int = 0


@dataclass(frozen=True, slots=True)
class AlertSent:
    """The notifier sent a Slack alert for this user (for the rate limit)."""

    at: float


@dataclass(frozen=True, slots=True)
class SettingsChanged:
    """The tenant's settings changed (thresholds, triggers on or off, their tiers)."""

    settings: TenantSettings


MailboxMessage = BatchArrived | Acknowledge | Claim | AlertSent | SettingsChanged

# ---- out of an actor -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TriggerFired:
    """A support trigger started an episode: the user needs help."""

    state: UserState
    trigger: Trigger
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class TriggerCleared:
    """An episode ended: the user recovered, or left (``user_left``), or the
    trigger no longer applies to them (``switched_off``: turned off, or not for
    their tier)."""

    state: UserState
    trigger: Trigger
    at: float
    user_left: bool = False
    switched_off: bool = False


@dataclass(frozen=True, slots=True)
class UserChanged:
    """The user's live state changed."""

    state: UserState
    at: float


@dataclass(frozen=True, slots=True)
class UserLeft:
    """The session ended (timeout or unload); the actor is gone."""

    state: UserState
    at: float
    reason: str


TriggerMessage = TriggerFired | TriggerCleared
ChangeMessage = UserChanged | UserLeft
