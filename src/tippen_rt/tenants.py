"""Tenants: who may send events, from which origins, and their own settings.

A tenant is one SaaS app using tippen-rt.  Its API key (``client_...``) goes in
the tracker's script tag and is public; its admin token logs into the
dashboard and is stored only as a hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any
from urllib.parse import quote, urlsplit

from .events import TIERS

__all__ = [
    "DEFAULT_TIER_WEIGHTS",
    "DEFAULT_TRIGGER_TIERS",
    "TRIGGERS",
    "Tenant",
    "TenantSettings",
    "hash_admin_token",
    "new_admin_token",
    "new_api_key",
    "normalize_origin",
    "verify_user_hash",
]

API_KEY_PREFIX = "client_"
ADMIN_TOKEN_PREFIX = "admin_"
#: ``{room}``: a room name only this tenant can know (see :meth:`Tenant.call_room`),
#: so nobody joins a support call by guessing it, and the call service never
#: learns the user id.
DEFAULT_VIDEO_CALL_TEMPLATE = "https://meet.jit.si/tippen-{tenant}-{room}"


def new_api_key() -> str:
    """A fresh public API key for the tracker."""
    return API_KEY_PREFIX + secrets.token_urlsafe(24)


def new_admin_token() -> str:
    """A fresh secret admin token; shown once, stored hashed."""
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_admin_token(token: str) -> str:
    """The stored form of an admin token.

    Tokens are 256 random bits, so a fast hash is enough: there is nothing to
    guess that a slow hash would protect.
    """
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def verify_user_hash(secret: str, user_id: str, user_hash: str) -> bool:
    """Check the app's HMAC-SHA256 of ``user_id`` (hex) made with the tenant secret.

    Any text is just a mismatch, never an error: compared as bytes, since
    ``hmac.compare_digest`` refuses non-ASCII strings with a TypeError.
    """
    expected = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), user_hash.lower().encode())


def normalize_origin(origin: str) -> str:
    """``https://App.Example.com:443/`` -> ``https://app.example.com``; ``*`` stays.

    Raises ValueError for anything that is not a scheme://host[:port] origin.
    """
    origin = origin.strip()
    if origin == "*":
        return origin
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{origin!r} has a path; an origin is scheme://host[:port]")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = "" if parts.port in (None, default_port) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


#: The support triggers by name (``actors.Trigger`` has the same values) and
#: the subscription tiers each applies to unless a tenant says otherwise
#: (DESIGN.md, "Support triggers").
DEFAULT_TRIGGER_TIERS: Mapping[str, tuple[str, ...]] = {
    "stuck_on_page": TIERS,
    "low_activity": ("free_trial",),
    "multiple_errors": TIERS,
    "long_inactivity": ("free_trial",),
}
TRIGGERS = tuple(DEFAULT_TRIGGER_TIERS)
_NO_TRIGGERS: frozenset[str] = frozenset()

#: How much each tier weighs in the needs-help queue (docs/support.md): the
#: heaviest is helped first.  ``tippen-rt tenant set --tier-weight`` changes them.
DEFAULT_TIER_WEIGHTS: Mapping[str, int] = {"enterprise": 3, "paid": 2, "free_trial": 1}
MAX_TIER_WEIGHT = 1000


def _known_trigger(name: str, what: str) -> str:
    if name not in DEFAULT_TRIGGER_TIERS:
        raise ValueError(f"{what}: {name!r} is not a trigger; triggers: {', '.join(TRIGGERS)}")
    return name


def _tier_list(names: object, what: str) -> tuple[str, ...]:
    """Tiers in their canonical order; ValueError for an empty list or an unknown tier."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{what} must be a list of tiers: {names!r}")
    unknown = [n for n in names if n not in TIERS]
    if unknown:
        raise ValueError(f"{what}: {unknown[0]!r} is not a tier; tiers: {', '.join(TIERS)}")
    if not names:
        raise ValueError(f"{what} needs at least one tier (to stop a trigger, turn it off)")
    return tuple(t for t in TIERS if t in names)


def _weight(value: int, tier: str) -> int:
    if not 0 <= value <= MAX_TIER_WEIGHT:
        raise ValueError(f"the weight of {tier} must be from 0 to {MAX_TIER_WEIGHT}")
    return value


#: Thresholds that are counts, not seconds (0 allowed but for retention).
_COUNTS = frozenset(
    {
        "low_activity_min_events",
        "error_burst_count",
        "retention_days",
        "max_live_users",
        "slack_max_per_minute",
    }
)


