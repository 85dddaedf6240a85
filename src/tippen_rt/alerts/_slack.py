"""Slack through slack-sdk's sync clients: blocking calls, run in worker threads.

Exceptions::

    SlackError            a Slack call did not do what was asked
      .transient          True: worth retrying (429, 5xx, network, timeout)
      .retry_after_s      Slack's Retry-After, when it sent one

Everything here blocks; the notifier runs it with ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.error import URLError

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    FixedValueRetryIntervalCalculator,
    RateLimitErrorRetryHandler,
    RetryHandler,
)
from slack_sdk.models.blocks import Block
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from ..config import Settings
from ..tenants import TenantSettings

SLACK_API_URL = "https://slack.com/api/"

#: Web API errors that say "try again later"; any other ``ok: false`` is final.
_TRANSIENT_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackError(Exception):
    """A Slack call failed. ``transient``: retrying may help."""

    def __init__(self, message: str, *, transient: bool, retry_after_s: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class SlackTarget:
    """Where a tenant's alerts go: an incoming webhook, or a bot token and channel."""

    mode: Literal["webhook", "bot"]
    webhook_url: str = field(default="", repr=False)
    bot_token: str = field(default="", repr=False)
    channel: str = ""
    #: Slack's Web API root (a local server in tests).
    api_url: str = SLACK_API_URL

    @property
    def can_update(self) -> bool:
        """Only bot-mode messages can be edited later (``chat.update``)."""
        return self.mode == "bot"

    def describe(self) -> str:
        """The target in words, without secrets."""
        if self.mode == "bot":
            return f"bot token {mask(self.bot_token)} posting to {self.channel}"
        return f"incoming webhook {mask_url(self.webhook_url)}"


@dataclass(frozen=True, slots=True)
class SlackDefaults:
    """Process-wide Slack settings: a target for tenants that set none, and the API root."""

    webhook_url: str = field(default="", repr=False)
    bot_token: str = field(default="", repr=False)
    channel: str = ""
    api_url: str = SLACK_API_URL

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackDefaults:
        """``TIPPEN_SLACK_WEBHOOK_URL``, ``..._BOT_TOKEN``, ``..._CHANNEL``, ``..._API_URL``."""
        return cls(
            webhook_url=settings.slack_webhook_url,
            bot_token=settings.slack_bot_token,
            channel=settings.slack_channel,
            api_url=settings.slack_api_url or SLACK_API_URL,
        )


def slack_target(settings: TenantSettings, defaults: SlackDefaults) -> SlackTarget | None:
    """The tenant's target; bot mode wins over a webhook; else the defaults; else None."""
    for token, channel, url in (
        (settings.slack_bot_token, settings.slack_channel, settings.slack_webhook_url),
        (defaults.bot_token, defaults.channel, defaults.webhook_url),
    ):
        if token and channel:
            return SlackTarget("bot", bot_token=token, channel=channel, api_url=defaults.api_url)
        if url:
            return SlackTarget("webhook", webhook_url=url, api_url=defaults.api_url)
    return None


def mask(secret: str) -> str:
    """``xoxb-1234-abcd...`` -> ``xoxb-…abcd``, ``client_Xy...`` -> ``client_…abcd``:
    the kind of secret and enough to tell two apart."""
    if len(secret) <= 8:
        return "…"
    kind = re.match(r"[a-z]{1,7}[-_]", secret)
    return f"{kind.group() if kind else secret[:5]}…{secret[-4:]}"


def mask_url(url: str) -> str:
    """A webhook URL without its secret path (nor any user:password@, query or fragment)."""
    scheme, _, rest = url.partition("://")
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    return f"{scheme}://{host}/…" if rest else "…"


