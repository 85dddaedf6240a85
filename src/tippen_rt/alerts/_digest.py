"""A tenant's Slack budget: at most N messages a minute, then one digest.

A burst of triggers (a bad deploy, or someone posting as many fake users)
must not become a burst of Slack messages.  Beyond the tenant's
``slack_max_per_minute`` an alert is held back (recorded and shown on the
dashboard as always) and counted; when the minute has room again, one
message says how many more users need help.
"""

from __future__ import annotations

from collections import deque

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from ._render import Message, escape

#: The budget's window.
WINDOW_S = 60.0


class SlackBudget:
    """Messages posted per tenant in the last minute, and alerts held back since."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self._window_s = window_s
        self._posted: dict[int, deque[float]] = {}
        self._held: dict[int, int] = {}

    def take(self, tenant_id: int, limit: int, now: float) -> bool:
        """Count one message at ``now`` if the tenant's budget has room (``limit`` 0: always)."""
        posted = self._posted.setdefault(tenant_id, deque())
        while posted and posted[0] <= now - self._window_s:
            posted.popleft()
        if limit and len(posted) >= limit:
            return False
        posted.append(now)
        return True

    def hold(self, tenant_id: int) -> int:
        """Count one alert held back; returns how many are held now."""
        held = self._held.get(tenant_id, 0) + 1
        self._held[tenant_id] = held
        return held

    def free_at(self, tenant_id: int) -> float:
        """When the tenant's budget has room for one more message."""
        posted = self._posted.get(tenant_id)
        return posted[0] + self._window_s if posted else 0.0

    def take_held(self, tenant_id: int) -> int:
        """How many alerts were held back since the last digest; the count starts again."""
        return self._held.pop(tenant_id, 0)


def render_digest(count: int, tenant_name: str, public_url: str) -> Message:
    """The digest message: ``count`` more users need help, and where to see them."""
    users = "user needs" if count == 1 else "users need"
    text = f"{count} more {users} help ({tenant_name}): too many alerts for one message each"
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=f":sos: *{count} more {users} help* in *{escape(tenant_name)}*."
                " They came too fast for one Slack message each; every alert is on"
                " the dashboard."
            )
        )
    ]
    if public_url:
        url = public_url.rstrip("/") + "/user-activity"
        blocks.append(
            ActionsBlock(
                elements=[
                    ButtonElement(
                        text=PlainTextObject(text="Open the dashboard"), url=url, action_id="open"
                    )
                ]
            )
        )
    return Message(text=text, blocks=blocks)
