"""A tenant's settings in words, without secrets. Pure.

``tippen-rt tenant show`` and ``tenant set`` print them as lines; the
dashboard's Settings panel shows them from ``GET /api/admin/settings``.  Both
take their wording from here, so the operator and the support team read the
same sentence for the same setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..actors import in_words
from ..events import TIERS
from ..tenants import Tenant, TenantSettings
from ._slack import SlackDefaults, slack_target

__all__ = [
    "PRESENCE_THRESHOLDS",
    "TRIGGER_THRESHOLDS",
    "SlackDescription",
    "call_invitations_in_words",
    "describe_slack",
    "fires_when",
    "identity_mode",
    "origin_rule_in_words",
    "rate_limit_in_words",
    "threshold_in_words",
    "tier_weights_in_words",
    "tiers_in_words",
]

#: The thresholds each trigger's rule reads (``actors/_rules.py``).
TRIGGER_THRESHOLDS: Mapping[str, tuple[str, ...]] = {
    "stuck_on_page": ("stuck_on_page_s", "idle_after_s"),
    "low_activity": ("low_activity_min_events", "low_activity_window_s"),
    "multiple_errors": ("error_burst_count", "error_window_s"),
    "long_inactivity": ("inactivity_s",),
}

#: The presence and session thresholds (docs/presence.md) and what each decides.
PRESENCE_THRESHOLDS: Mapping[str, str] = {
    "idle_after_s": "idle after no input for",
    "presence_timeout_s": "away after no heartbeat for",
    "away_end_s": "session ends after away for",
    "unload_grace_s": "session ends after the page closed for",
    "session_timeout_s": "session ends after no events for",
}

#: What a count threshold counts, one and many (the others are seconds or days).
_COUNTED = {
    "low_activity_min_events": ("interaction", "interactions"),
    "error_burst_count": ("error", "errors"),
    "retention_days": ("day", "days"),
    "max_live_users": ("live user", "live users"),
    "slack_max_per_minute": ("Slack message a minute", "Slack messages a minute"),
}


def threshold_in_words(name: str, value: float) -> str:
    """``stuck_on_page_s`` 300 -> ``5 min``; ``error_burst_count`` 3 -> ``3 errors``;
    ``retention_days`` 90 -> ``90 days``; a bound of 0 -> ``no limit``."""
    if name.endswith("_s"):
        return in_words(value)
    if value == 0 and name in ("max_live_users", "slack_max_per_minute"):
        return "no limit"
    one, many = _COUNTED.get(name, ("", ""))
    return f"{int(value):,} {one if value == 1 else many}".rstrip()


def fires_when(trigger: str, s: TenantSettings) -> str:
    """When ``trigger`` fires with these thresholds, in words (README's table)."""
    if trigger == "stuck_on_page":
        return (
            f"{in_words(s.stuck_on_page_s)} on the same page while still trying"
            f" (input never pausing for {in_words(s.idle_after_s)})"
        )
    if trigger == "low_activity":
        window = in_words(s.low_activity_window_s)
        if s.low_activity_min_events <= 0:
            return "never (low_activity_min_events is 0)"
        return (
            f"fewer than {s.low_activity_min_events} interactions in the last {window},"
            f" once the page has been visible with the user there for {window}"
        )
    if trigger == "multiple_errors":
        return f"more than {s.error_burst_count} errors within {in_words(s.error_window_s)}"
    if trigger == "long_inactivity":
        return (
            f"no input at all for {in_words(s.inactivity_s)}"
            " while the page is visible and the user there"
        )
    raise ValueError(f"{trigger!r} is not a trigger")


def tiers_in_words(tiers: tuple[str, ...]) -> str:
    """``all tiers``, or the tiers: ``paid, enterprise``."""
    return "all tiers" if tiers == TIERS else ", ".join(tiers)


def call_invitations_in_words(s: TenantSettings) -> str:
    """Whether a video call invites the user's page, and for how long."""
    if not s.call_invitations:
        return "off (the agent shares the call link some other way)"
    return (
        "on (a video call shows the user an invitation on their page;"
        f" no answer in {in_words(s.invite_timeout_s)} counts as ignored)"
    )


def tier_weights_in_words(s: TenantSettings) -> str:
    """``tier weight enterprise 3, paid 2, free_trial 1, then severity, then waiting time``."""
    weights = sorted(TIERS, key=lambda t: -s.tier_weight(t))
    return (
        "tier weight "
        + ", ".join(f"{t} {s.tier_weight(t)}" for t in weights)
        + ", then the trigger's severity, then the longest wait"
    )


def rate_limit_in_words(alert_rate_limit_s: float) -> str:
    """``one Slack alert per user per 10 min``, or ``none``."""
    minutes = alert_rate_limit_s / 60
    return "none" if minutes == 0 else f"one Slack alert per user per {minutes:g} min"


def origin_rule_in_words(require_origin: bool) -> str:
    """Whether event batches must carry an ``Origin`` header, and what that means."""
    if require_origin:
        return "required (batches without an Origin header are refused)"
    return "not required (servers may post events; verify identity)"


def identity_mode(tenant: Tenant) -> str:
    """``off``, ``on`` (a userHash is checked when sent) or ``required``."""
    if not tenant.identity_secret:
        return "off"
    return "required" if tenant.settings.require_user_hash else "on"


@dataclass(frozen=True, slots=True)
class SlackDescription:
    """Where a tenant's alerts go, secrets masked."""

    #: ``bot``, ``webhook`` or ``off``.
    mode: str
    #: ``tenant`` (its own target), ``service`` (TIPPEN_SLACK_...) or ``""`` (off).
    source: str
    #: The target without secrets (``SlackTarget.describe``), or ``""``.
    target: str
    #: The bot's channel (not a secret), or ``""``.
    channel: str
    #: Messages are edited when the alert is acknowledged or resolved (bot mode).
    updates_messages: bool
    #: All of it in one line, as ``tenant show`` prints it.
    in_words: str


def describe_slack(settings: TenantSettings, defaults: SlackDefaults) -> SlackDescription:
    """Where ``settings`` send alerts (or the service's default target), masked."""
    own = slack_target(settings, SlackDefaults())
    target = own or slack_target(settings, defaults)
    if own is not None:
        words = own.describe()
        if own.can_update:
            words += " (messages are updated when resolved or acknowledged)"
    elif target is not None:
        words = f"the service default: {target.describe()}"
    else:
        words = "off (alerts go to the dashboard and the log only)"
    if settings.slack_bot_token and not settings.slack_channel:
        words += "; the bot token has no channel"
    if target is None:
        return SlackDescription("off", "", "", "", False, words)
    return SlackDescription(
        mode=target.mode,
        source="tenant" if own is not None else "service",
        target=target.describe(),
        channel=target.channel,
        updates_messages=target.can_update,
        in_words=words,
    )