@dataclass(frozen=True, slots=True)
class Posted:
    """Where a posted message is: channel id and ts in bot mode, None for webhooks."""

    channel: str | None
    ts: str | None


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How the slack-sdk clients behave (numbers from the notifier's policy)."""

    #: Socket timeout of one HTTP request, seconds.
    timeout_s: int = 10
    #: Pause before slack-sdk retries a connection error once.
    connection_retry_interval_s: float = 0.5
    #: How often slack-sdk itself retries a 429 after Retry-After (in the thread).
    rate_limit_retries: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientOptions:
        """Options with ``TIPPEN_SLACK_TIMEOUT_S``."""
        return cls(timeout_s=max(1, settings.slack_timeout_s))

    def retry_handlers(self) -> list[RetryHandler]:
        """slack-sdk's own retry handlers: connection errors and 429 with Retry-After."""
        return [
            ConnectionErrorRetryHandler(
                max_retry_count=1,
                interval_calculator=FixedValueRetryIntervalCalculator(
                    self.connection_retry_interval_s
                ),
            ),
            RateLimitErrorRetryHandler(max_retry_count=self.rate_limit_retries),
        ]


def post_message(
    target: SlackTarget, text: str, blocks: Sequence[Block], options: ClientOptions
) -> Posted:
    """Post a message; raise :class:`SlackError` if Slack did not take it. Blocks."""
    if target.mode == "webhook":
        client = WebhookClient(
            target.webhook_url,
            timeout=options.timeout_s,
            retry_handlers=options.retry_handlers(),
        )
        try:
            response = client.send(text=text, blocks=blocks)
        except (SlackClientError, URLError, OSError, ValueError) as exc:
            raise _network_error(exc) from exc
        if response.status_code == 200:
            return Posted(None, None)
        raise _http_error(response.status_code, response.body, response.headers)
    data = _call_web_api(
        target,
        options,
        "chat_postMessage",
        channel=target.channel,
        text=text,
        blocks=blocks,
        unfurl_links=False,
        unfurl_media=False,
    )
    return Posted(str(data.get("channel") or target.channel), str(data["ts"]))


def update_message(
    target: SlackTarget,
    channel: str,
    ts: str,
    text: str,
    blocks: Sequence[Block],
    options: ClientOptions,
) -> None:
    """Replace the message at (channel, ts) (bot mode only). Blocks."""
    if target.mode != "bot":
        raise SlackError("webhook messages cannot be updated", transient=False)
    _call_web_api(target, options, "chat_update", channel=channel, ts=ts, text=text, blocks=blocks)


def _call_web_api(
    target: SlackTarget, options: ClientOptions, method: str, **kwargs: Any
) -> Mapping[str, Any]:
    client = WebClient(
        token=target.bot_token,
        base_url=target.api_url,
        timeout=options.timeout_s,
        retry_handlers=options.retry_handlers(),
    )
    try:
        response = getattr(client, method)(**kwargs)
    except SlackApiError as exc:
        r = exc.response
        error = r.get("error") if isinstance(r.data, dict) else None
        status = int(r.status_code)
        retry_after = _retry_after(r.headers)
        transient = status == 429 or status >= 500 or error in _TRANSIENT_API_ERRORS
        detail = str(error) if error else f"HTTP {status}"
        if error and status != 200:
            detail = f"HTTP {status}: {error}"
        raise SlackError(detail, transient=transient, retry_after_s=retry_after) from exc
    except (SlackClientError, URLError, OSError, ValueError) as exc:
        raise _network_error(exc) from exc
    data = response.data
    if not isinstance(data, dict) or (method == "chat_postMessage" and "ts" not in data):
        raise SlackError(f"unexpected answer from Slack: {data!r:.200}", transient=True)
    return data


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, (list, tuple)) and value else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def _http_error(status: int, body: str, headers: Mapping[str, Any] | None) -> SlackError:
    detail = (body or "").strip()[:200]
    message = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    transient = status == 429 or status >= 500
    return SlackError(message, transient=transient, retry_after_s=_retry_after(headers))


def _network_error(exc: BaseException) -> SlackError:
    if isinstance(exc, URLError) and isinstance(exc.reason, BaseException):
        cause: BaseException = exc.reason
    else:
        cause = exc
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return SlackError("Slack did not answer in time", transient=True)
    if isinstance(exc, SlackClientError) and not isinstance(exc, SlackApiError):
        # e.g. "Invalid URL detected": a configuration problem, retrying won't fix it
        return SlackError(f"cannot call Slack: {exc}", transient=False)
    if isinstance(cause, ValueError):
        return SlackError(f"cannot call Slack: {cause}", transient=False)
    return SlackError(f"cannot reach Slack: {cause}", transient=True)
