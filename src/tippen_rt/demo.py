"""``tippen-rt serve --demo``: a ready tenant so a newcomer sees it work at once.

The sample app (``/demo/app``) says how to make each support trigger fire,
with the demo tenant's real thresholds, and offers a switch to short ones
(:data:`SHORT_THRESHOLDS`) so an alert shows within a minute.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from .actors import in_words
from .events import TIERS
from .persist import (
    NoSuchTenant,
    create_tenant,
    get_tenant_by_name,
    rotate_admin_token,
    update_tenant,
)
from .tenants import TRIGGERS, Tenant, TenantSettings, hash_admin_token

DEMO_TENANT = "demo"


@dataclass(frozen=True, slots=True)
class DemoAccess:
    """What the demo prints: the tenant and a login token that works now."""

    tenant: Tenant
    admin_token: str


_ANY_ADDRESS = re.compile(r"^(https?://)(?:0\.0\.0\.0|\[::\])(:\d+)$")
_LOOPBACK = re.compile(r"^(https?://)127\.0\.0\.1(:\d+)$")


def demo_base_url(bound_url: str, public_url: str = "") -> str:
    """The URL to show a newcomer: the public URL if set; for a service bound to
    every address (``0.0.0.0``), this machine's loopback; else the bound one."""
    if public_url:
        return public_url.rstrip("/")
    return _ANY_ADDRESS.sub(r"\g<1>127.0.0.1\g<2>", bound_url)


def demo_origins(bound_url: str, public_url: str = "") -> list[str]:
    """The origins the sample app may be opened at: the service itself, under
    each name that reaches it (127.0.0.1 and localhost, the public URL)."""
    base = _ANY_ADDRESS.sub(r"\g<1>127.0.0.1\g<2>", bound_url)
    origins = [base]
    if _LOOPBACK.match(base):
        origins.append(_LOOPBACK.sub(r"\g<1>localhost\g<2>", base))
    if public_url:
        parts = urlsplit(public_url)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return list(dict.fromkeys(origins))


#: Where the demo keeps its login token in plain text (``server_secrets``), so
#: the same token works across restarts and open dashboards stay logged in.
#: Only the demo tenant's: real tenants' tokens are stored only hashed.
DEMO_TOKEN_SECRET = "demo_admin_token"


def ensure_demo_tenant(
    conn: sqlite3.Connection, bound_url: str, public_url: str = ""
) -> DemoAccess:
    """Create the demo tenant if missing, allow its origins, and return its login token.

    The token is the one kept from the last start while it still matches the
    tenant (nobody rotated it meanwhile); otherwise a new one is made and kept.
    """
    origins = demo_origins(bound_url, public_url)
    try:
        tenant = get_tenant_by_name(conn, DEMO_TENANT)
    except NoSuchTenant:
        tenant, token = create_tenant(conn, DEMO_TENANT, origins)
        _keep_token(conn, token)
        return DemoAccess(tenant, token)
    merged = list(dict.fromkeys([*tenant.origins, *origins]))
    tenant = update_tenant(conn, DEMO_TENANT, origins=merged)
    row = conn.execute(
        "SELECT value FROM server_secrets WHERE name = ?", (DEMO_TOKEN_SECRET,)
    ).fetchone()
    if row is not None and hash_admin_token(row[0]) == tenant.admin_token_hash:
        return DemoAccess(tenant, str(row[0]))
    token = rotate_admin_token(conn, DEMO_TENANT)
    _keep_token(conn, token)
    return DemoAccess(get_tenant_by_name(conn, DEMO_TENANT), token)


def _keep_token(conn: sqlite3.Connection, token: str) -> None:
    conn.execute(
        "INSERT INTO server_secrets (name, value, created_at)"
        " VALUES (?, ?, CAST(strftime('%s','now') AS INTEGER) * 1000)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (DEMO_TOKEN_SECRET, token),
    )


#: The demo's "short thresholds": every trigger can fire within a minute of
#: doing what the sample app says.  ``idle_after_s`` is short too, so a pause
#: in input shows (and restarts "stuck") within seconds; the sample app then
#: sends heartbeats more often (:func:`sample_app_heartbeat_ms`).  Errors need
#: no change: the 4th error fires at once.
SHORT_THRESHOLDS: dict[str, float] = {
    "stuck_on_page_s": 30.0,
    "low_activity_window_s": 30.0,
    "inactivity_s": 45.0,
    "idle_after_s": 15.0,
}

