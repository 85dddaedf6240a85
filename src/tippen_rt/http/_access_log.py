"""The access log (``TIPPEN_ACCESS_LOG=true``): one line per request or WebSocket.

An ASGI wrapper around the app, so it sees every request that reaches it,
answered by a handler or by an error page, with the status and the number of
body bytes actually sent and the time until the response ended.

What a line holds: the client address (as rate limits see it, through
``TIPPEN_TRUSTED_PROXIES``), the method, the path *without its query string*,
the HTTP version, the status, the bytes and the duration; as fields of the
record too (``client``, ``method``, ``path``, ``status``, ``bytes``,
``duration_ms``, ``protocol``), which ``TIPPEN_LOG_FORMAT=json`` writes out.
What it never holds: a request or response body (ingest batches carry the
API key and user data), a query string, or any header value (Authorization,
Cookie, Origin, User-Agent).  The path is made safe to log
(:func:`~tippen_rt.events.log_safe`): user ids in ``/user-activity/<id>``
cannot forge a line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..config import TrustedProxies
from ..events import log_safe
from ._client import scope_client

__all__ = ["ACCESS_LOGGER", "AccessLog"]

ACCESS_LOGGER = "tippen_rt.access"
log = logging.getLogger(ACCESS_LOGGER)

# Loosely typed: hypercorn's and quart's ASGI types are unions of TypedDicts.
Scope = Any
Message = MutableMapping[str, Any]
Receive = Any
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

_STARTS = frozenset({"http.response.start", "websocket.http.response.start"})
_BODIES = frozenset({"http.response.body", "websocket.http.response.body"})


class AccessLog:
    """Wraps an ASGI app; logs each HTTP request and WebSocket when it ends."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = {"status": 0, "bytes": 0}

        async def watched_send(message: Message) -> None:
            kind = message["type"]
            if kind in _STARTS:
                sent["status"] = int(message["status"])
            elif kind in _BODIES:
                sent["bytes"] += len(message.get("body", b""))
            elif kind == "websocket.accept":
                sent["status"] = 101
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            self._log(scope, sent["status"], sent["bytes"], time.perf_counter() - started)

    def _log(self, scope: Scope, status: int, size: int, seconds: float) -> None:
        client = log_safe(scope_client(scope, self.proxies), 64)
        method = "WS" if scope["type"] == "websocket" else log_safe(str(scope.get("method")), 16)
        path = log_safe(str(scope.get("path", "")), 300)
        protocol = f"HTTP/{scope.get('http_version', '1.1')}"
        duration_ms = round(seconds * 1000, 1)
        log.info(
            '%s "%s %s %s" %d %d %.1f ms',
            client,
            method,
            path,
            protocol,
            status,
            size,
            duration_ms,
            extra={
                "client": client,
                "method": method,
                "path": path,
                "protocol": protocol,
                "status": status,
                "bytes": size,
                "duration_ms": duration_ms,
            },
        )
