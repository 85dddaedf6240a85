"""The JSON the dashboard reads: live users, stored summaries, events. Pure.

Times are epoch milliseconds.  Strings that come from tracked apps (user ids,
routes, error messages...) are passed through as data: the dashboard puts them
in the page as text, never as markup.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

import orjson

from ..actors import Trigger, UserState
from ..alerts import (
    PRESENCE_THRESHOLDS,
    TRIGGER_THRESHOLDS,
    SlackDefaults,
    call_invitations_in_words,
    describe_slack,
    fires_when,
    identity_mode,
    origin_rule_in_words,
    person_in_words,
    rate_limit_in_words,
    severity_of,
    threshold_in_words,
    tier_weights_in_words,
    tiers_in_words,
    waiting_since,
)
from ..events import TIERS
from ..tenants import TRIGGERS, Tenant, TenantSettings

__all__ = [
    "alert_json",
    "event_json",
    "queue_json",
    "settings_json",
    "summary_json",
    "user_json",
]

#: Error messages are cut to this in lists (the events API has them whole).
SHORT_MESSAGE_CHARS = 300


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


def user_json(state: UserState) -> dict[str, Any]:
    """A live user's state as the dashboard shows it (as of its last evaluation)."""
    message = state.last_error_message
    if message is not None and len(message) > SHORT_MESSAGE_CHARS:
        message = message[:SHORT_MESSAGE_CHARS] + "…"
    return {
        "userId": state.user_id,
        "email": state.email,
        "name": state.name,
        "tier": state.tier,
        "live": True,
        "sessionStartedAt": _ms(state.session_started_at),
        "lastEventAt": _ms(state.last_event_at),
        "lastInteractionAt": _ms(state.last_interaction_at),
        "currentRoute": state.current_route,
        "routeEnteredAt": _ms(state.route_entered_at) if state.current_route else None,
        "visible": state.visible,
        "presence": state.presence,
        "presenceSince": _ms(state.presence_since),
        "focused": state.focused,
        "lastInputAt": _ms(state.last_input_at),
        "totalEvents": state.total_events,
        "totalErrors": state.total_errors,
        "lastErrorAt": _ms(state.last_error_at),
        "lastErrorMessage": message,
        "needsSupport": state.needs_support,
        "supportTriggeredAt": _ms(state.support_triggered_at),
        "triggers": [
            {
                "trigger": trigger.value,
                "title": trigger.in_words,
                "since": _ms(since),
                "reason": reason,
            }
            for trigger, since, reason in state.active
        ],
        "acknowledgedAt": _ms(state.acknowledged_at),
        "acknowledgedBy": state.acknowledged_by,
        "claimedBy": state.claimed_by,
        "claimedByAgent": state.claimed_by_agent,
        "claimedAt": _ms(state.claimed_at),
    }


def queue_json(state: UserState, settings: TenantSettings, rank: int) -> dict[str, Any]:
    """A user in the needs-help queue: the live state, where they rank and why."""
    return {
        **user_json(state),
        "rank": rank,
        "person": person_in_words(state.name, state.email, state.user_id),
        "tierWeight": settings.tier_weight(state.tier),
        "severity": severity_of(state),
        "waitingSince": _ms(waiting_since(state)),
    }


