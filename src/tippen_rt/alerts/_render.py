"""The Slack message of an alert, built with ``slack_sdk.models.blocks``. Pure.

The same function renders the first post and every later update (resolved,
acknowledged), so the message in the channel always shows the alert as it is
stored.

Everything the tracked app sent (user id, email, route, the reason that quotes
the route) and every name (tenant, admin) is user text: mentions and backticks
are neutralised, ``&<>`` escaped, and only then is it clipped, to a budget that
keeps every block within Slack's limits; a message over a limit is refused
whole, so the alert would never arrive.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from ..actors import Trigger
from ..persist import SUPERSEDED, SWITCHED_OFF, USER_LEFT, Alert
from ..tenants import Tenant

log = logging.getLogger(__name__)

#: Slack's limits, in characters (https://api.slack.com/reference/block-kit/blocks).
HEADER_MAX = 150  # header block: plain_text
SECTION_MAX = 3000  # section block text
FIELD_MAX = 2000  # each section field
CONTEXT_MAX = 2000  # each context element
BUTTON_TEXT_MAX = 75
URL_MAX = 3000  # a button's url
#: The plain-text fallback (notifications); Slack takes more, nobody reads more.
FALLBACK_MAX = 3000

VIEW_BUTTON = "View User Activity"
VIDEO_BUTTON = "Start Video Call"
USER_PAGE_PATH = "/user-activity/"


@dataclass(frozen=True, slots=True)
class Message:
    """A Slack message: Block Kit blocks and the plain-text fallback."""

    text: str
    blocks: list[Block]

    def blocks_as_dicts(self) -> list[dict[str, object]]:
        """The blocks as Slack's JSON (validates them)."""
        return [b.to_dict() for b in self.blocks]


def user_activity_url(public_url: str, user_id: str) -> str | None:
    """The dashboard's page of ``user_id``, or None without a public URL."""
    if not public_url:
        return None
    return public_url.rstrip("/") + USER_PAGE_PATH + quote(user_id, safe="")


def video_call_url(tenant: Tenant | None, user_id: str) -> str | None:
    """The tenant's call link for ``user_id``, or None if its template is unusable."""
    if tenant is None:
        return None
    try:
        url = tenant.video_call_url(user_id)
    except (KeyError, IndexError, ValueError) as exc:
        log.warning("tenant %s: bad video call template: %s", tenant.name, exc)
        return None
    return url if url.startswith(("https://", "http://")) else None


def trigger_in_words(trigger: str) -> str:
    """``stuck_on_page`` -> ``Stuck on a page``."""
    try:
        return Trigger(trigger).in_words
    except ValueError:
        return trigger.replace("_", " ").capitalize()


#: ``@here``, ``@channel``, ``@everyone``: notify a whole channel where Slack
#: links names.  The ``<!here>`` form is taken care of by escaping ``<``.
_MENTION = re.compile(r"@(?=here|channel|everyone)", re.IGNORECASE)
#: Fullwidth at: reads as "@here", notifies nobody.
_SAFE_AT = "\uff20"
#: Modifier letter grave accent: looks like a backtick, opens no code span.
_SAFE_BACKTICK = "\u02cb"


