"""Operator commands: ``tippen-rt tenant set`` (every per-tenant setting),
``tippen-rt tenant show`` and ``tippen-rt slack test``.  ``tippen_rt.cli`` adds
them to its parser."""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from ..config import Settings
from ..events import TIERS
from ..persist import (
    NoSuchTenant,
    ServedSettings,
    get_tenant_by_name,
    open_database,
    read_served_settings,
    update_tenant,
)
from ..tenants import (
    DEFAULT_TIER_WEIGHTS,
    DEFAULT_TRIGGER_TIERS,
    DEFAULT_VIDEO_CALL_TEMPLATE,
    TRIGGERS,
    Tenant,
    TenantSettings,
    normalize_origin,
)
from ._check import send_test_message
from ._describe import (
    call_invitations_in_words,
    describe_slack,
    identity_mode,
    origin_rule_in_words,
    rate_limit_in_words,
    tier_weights_in_words,
    tiers_in_words,
)
from ._render import duration_in_words, utc_time
from ._slack import ClientOptions, SlackDefaults, SlackError, mask, slack_target


def add_alert_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    tenant_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``tenant set`` and ``slack test`` to the CLI's parsers."""
    tset = tenant_commands.add_parser(
        "set",
        help="set a tenant's Slack target, video call link, alert rate limit, origins,"
        " identity verification, triggers and thresholds",
        description="Change a tenant's settings; with no options, show them. "
        "An empty value ('') removes a setting. The running service picks changes "
        "up within 10 seconds.",
    )
    tset.add_argument("name")
    tset.add_argument(
        "--slack-webhook-url",
        metavar="URL",
        help="post alerts to this Slack incoming webhook (default: none; the service's"
        " TIPPEN_SLACK_WEBHOOK_URL, if set)",
    )
    tset.add_argument(
        "--slack-bot-token",
        metavar="TOKEN",
        help="post alerts with this bot token (xoxb-...); '-' reads it from stdin"
        " (default: none; a bot token wins over a webhook)",
    )
    tset.add_argument(
        "--slack-channel",
        metavar="CHANNEL",
        help="the bot's channel, e.g. #support or C0123ABCD (default: none)",
    )
    tset.add_argument(
        "--video-call-template",
        metavar="TEMPLATE",
        help=(
            "call link with {tenant}, {user} and {room} (an unguessable room name per user;"
            f" default {DEFAULT_VIDEO_CALL_TEMPLATE})"
        ),
    )
    tset.add_argument(
        "--call-invitations",
        choices=("on", "off"),
        help="'on': starting a video call shows the user an invitation on their own page"
        " (Join / Not now; tippen-invite.js, docs/support.md), and the dashboard hears the"
        " answer; 'off': the agent shares the link some other way (default on)",
    )
    tset.add_argument(
        "--alert-rate-limit-min",
        type=float,
        metavar="MINUTES",
        help="at most one Slack alert per user per this many minutes (default 10; 0: no limit)",
    )
    tset.add_argument(
        "--add-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow a page origin to send events, e.g. https://app.example.com (repeatable;"
        " default: the origins given to `tenant add`)",
    )
    tset.add_argument(
        "--remove-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="stop allowing an origin (repeatable; default: none removed)",
    )
    tset.add_argument(
        "--identity",
        choices=("off", "on", "required"),
        help="identity verification: 'on' checks a userHash when one is sent, 'required'"
        " refuses events without a valid one (docs/tracker.md); the secret is made on first"
        " use and shown by `tippen-rt tenant show NAME --secret identity` (default off)",
    )
    tset.add_argument(
        "--require-origin",
        choices=("on", "off"),
        help="'on' refuses event batches without an Origin header (browsers always send"
        " one); 'off' lets a server post events, which should then prove its users with"
        " --identity required (default on)",
    )
    tset.add_argument(
        "--trigger",
        action="append",
        default=[],
        metavar="NAME=on|off",
        dest="triggers",
        help="turn a support trigger on or off, e.g. --trigger low_activity=off; repeatable."
        f" Triggers: {', '.join(TRIGGERS)} (default: all on). Open alerts of a trigger"
        " turned off close",
    )
    tset.add_argument(
        "--trigger-tiers",
        action="append",
        default=[],
        metavar="NAME=TIERS",
        dest="trigger_tiers",
        help="the subscription tiers a trigger applies to: a comma-separated list of"
        f" {', '.join(TIERS)}, or 'all', or 'default', e.g. --trigger-tiers"
        " stuck_on_page=paid,enterprise; repeatable (default: "
        + "; ".join(
            f"{t} {'all' if tiers == TIERS else ','.join(tiers)}"
            for t, tiers in DEFAULT_TRIGGER_TIERS.items()
        )
        + ")",
    )
    tset.add_argument(
        "--tier-weight",
        action="append",
        default=[],
        metavar="TIER=N",
        dest="tier_weights",
        help="how much a subscription tier weighs in the dashboard's needs-help queue (the"
        " heaviest is helped first; ties go by the trigger's severity, then the longest wait),"
        " a whole number from 0 to 1000 or 'default', e.g. --tier-weight paid=5; repeatable"
        " (default: " + ", ".join(f"{t}={w}" for t, w in DEFAULT_TIER_WEIGHTS.items()) + ")",
    )
    tset.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        dest="thresholds",
        help="a trigger, presence or retention threshold (seconds, counts or days), e.g. "
        "--set stuck_on_page_s=180; repeatable. Names and defaults: "
        + ", ".join(f"{n}={getattr(TenantSettings(), n):g}" for n in TenantSettings.THRESHOLDS)
        + " (docs/presence.md says what each does)",
    )

    slack = commands.add_parser("slack", help="check the Slack set-up")
    slack_commands = slack.add_subparsers(dest="slack_command", required=True, metavar="ACTION")
    test = slack_commands.add_parser(
        "test", help="send a test alert to a tenant's Slack target and report Slack's answer"
    )
    test.add_argument("--tenant", required=True, metavar="NAME")