@dataclass(frozen=True, slots=True)
class TenantSettings:
    """Per-tenant thresholds and integrations; stored as JSON, defaults from DESIGN.md."""

    # Support triggers
    stuck_on_page_s: float = 5 * 60
    low_activity_window_s: float = 10 * 60
    low_activity_min_events: int = 3
    error_burst_count: int = 3  # fires when MORE than this many errors ...
    error_window_s: float = 5 * 60  # ... fall within this window
    inactivity_s: float = 15 * 60
    # Presence (docs/presence.md)
    presence_timeout_s: float = 90.0  # no heartbeat for this long: "away"
    idle_after_s: float = 60.0  # visible, no input for this long: "idle"
    away_end_s: float = 5 * 60  # "away" for this long: the session ends ("gone")
    session_timeout_s: float = 30 * 60
    unload_grace_s: float = 60.0
    # Alerts
    alert_rate_limit_s: float = 10 * 60
    slack_webhook_url: str = ""
    slack_bot_token: str = ""
    slack_channel: str = ""
    video_call_template: str = DEFAULT_VIDEO_CALL_TEMPLATE
    #: A video call invites the user's own page (docs/support.md); off: the
    #: agent shares the link some other way.
    call_invitations: bool = True
    #: An invitation nobody answered is "ignored" after this long.
    invite_timeout_s: float = 120.0
    # Data
    retention_days: int = 90
    require_user_hash: bool = False
    #: Refuse event batches without an ``Origin`` header (server-to-server senders
    #: turn it off and should use identity verification: docs/tracker.md).
    require_origin: bool = True
    # Which triggers run, for whom (docs/presence.md)
    #: Triggers turned off, in ``TRIGGERS`` order.
    triggers_off: tuple[str, ...] = ()
    #: (trigger, tiers) where a trigger's tiers differ from DEFAULT_TRIGGER_TIERS,
    #: in ``TRIGGERS`` order; stored as ``{"low_activity": ["free_trial", "paid"]}``.
    trigger_tiers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: (tier, weight) where a tier's weight in the needs-help queue differs from
    #: DEFAULT_TIER_WEIGHTS, in ``TIERS`` order; stored as ``{"paid": 5}``.
    tier_weights: tuple[tuple[str, int], ...] = ()
    # Bounds (0: none)
    #: Live users at once; a new user beyond it gets 429 (existing ones keep working).
    max_live_users: int = 20_000
    #: Slack messages per minute; beyond it one digest ("N more users need help").
    slack_max_per_minute: int = 10
    #: Derived, not stored: the triggers that apply to each tier (the rules look
    #: this up for every user at every round).
    _triggers_by_tier: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_tier = {
            tier: frozenset(
                t for t in TRIGGERS if t not in self.triggers_off and tier in self.tiers_of(t)
            )
            for tier in TIERS
        }
        object.__setattr__(self, "_triggers_by_tier", by_tier)

    #: The thresholds ``tippen-rt tenant set --set NAME=VALUE`` changes (docs/presence.md).
    THRESHOLDS = (
        "stuck_on_page_s",
        "low_activity_window_s",
        "low_activity_min_events",
        "error_burst_count",
        "error_window_s",
        "inactivity_s",
        "presence_timeout_s",
        "idle_after_s",
        "away_end_s",
        "session_timeout_s",
        "unload_grace_s",
        "retention_days",
        "max_live_users",
        "slack_max_per_minute",
        "invite_timeout_s",
    )

    @classmethod
    def threshold_changes(cls, assignments: list[str]) -> dict[str, Any]:
        """``["stuck_on_page_s=120", ...]`` as checked changes; ValueError says what is wrong."""
        changes: dict[str, Any] = {}
        for assignment in assignments:
            name, sep, text = assignment.partition("=")
            name = name.strip()
            if not sep or name not in cls.THRESHOLDS:
                raise ValueError(
                    f"--set takes NAME=VALUE with NAME one of {', '.join(cls.THRESHOLDS)};"
                    f" got {assignment!r}"
                )
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"--set {name}: {text!r} is not a number") from None
            counts = name in _COUNTS
            if counts and value != int(value):
                raise ValueError(f"--set {name}: must be a whole number")
            if not 0 < value < 10**9 and not (counts and value == 0 and name != "retention_days"):
                raise ValueError(f"--set {name}: must be more than 0")
            changes[name] = int(value) if counts else value
        return changes

    def tiers_of(self, trigger: str) -> tuple[str, ...]:
        """The tiers ``trigger`` applies to (whether or not it is on)."""
        for name, tiers in self.trigger_tiers:
            if name == trigger:
                return tiers
        return DEFAULT_TRIGGER_TIERS[trigger]

    def tier_weight(self, tier: str) -> int:
        """How much ``tier`` weighs in the needs-help queue (0 for an unknown tier)."""
        for name, weight in self.tier_weights:
            if name == tier:
                return weight
        return DEFAULT_TIER_WEIGHTS.get(tier, 0)

    def with_tier_weights(self, weights: Mapping[str, int | None]) -> TenantSettings:
        """A copy with tiers' queue weights set (None: back to the default)."""
        own = dict(self.tier_weights)
        for tier, weight in weights.items():
            if tier not in TIERS:
                raise ValueError(f"{tier!r} is not a tier; tiers: {', '.join(TIERS)}")
            own[tier] = DEFAULT_TIER_WEIGHTS[tier] if weight is None else _weight(weight, tier)
        return replace(
            self,
            tier_weights=tuple(
                (t, own[t]) for t in TIERS if t in own and own[t] != DEFAULT_TIER_WEIGHTS[t]
            ),
        )

    @staticmethod
    def tier_weight_changes(assignments: list[str]) -> dict[str, int | None]:
        """``--tier-weight TIER=N|default`` as checked changes; ValueError says what is wrong."""
        changes: dict[str, int | None] = {}
        for assignment in assignments:
            tier, sep, value = (part.strip() for part in assignment.partition("="))
            if not sep or tier not in TIERS:
                raise ValueError(
                    f"--tier-weight takes TIER=N or TIER=default with TIER one of"
                    f" {', '.join(TIERS)}; got {assignment!r}"
                )
            if value == "default":
                changes[tier] = None
                continue
            try:
                changes[tier] = _weight(int(value), tier)
            except ValueError:
                raise ValueError(
                    f"--tier-weight {tier}: {value!r} is not a whole number from 0 to"
                    f" {MAX_TIER_WEIGHT}"
                ) from None
        return changes

    def trigger_applies(self, trigger: str, tier: str) -> bool:
        """True if ``trigger`` is on and applies to users of ``tier``."""
        return trigger in self.triggers_for(tier)

    def triggers_for(self, tier: str) -> frozenset[str]:
        """The triggers that are on and apply to users of ``tier``."""
        return self._triggers_by_tier.get(tier, _NO_TRIGGERS)

    def with_triggers(
        self, on_off: Mapping[str, bool], tiers: Mapping[str, tuple[str, ...] | None]
    ) -> TenantSettings:
        """A copy with triggers turned on or off and their tiers set (None: the default)."""
        off = set(self.triggers_off) - {t for t, on in on_off.items() if on}
        off |= {t for t, on in on_off.items() if not on}
        own = dict(self.trigger_tiers)
        for trigger, chosen in tiers.items():
            _known_trigger(trigger, "trigger")
            own[trigger] = (
                DEFAULT_TRIGGER_TIERS[trigger]
                if chosen is None
                else _tier_list(chosen, f"tiers of {trigger}")
            )
        return replace(
            self,
            triggers_off=tuple(t for t in TRIGGERS if t in off),
            trigger_tiers=tuple(
                (t, own[t]) for t in TRIGGERS if t in own and own[t] != DEFAULT_TRIGGER_TIERS[t]
            ),
        )

    @staticmethod
    def trigger_changes(
        on_off: list[str], tiers: list[str]
    ) -> tuple[dict[str, bool], dict[str, tuple[str, ...] | None]]:
        """``--trigger NAME=on|off`` and ``--trigger-tiers NAME=TIER,...|all|default``
        as checked changes; ValueError says what is wrong."""
        switched: dict[str, bool] = {}
        for assignment in on_off:
            name, sep, value = (part.strip() for part in assignment.partition("="))
            if not sep or value not in ("on", "off"):
                raise ValueError(f"--trigger takes NAME=on or NAME=off; got {assignment!r}")
            switched[_known_trigger(name, "--trigger")] = value == "on"
        chosen: dict[str, tuple[str, ...] | None] = {}
        for assignment in tiers:
            name, sep, value = (part.strip() for part in assignment.partition("="))
            if not sep:
                raise ValueError(
                    f"--trigger-tiers takes NAME=TIER[,TIER...], NAME=all or NAME=default;"
                    f" got {assignment!r}"
                )
            name = _known_trigger(name, "--trigger-tiers")
            if value == "default":
                chosen[name] = None
            elif value == "all":
                chosen[name] = TIERS
            else:
                names = [t.strip() for t in value.split(",") if t.strip()]
                chosen[name] = _tier_list(names, f"--trigger-tiers {name}")
        return switched, chosen

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TenantSettings:
        """Build from stored JSON; unknown keys are ignored, wrong types rejected."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if not f.init or f.name not in data:
                continue
            value = data[f.name]
            default = f.default
            if f.name == "triggers_off":
                if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                    raise ValueError(f"tenant setting triggers_off must be a list: {value!r}")
                off = {_known_trigger(t, "tenant setting triggers_off") for t in value}
                values[f.name] = tuple(t for t in TRIGGERS if t in off)
                continue
            if f.name == "tier_weights":
                if not isinstance(value, Mapping) or not all(
                    isinstance(w, int) and not isinstance(w, bool) for w in value.values()
                ):
                    raise ValueError(
                        f"tenant setting tier_weights must map tiers to numbers: {value!r}"
                    )
                values[f.name] = TenantSettings().with_tier_weights(value).tier_weights
                continue
            if f.name == "trigger_tiers":
                if not isinstance(value, Mapping):
                    raise ValueError(f"tenant setting trigger_tiers must be an object: {value!r}")
                for t in value:
                    _known_trigger(t, "tenant setting trigger_tiers")
                values[f.name] = tuple(
                    (t, _tier_list(value[t], f"tenant setting trigger_tiers.{t}"))
                    for t in TRIGGERS
                    if t in value
                )
                continue
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, (int, float)):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                if ok and value < 0:
                    raise ValueError(f"tenant setting {f.name} must not be negative")
                if ok and isinstance(default, int):
                    value = int(value)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ValueError(f"tenant setting {f.name} has the wrong type: {value!r}")
            values[f.name] = value
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """The JSON form stored in SQLite."""
        data = asdict(self)
        del data["_triggers_by_tier"]
        data["triggers_off"] = list(self.triggers_off)
        data["trigger_tiers"] = {t: list(tiers) for t, tiers in self.trigger_tiers}
        data["tier_weights"] = dict(self.tier_weights)
        return data


@dataclass(frozen=True, slots=True)
class Tenant:
    """One app that sends events, as stored."""

    id: int
    name: str
    api_key: str
    admin_token_hash: str
    origins: tuple[str, ...] = ()
    settings: TenantSettings = field(default_factory=TenantSettings)
    identity_secret: str | None = None
    created_at: int = 0
    #: The key before the last ``tippen-rt tenant rotate-key``: still accepted
    #: until ``previous_api_key_expires_at`` (epoch ms), so deployed pages keep
    #: working while they are updated.
    previous_api_key: str | None = None
    previous_api_key_expires_at: int | None = None

    def accepts_api_key(self, api_key: str, now_ms: int) -> bool:
        """True if ``api_key`` is this tenant's key, or its previous one still in its overlap."""
        if api_key == self.api_key:
            return True
        return (
            api_key == self.previous_api_key
            and self.previous_api_key_expires_at is not None
            and now_ms < self.previous_api_key_expires_at
        )

    def allows_origin(self, origin: str) -> bool:
        """True if a browser page at ``origin`` may send this tenant's events."""
        if "*" in self.origins:
            return True
        try:
            return normalize_origin(origin) in self.origins
        except ValueError:
            return False

    def video_call_url(self, user_id: str) -> str:
        """The call link for ``user_id`` from the tenant's template."""
        return self.settings.video_call_template.format(
            tenant=quote(self.name, safe=""),
            user=quote(user_id, safe=""),
            room=self.call_room(user_id),
        )

    def call_room(self, user_id: str) -> str:
        """A call room name for ``user_id``: the same every time (Slack's button and
        the dashboard's lead to one room), unguessable without the tenant's secret
        admin token hash (a new token gives new rooms)."""
        digest = hmac.new(
            self.admin_token_hash.encode(), b"call-room:" + user_id.encode(), hashlib.sha256
        ).hexdigest()
        return digest[:16]