def escape(text: str) -> str:
    """User text safe inside Slack mrkdwn: ``&``, ``<``, ``>`` escaped (they are
    control characters), channel mentions and backticks neutralised."""
    if "@" in text:
        text = _MENTION.sub(_SAFE_AT, text)
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("`", _SAFE_BACKTICK)
    )


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending in "…" if cut; never cuts an entity
    (``&amp;``, ``&lt;``, ``&gt;``) of escaped text in half."""
    if len(text) <= limit:
        return text
    cut = limit - 1
    amp = text.rfind("&", max(0, cut - 4), cut)
    if amp != -1 and ";" not in text[amp:cut]:
        cut = amp
    return text[:cut] + "…"


def user_text(text: str, limit: int) -> str:
    """User text for mrkdwn: escaped first, then clipped to ``limit``."""
    return _clip(escape(text), limit)


def duration_in_words(ms: int) -> str:
    """``372000`` -> ``6 min 12 s``; ``4_000_000`` -> ``1 h 6 min``."""
    s = max(0, int(ms // 1000))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s} s" if s and m < 10 else f"{m} min"
    h, m = divmod(m, 60)
    return f"{h} h {m} min" if m else f"{h} h"


def utc_time(ms: int) -> str:
    """``1748779200000`` -> ``2025-06-01 12:00 UTC``."""
    return datetime.fromtimestamp(int(ms // 1000), UTC).strftime("%Y-%m-%d %H:%M UTC")


def slack_date(ms: int) -> str:
    """A time Slack shows in each reader's own time zone (UTC as the fallback)."""
    return f"<!date^{int(ms // 1000)}^{{date_short_pretty}} {{time}}|{utc_time(ms)}>"


def person_in_words(name: str | None, email: str | None, user_id: str) -> str:
    """Who a user is, for people: ``Ann Lee (ann@example.com)``, else the name,
    the email or, failing both, the user id."""
    if name and email:
        return f"{name} ({email})"
    return name or email or user_id


def _who(alert: Alert) -> str:
    return person_in_words(alert.user_name, alert.user_email, alert.user_id)


def _headline(alert: Alert, test: bool) -> str:
    words = trigger_in_words(alert.trigger)
    if test:
        return f":test_tube: Test alert: {words}"
    if alert.resolution == USER_LEFT:
        return f":door: User left: {words}"
    if alert.resolution == SWITCHED_OFF:
        return f":no_bell: Trigger turned off: {words}"
    if alert.resolved_at is not None:
        return f":white_check_mark: Resolved: {words}"
    if alert.acknowledged_at is not None:
        return f":eyes: Acknowledged: {words}"
    if alert.claimed_by is not None:
        return f":raising_hand: Being helped: {words}"
    return f":sos: User needs support: {words}"


#: How a call's invitation stands, in words (``persist.CALL_STATUSES``).
_CALL_WORDS = {
    "invited": "inviting the user on their page",
    "shown": "the invitation is on the user's page",
    "joined": "the user joined",
    "declined": "the user said not now",
    "ignored": "the user did not answer",
    "replaced": "a newer call replaced it",
    "not_invited": "invitations are off, the link was shared some other way",
}


def _status_lines(alert: Alert, tenant_name: str, test: bool) -> list[str]:
    if test:
        return [
            f"This is a test from tippen-rt for tenant *{user_text(tenant_name, 200)}*: "
            "real alerts will look like this."
        ]
    tenant = user_text(tenant_name, 200)
    lines = [f"Alert #{alert.id} · {tenant} · opened {slack_date(alert.opened_at)}"]
    if alert.claimed_by is not None and alert.claimed_at is not None:
        by = user_text(alert.claimed_by, 100)
        lines.append(f":raising_hand: *{by}* is on it (claimed {slack_date(alert.claimed_at)})")
    if alert.acknowledged_at is not None:
        by = user_text(alert.acknowledged_by or "an admin", 100)
        lines.append(f":eyes: Acknowledged by *{by}* {slack_date(alert.acknowledged_at)}")
    if alert.call_status is not None and alert.call_updated_at is not None:
        by = user_text(alert.call_by or "an admin", 100)
        words = _CALL_WORDS.get(alert.call_status, alert.call_status)
        when = slack_date(alert.call_updated_at)
        lines.append(f":telephone_receiver: Video call by *{by}*: {words} {when}")
    if alert.resolved_at is not None:
        if alert.resolution == SUPERSEDED:
            lines.append(
                f":white_check_mark: Closed {slack_date(alert.resolved_at)}: "
                "a newer alert for the same trigger replaced it"
            )
        elif alert.resolution == SWITCHED_OFF:
            lines.append(
                f":no_bell: Closed {slack_date(alert.resolved_at)}: this trigger was turned"
                " off for this user (`tippen-rt tenant set`: off, or not for their tier)"
            )
        elif alert.resolution == USER_LEFT:
            lines.append(
                f":door: The user left {slack_date(alert.resolved_at)} before anyone helped"
            )
        else:
            lines.append(
                f":white_check_mark: Resolved {slack_date(alert.resolved_at)}: the user recovered"
            )
    if alert.suppressed_count:
        n = alert.suppressed_count
        lines.append(
            f"+{n} more trigger{'s' if n != 1 else ''} for this user held back by the rate limit"
        )
    return lines