def check_webhook_url(url: str) -> str:
    """``url`` if it looks like an incoming webhook URL; raise ValueError otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path in ("", "/"):
        raise ValueError(
            f"{url!r} is not a webhook URL like https://hooks.slack.com/services/T.../B.../..."
        )
    return url.strip()


def check_video_call_template(template: str) -> str:
    """``template`` if it makes an http(s) link from ``{tenant}``, ``{user}``, ``{room}``."""
    try:
        sample = template.format(tenant="acme", user="user-1", room="0123456789abcdef")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"video call template {template!r} may use only {{tenant}}, {{user}} and {{room}}"
            f" ({exc})"
        ) from None
    if not sample.startswith(("https://", "http://")):
        raise ValueError(f"video call template {template!r} does not make an http(s) link")
    return template


@dataclasses.dataclass(frozen=True, slots=True)
class _Changes:
    """What ``tenant set`` was asked to change, checked before the database is opened."""

    fields: dict[str, Any]
    switched: dict[str, bool]
    tiers: dict[str, tuple[str, ...] | None]
    weights: dict[str, int | None]

    def __bool__(self) -> bool:
        return bool(self.fields or self.switched or self.tiers or self.weights)

    def apply(self, settings: TenantSettings) -> TenantSettings:
        changed = dataclasses.replace(settings, **self.fields)
        return changed.with_triggers(self.switched, self.tiers).with_tier_weights(self.weights)


def _changes(args: argparse.Namespace) -> _Changes:
    changes: dict[str, Any] = {}
    if args.slack_webhook_url is not None:
        url = args.slack_webhook_url.strip()
        changes["slack_webhook_url"] = check_webhook_url(url) if url else ""
    if args.slack_bot_token is not None:
        token = args.slack_bot_token
        if token == "-":
            token = sys.stdin.readline()
        token = token.strip()
        if token and not token.startswith("xox"):
            raise ValueError("a Slack bot token starts with xoxb-")
        changes["slack_bot_token"] = token
    if args.slack_channel is not None:
        changes["slack_channel"] = args.slack_channel.strip()
    if args.video_call_template is not None:
        template = args.video_call_template.strip() or DEFAULT_VIDEO_CALL_TEMPLATE
        changes["video_call_template"] = check_video_call_template(template)
    if args.alert_rate_limit_min is not None:
        if args.alert_rate_limit_min < 0:
            raise ValueError("--alert-rate-limit-min must not be negative")
        changes["alert_rate_limit_s"] = args.alert_rate_limit_min * 60
    changes.update(TenantSettings.threshold_changes(args.thresholds))
    if args.require_origin is not None:
        changes["require_origin"] = args.require_origin == "on"
    if args.call_invitations is not None:
        changes["call_invitations"] = args.call_invitations == "on"
    if args.identity is not None:
        changes["require_user_hash"] = args.identity == "required"
    switched, tiers = TenantSettings.trigger_changes(args.triggers, args.trigger_tiers)
    weights = TenantSettings.tier_weight_changes(args.tier_weights)
    return _Changes(changes, switched, tiers, weights)


def _new_origins(current: tuple[str, ...], add: list[str], remove: list[str]) -> list[str] | None:
    """The origins after ``--add-origin``/``--remove-origin``, or None if neither was given."""
    if not add and not remove:
        return None
    gone = set()
    for origin in remove:
        clean = normalize_origin(origin)
        if clean not in current:
            raise ValueError(f"{clean} is not one of the tenant's origins")
        gone.add(clean)
    return [o for o in current if o not in gone] + [normalize_origin(o) for o in add]


def _new_identity_secret(current: str | None, identity: str | None) -> str | None:
    """The identity secret to store for ``--identity`` ('' removes it), or None: unchanged."""
    if identity is None:
        return None
    if identity == "off":
        return "" if current else None
    return None if current else secrets.token_hex(32)


def _describe(tenant: Tenant, defaults: SlackDefaults) -> list[str]:
    s = tenant.settings
    width = max(len(t) for t in TRIGGERS)
    triggers = [
        f"{t:<{width}}  {'off' if t in s.triggers_off else 'on '}  {tiers_in_words(s.tiers_of(t))}"
        for t in TRIGGERS
    ]
    return [
        f"tenant:       {tenant.name}",
        f"slack:        {describe_slack(s, defaults).in_words}",
        f"video calls:  {s.video_call_template}",
        f"invitations:  {call_invitations_in_words(s)}",
        f"origins:      {', '.join(tenant.origins) or '(none: browsers are refused)'}",
        f"origin hdr:   {origin_rule_in_words(s.require_origin)}",
        f"identity:     {identity_mode(tenant)}",
        f"rate limit:   {rate_limit_in_words(s.alert_rate_limit_s)}",
        "triggers:     " + "\n              ".join(triggers),
        f"queue order:  {tier_weights_in_words(s)}",
        "thresholds:   "
        + ", ".join(f"{name}={getattr(s, name):g}" for name in TenantSettings.THRESHOLDS),
    ]


def run_tenant_set(args: argparse.Namespace, settings: Settings) -> int:
    """``tippen-rt tenant set NAME [...]``: change and show a tenant's alert settings."""
    try:
        changes = _changes(args)
    except ValueError as exc:
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return 2
    conn = open_database(settings.db_path)
    try:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            tenant = get_tenant_by_name(conn, args.name)
            new = changes.apply(tenant.settings)
            if new.slack_bot_token and not new.slack_channel:
                raise ValueError("a bot token needs a channel: add --slack-channel")
            origins = _new_origins(tenant.origins, args.add_origin, args.remove_origin)
            secret = _new_identity_secret(tenant.identity_secret, args.identity)
            changed = bool(changes) or origins is not None or secret is not None
            if changed:
                tenant = update_tenant(
                    conn, args.name, settings=new, origins=origins, identity_secret=secret
                )
    except NoSuchTenant as exc:
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad input: nothing was saved
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    for line in _describe(tenant, SlackDefaults.from_settings(settings)):
        print(line)
    if changed:
        print("saved; a running service picks it up within 10 seconds")
    return 0


