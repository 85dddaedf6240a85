"""Live users: one actor per user, its state, and the support rules.

The Registry spawns a UserActor for each user's first batch; the actor owns
that user's state and deadlines and announces changes and triggers on the
registry's outbound channels.
"""

from ._codec import SnapshotError, decode_state, encode_state
from ._dirty import DirtySet
from ._feed import Feed, FeedMessage
from ._gc import GcGuard
from ._messages import (
    Acknowledge,
    AlertSent,
    BatchArrived,
    ChangeMessage,
    Claim,
    MailboxMessage,
    SettingsChanged,
    TriggerCleared,
    TriggerFired,
    TriggerMessage,
    UserChanged,
    UserLeft,
)
from ._presence import Presence, PresenceNow, presence_at
from ._recovery import RecoveryReport, recover
from ._registry import Key, Registry, feed_channels
from ._rules import RULES, RuleResult, Step, evaluate, in_words, session_end_at
from ._snapshotter import Snapshotter
from ._state import UserState, apply_batch, new_state
from ._summary_writer import SummaryWriter, summary_row
from ._triggers import Trigger

__all__ = [
    "RULES",
    "Acknowledge",
    "AlertSent",
    "BatchArrived",
    "ChangeMessage",
    "Claim",
    "DirtySet",
    "Feed",
    "FeedMessage",
    "GcGuard",
    "Key",
    "MailboxMessage",
    "Presence",
    "PresenceNow",
    "RecoveryReport",
    "Registry",
    "RuleResult",
    "SettingsChanged",
    "SnapshotError",
    "Snapshotter",
    "Step",
    "SummaryWriter",
    "Trigger",
    "TriggerCleared",
    "TriggerFired",
    "TriggerMessage",
    "UserChanged",
    "UserLeft",
    "UserState",
    "apply_batch",
    "decode_state",
    "encode_state",
    "evaluate",
    "feed_channels",
    "in_words",
    "new_state",
    "presence_at",
    "recover",
    "session_end_at",
    "summary_row",
]