#: The tracker's heartbeat interval when the page does not set one
#: (``data-tippen-heartbeat-interval``; docs/presence.md).
TRACKER_HEARTBEAT_S = 30.0

#: What the short thresholds replace: every tenant's defaults.
DEFAULT_THRESHOLDS: dict[str, float] = {
    name: getattr(TenantSettings(), name) for name in SHORT_THRESHOLDS
}


def thresholds_preset(settings: TenantSettings) -> str:
    """``"short"``, ``"default"`` or ``"custom"``: which thresholds the demo tenant has."""
    for name, values in (("short", SHORT_THRESHOLDS), ("default", DEFAULT_THRESHOLDS)):
        if all(getattr(settings, field) == value for field, value in values.items()):
            return name
    return "custom"


def set_demo_thresholds(conn: sqlite3.Connection, short: bool) -> Tenant:
    """Give the demo tenant the short thresholds, or the defaults back; nothing else changes."""
    tenant = get_tenant_by_name(conn, DEMO_TENANT)
    values: dict[str, Any] = dict(SHORT_THRESHOLDS if short else DEFAULT_THRESHOLDS)
    return update_tenant(conn, DEMO_TENANT, settings=replace(tenant.settings, **values))


def sample_app_heartbeat_ms(settings: TenantSettings) -> int | None:
    """How often the sample app sends heartbeats, or None for the tracker's default.

    The defaults' ratios: at least two heartbeats per ``idle_after_s`` and
    three per ``presence_timeout_s``, so a user who keeps moving the mouse
    stays ``active`` and a tab that is open never looks ``away``.
    """
    interval_s = min(
        TRACKER_HEARTBEAT_S, settings.idle_after_s / 2, settings.presence_timeout_s / 3
    )
    return None if interval_s >= TRACKER_HEARTBEAT_S else max(1000, int(interval_s * 1000))


def sample_app_values(settings: TenantSettings, tier: str) -> dict[str, str]:
    """What the sample app's page says about the triggers, from ``settings``:
    each threshold in words, which tiers each trigger is for, the switch."""
    preset = thresholds_preset(settings)
    values: dict[str, str] = {
        "stuck_on_page": in_words(settings.stuck_on_page_s),
        "idle_after": in_words(settings.idle_after_s),
        "low_activity_window": in_words(settings.low_activity_window_s),
        "low_activity_min_events": str(settings.low_activity_min_events),
        "error_burst_count": str(settings.error_burst_count),
        "errors_needed": str(settings.error_burst_count + 1),
        "error_window": in_words(settings.error_window_s),
        "inactivity": in_words(settings.inactivity_s),
        "alert_rate_limit": in_words(settings.alert_rate_limit_s),
        "preset": preset,
        "preset_words": {
            "short": "short thresholds (for the demo)",
            "default": "the defaults",
            "custom": "thresholds set with tippen-rt tenant set",
        }[preset],
        "switch_to": "default" if preset == "short" else "short",
        "switch_label": "Back to the defaults" if preset == "short" else "Use short thresholds",
    }
    for trigger in TRIGGERS:
        values[f"{trigger}_for"] = _who(settings, trigger, tier)
    return values


def _who(settings: TenantSettings, trigger: str, tier: str) -> str:
    """For whom ``trigger`` runs, and whether for this page's user."""
    if trigger in settings.triggers_off:
        return "turned off for this tenant"
    tiers = settings.tiers_of(trigger)
    everyone = "every tier" if set(tiers) == set(TIERS) else " and ".join(tiers) + " users"
    verdict = "this page's user too" if tier in tiers else f"not this page's {tier} user"
    return f"{everyone}: {verdict}"


def describe_thresholds(settings: TenantSettings) -> dict[str, Any]:
    """The demo tenant's thresholds as the switch endpoint answers them."""
    return {
        "preset": thresholds_preset(settings),
        **{name: getattr(settings, name) for name in SHORT_THRESHOLDS},
    }