def summary_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored summary row (a user who may no longer be live)."""
    reasons = orjson.loads(row["support_reasons"] or "[]")
    triggers = []
    for value in reasons:
        try:
            title = Trigger(value).in_words
        except ValueError:
            title = str(value)
        triggers.append({"trigger": value, "title": title, "since": None, "reason": None})
    return {
        "userId": row["user_id"],
        "email": row["user_email"],
        "name": row["user_name"],
        "tier": row["subscription_tier"],
        "live": False,
        "presence": "gone",
        "presenceSince": row["last_active_at"],
        "sessionOpen": bool(row["session_open"]),
        "firstSeenAt": row["first_seen_at"],
        "sessionStartedAt": row["session_started_at"],
        "lastEventAt": row["last_active_at"],
        "currentRoute": row["current_route"],
        "timeOnCurrentPageMs": row["time_on_current_page"],
        "totalEvents": row["total_events"],
        "totalErrors": row["total_errors"],
        "sessionEvents": row["session_events"],
        "sessionErrors": row["session_errors"],
        "lastErrorAt": row["last_error_at"],
        "needsSupport": bool(row["needs_support"]),
        "supportTriggeredAt": row["support_triggered_at"],
        "triggers": triggers,
    }


def event_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """One stored event; only the fields its type has."""
    out: dict[str, Any] = {
        "id": row["id"],
        "type": row["event_type"],
        "timestamp": row["timestamp"],
        "clientTimestamp": row["client_timestamp"],
        "receivedAt": row["received_at"],
        "route": row["route"],
    }
    optional = {
        "element": row["element"],
        "text": row["element_text"],
        "formId": row["form_id"],
        "durationMs": row["duration_ms"],
        "message": row["error_message"],
        "source": row["error_source"],
        "stack": row["error_stack"],
        "name": row["event_name"],
        "visibility": row["visibility"],
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    if row["event_data"] is not None:
        out["data"] = orjson.loads(row["event_data"])
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def alert_json(alert: Any) -> dict[str, Any]:
    """An alert record (a dataclass from the alerts package) with camelCase keys."""
    to_mapping = getattr(alert, "to_mapping", None)
    if callable(to_mapping):
        fields = dict(to_mapping())
    elif dataclasses.is_dataclass(alert) and not isinstance(alert, type):
        fields = {f.name: getattr(alert, f.name) for f in dataclasses.fields(alert)}
    elif isinstance(alert, Mapping):
        fields = dict(alert)
    else:
        raise TypeError(f"not an alert: {alert!r}")
    out = {_camel(k): _plain(v) for k, v in fields.items()}
    trigger = fields.get("trigger")
    if isinstance(trigger, str) and trigger in _TRIGGER_VALUES:
        out["title"] = Trigger(trigger).in_words
    return out


_TRIGGER_VALUES = frozenset(t.value for t in Trigger)


def _threshold(s: TenantSettings, name: str) -> dict[str, Any]:
    value = getattr(s, name)
    return {"name": name, "value": value, "inWords": threshold_in_words(name, value)}


def settings_json(tenant: Tenant, slack_defaults: SlackDefaults) -> dict[str, Any]:
    """A tenant's settings as support staff see them: no secret (the identity
    secret, a bot token, a webhook URL, key hashes) leaves in clear."""
    s = tenant.settings
    slack = describe_slack(s, slack_defaults)
    return {
        "tenant": tenant.name,
        "triggers": [
            {
                "trigger": name,
                "title": Trigger(name).in_words,
                "on": name not in s.triggers_off,
                "tiers": list(s.tiers_of(name)),
                "tiersInWords": tiers_in_words(s.tiers_of(name)),
                "firesWhen": fires_when(name, s),
                "thresholds": [_threshold(s, t) for t in TRIGGER_THRESHOLDS[name]],
            }
            for name in TRIGGERS
        ],
        "presence": [
            {**_threshold(s, name), "label": label} for name, label in PRESENCE_THRESHOLDS.items()
        ],
        "retention": _threshold(s, "retention_days"),
        "origins": list(tenant.origins),
        "requireOrigin": s.require_origin,
        "originRule": origin_rule_in_words(s.require_origin),
        "identity": identity_mode(tenant),
        "slack": {
            "mode": slack.mode,
            "source": slack.source,
            "target": slack.target,
            "channel": slack.channel,
            "updatesMessages": slack.updates_messages,
            "inWords": slack.in_words,
        },
        "alertRateLimit": {
            **_threshold(s, "alert_rate_limit_s"),
            "inWords": rate_limit_in_words(s.alert_rate_limit_s),
        },
        "slackMaxPerMinute": _threshold(s, "slack_max_per_minute"),
        "maxLiveUsers": _threshold(s, "max_live_users"),
        "videoCallTemplate": s.video_call_template,
        "callInvitations": {
            "on": s.call_invitations,
            "timeout": _threshold(s, "invite_timeout_s"),
            "inWords": call_invitations_in_words(s),
        },
        # The needs-help queue's order (the dashboard sorts with it): docs/support.md.
        "queue": {
            "tierWeights": {tier: s.tier_weight(tier) for tier in TIERS},
            "severity": {t.value: t.severity for t in Trigger},
            "inWords": tier_weights_in_words(s),
        },
    }