def render_alert(
    alert: Alert, tenant: Tenant | None, public_url: str, *, test: bool = False
) -> Message:
    """The Slack message for ``alert`` in its current state."""
    tenant_name = tenant.name if tenant is not None else f"tenant {alert.tenant_id}"
    who = _who(alert)
    words = trigger_in_words(alert.trigger)
    page = alert.route or "(unknown)"
    user_field = f"*User:*\n{user_text(who, 400)}"
    if who != alert.user_id:
        user_field += f"\n`{user_text(alert.user_id, 200)}`"
    fields = [
        MarkdownTextObject(text=_clip(text, FIELD_MAX))
        for text in (
            user_field,
            f"*Tier:*\n{user_text(alert.tier, 100)}",
            f"*Current page:*\n{user_text(page, 500)}",
            f"*Time on page:*\n{duration_in_words(alert.time_on_page_ms)}",
        )
    ]
    reason = user_text(alert.reason, 1000)
    activity = (
        f"*Activity:* {alert.total_events} events · {alert.total_errors} errors · "
        f"last active {slack_date(alert.last_active_at)}"
    )
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(text=_clip(_headline(alert, test), HEADER_MAX), emoji=True)
        ),
        SectionBlock(
            text=MarkdownTextObject(text=_clip(f"*{escape(words)}:* {reason}", SECTION_MAX)),
            fields=fields,
        ),
        SectionBlock(text=MarkdownTextObject(text=activity)),
    ]
    buttons: list[ButtonElement] = []
    # A link longer than a button takes (a long id of 4-byte characters) would
    # make Slack refuse the whole message: the button is left out instead.
    view_url = _fits(user_activity_url(public_url, alert.user_id))
    if view_url is not None:
        buttons.append(
            ButtonElement(
                text=PlainTextObject(text=VIEW_BUTTON),
                url=view_url,
                action_id="view_user_activity",
                style="primary",
            )
        )
    call_url = _fits(video_call_url(tenant, alert.user_id))
    if call_url is not None:
        buttons.append(
            ButtonElement(
                text=PlainTextObject(text=VIDEO_BUTTON), url=call_url, action_id="start_video_call"
            )
        )
    if buttons:
        blocks.append(ActionsBlock(elements=buttons))
    status = _status_lines(alert, tenant_name, test)
    if view_url is None:
        status.append("_Set TIPPEN_PUBLIC_URL to link this alert to the dashboard._")
    blocks.append(
        ContextBlock(
            elements=[MarkdownTextObject(text=_clip(line, CONTEXT_MAX)) for line in status]
        )
    )

    prefix = {"open": "User needs support", "acknowledged": "Acknowledged", "resolved": "Resolved"}
    head = "Test alert from tippen-rt" if test else prefix[alert.status]
    if alert.status == "open" and alert.claimed_by is not None and not test:
        head = f"Being helped by {user_text(alert.claimed_by, 100)}"
    text = (
        f"{head}: {user_text(who, 400)} ({user_text(alert.tier, 100)}) on {user_text(page, 500)}:"
        f" {escape(words)}: {reason}"
    )
    if view_url is not None:
        text += f" | {VIEW_BUTTON}: {escape(view_url)}"
    if call_url is not None:
        text += f" | {VIDEO_BUTTON}: {escape(call_url)}"
    return Message(text=_clip(text, FALLBACK_MAX), blocks=blocks)


def _fits(url: str | None) -> str | None:
    return url if url is not None and len(url) <= URL_MAX else None