def _load_tenant(settings: Settings, name: str) -> Tenant | None:
    """Tenant ``name``, or None after saying in one line that there is none."""
    conn = open_database(settings.db_path)
    try:
        return get_tenant_by_name(conn, name)
    except NoSuchTenant as exc:
        print(f"tippen-rt: {exc}", file=sys.stderr)
        return None
    finally:
        conn.close()


def run_tenant_show(args: argparse.Namespace, settings: Settings) -> int:
    """``tippen-rt tenant show NAME [--secret identity]``: the tenant, secrets masked."""
    tenant = _load_tenant(settings, args.name)
    if tenant is None:
        return 2
    if args.secret == "identity":
        if not tenant.identity_secret:
            print(
                f"tippen-rt: tenant {tenant.name!r} has no identity secret; turn it on with"
                f" `tippen-rt tenant set {tenant.name} --identity on`",
                file=sys.stderr,
            )
            return 2
        print(tenant.identity_secret)
        return 0
    print(f"api key:      {tenant.api_key}   (public: goes in the script tag)")
    previous, until = tenant.previous_api_key, tenant.previous_api_key_expires_at
    if previous and until is not None:
        now_ms = time.time_ns() // 1_000_000
        if tenant.accepts_api_key(previous, now_ms):
            ends = f"works until {utc_time(until)} (another {duration_in_words(until - now_ms)})"
        else:
            ends = f"stopped {utc_time(until)}"
        print(f"old api key:  {mask(previous)} {ends} (`tippen-rt tenant rotate-key`)")
    print("admin token:  (stored hashed; `tippen-rt tenant rotate-admin-token` makes a new one)")
    for line in _describe(tenant, SlackDefaults.from_settings(settings)):
        print(line)
    return 0


