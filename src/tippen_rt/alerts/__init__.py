"""Support alerts: recorded for the dashboard, rate-limited, delivered to Slack.

The :class:`Notifier` turns every trigger an actor fires into an
:class:`Alert` in SQLite and, at most once per user per rate-limit window,
into a Slack message (incoming webhook, or bot token + channel, whose message
is updated when the alert is acknowledged or resolved).
"""

from ..persist import Alert, AlertStatus, DeliveryStatus
from ._check import sample_message, send_test_message
from ._cli import add_alert_commands, run_slack_command, run_tenant_set, run_tenant_show
from ._describe import (
    PRESENCE_THRESHOLDS,
    TRIGGER_THRESHOLDS,
    SlackDescription,
    call_invitations_in_words,
    describe_slack,
    fires_when,
    identity_mode,
    origin_rule_in_words,
    rate_limit_in_words,
    threshold_in_words,
    tier_weights_in_words,
    tiers_in_words,
)
from ._messages import AlertMessage, AlertOpened, AlertUpdated
from ._notifier import (
    ActorNotes,
    DeliveryPolicy,
    Notifier,
    NotifierStats,
    TenantLookup,
)
from ._queue import QueueFilter, in_queue, queue_key, ranked, severity_of, waiting_since
from ._render import (
    Message,
    duration_in_words,
    person_in_words,
    render_alert,
    user_activity_url,
    utc_time,
    video_call_url,
)
from ._response import GOAL_MS, ResponseFigures, response_figures
from ._slack import (
    SLACK_API_URL,
    ClientOptions,
    Posted,
    SlackDefaults,
    SlackError,
    SlackTarget,
    mask,
    mask_url,
    slack_target,
)

__all__ = [
    "GOAL_MS",
    "PRESENCE_THRESHOLDS",
    "SLACK_API_URL",
    "TRIGGER_THRESHOLDS",
    "ActorNotes",
    "Alert",
    "AlertMessage",
    "AlertOpened",
    "AlertStatus",
    "AlertUpdated",
    "ClientOptions",
    "DeliveryPolicy",
    "DeliveryStatus",
    "Message",
    "Notifier",
    "NotifierStats",
    "Posted",
    "QueueFilter",
    "ResponseFigures",
    "SlackDefaults",
    "SlackDescription",
    "SlackError",
    "SlackTarget",
    "TenantLookup",
    "add_alert_commands",
    "call_invitations_in_words",
    "describe_slack",
    "duration_in_words",
    "fires_when",
    "identity_mode",
    "in_queue",
    "mask",
    "mask_url",
    "origin_rule_in_words",
    "person_in_words",
    "queue_key",
    "ranked",
    "rate_limit_in_words",
    "render_alert",
    "response_figures",
    "run_slack_command",
    "run_tenant_set",
    "run_tenant_show",
    "sample_message",
    "send_test_message",
    "severity_of",
    "slack_target",
    "threshold_in_words",
    "tier_weights_in_words",
    "tiers_in_words",
    "user_activity_url",
    "utc_time",
    "video_call_url",
    "waiting_since",
]