def run_slack_command(args: argparse.Namespace, settings: Settings) -> int:
    """``tippen-rt slack test --tenant NAME``: 0 if Slack took the test message, 1 if
    it did not, 2 if there is no such tenant or it has no Slack target."""
    tenant = _load_tenant(settings, args.tenant)
    if tenant is None:
        return 2
    served = _served_settings(settings)
    public_url = served.public_url if served.public_url is not None else settings.public_url
    if served.slack_api_url:
        settings = dataclasses.replace(settings, slack_api_url=served.slack_api_url)
    defaults = SlackDefaults.from_settings(settings)
    try:
        target, posted = send_test_message(
            tenant, defaults, public_url, ClientOptions.from_settings(settings)
        )
    except SlackError as exc:
        if slack_target(tenant.settings, defaults) is None:
            print(
                f"tippen-rt: tenant {tenant.name!r} has no Slack target; set one with "
                f"`tippen-rt tenant set {tenant.name} --slack-webhook-url URL` or "
                "`--slack-bot-token TOKEN --slack-channel CHANNEL`",
                file=sys.stderr,
            )
            return 2
        print(f"tippen-rt: Slack did not take the test message: {exc}", file=sys.stderr)
        return 1
    where = f" (channel {posted.channel}, ts {posted.ts})" if posted.ts else ""
    print(f"sent a test alert to {target.describe()}{where}")
    if not public_url:
        print(
            "note: TIPPEN_PUBLIC_URL is not set for the service, so alerts have no"
            " 'View User Activity' link"
        )
    elif served.public_url is not None:
        print(f"links go to {public_url} (the public URL the service last started with)")
    return 0


def _served_settings(settings: Settings) -> ServedSettings:
    """What the service last started with on this database (``tippen-rt serve``
    records it): its public URL and Slack API root win over this shell's."""
    conn = open_database(settings.db_path)
    try:
        return read_served_settings(conn)
    finally:
        conn.close()
