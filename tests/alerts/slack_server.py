"""A Slack stand-in: a real HTTP server on 127.0.0.1 (port 0) in its own thread.

It speaks the two protocols tippen-rt uses, the way Slack does:

- incoming webhooks: ``POST /services/...`` with a JSON body; ``200 ok``, or
  ``400 invalid_payload``, ``404 no_service``, ``429`` with ``Retry-After``;
- the Web API: ``POST /api/chat.postMessage`` and ``/api/chat.update`` with a
  JSON or form body and a bearer token; ``{"ok": true, "channel", "ts", ...}``
  or ``{"ok": false, "error": ...}`` (``invalid_auth``, ``channel_not_found``,
  ``message_not_found``), ``429`` with ``Retry-After``.

Tests script trouble ahead of time: the next N requests fail with a status,
are rate limited, are slow, or hang until released.  It runs in a thread, not a trio
task, so tests whose Slack calls run inline in the trio thread still get answers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TOKEN = "xoxb-test-0000-token"
CHANNEL_NAME = "#support"
CHANNEL_ID = "C0SUPPORT"
WEBHOOK_PATH = "/services/T000/B000/secretsecret"


@dataclass
class Request:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    #: What it answered: HTTP status and the Slack error, if any.
    status: int = 0
    error: str | None = None


@dataclass
class _Trouble:
    status: int
    error: str
    retry_after: int | None = None
    hang: bool = False
    #: Answer normally, but only after this many seconds.
    delay_s: float = 0.0


@dataclass
class SlackStandIn:
    """Start with :func:`slack_stand_in`; read ``posts``, ``updates``, ``messages``."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    #: Bodies of messages Slack took: webhook posts and chat.postMessage.
    posts: list[dict[str, Any]] = field(default_factory=list)
    #: Bodies of successful chat.update calls.
    updates: list[dict[str, Any]] = field(default_factory=list)
    #: The current text of every bot message, by (channel id, ts).
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _trouble: deque[_Trouble] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _held: int = 0
    #: Set when the first request arrives.
    got_request: threading.Event = field(default_factory=threading.Event)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        """The incoming webhook's URL."""
        return self.url + WEBHOOK_PATH

    @property
    def api_url(self) -> str:
        """The Web API root (slack-sdk's ``base_url``)."""
        return self.url + "/api/"

    # ---- scripting ---------------------------------------------------------

    def fail_next(self, n: int, status: int = 500, error: str = "internal_error") -> None:
        """The next ``n`` requests get ``status`` (and ``error`` in the body)."""
        with self._lock:
            self._trouble.extend(_Trouble(status, error) for _ in range(n))

    def rate_limit_next(self, n: int, retry_after: int = 0) -> None:
        """The next ``n`` requests get 429 with ``Retry-After``."""
        with self._lock:
            self._trouble.extend(
                _Trouble(429, "ratelimited", retry_after=retry_after) for _ in range(n)
            )

    def hang_next(self, n: int) -> None:
        """The next ``n`` requests get no answer until :meth:`release` (or shutdown)."""
        with self._lock:
            self._trouble.extend(_Trouble(503, "service_unavailable", hang=True) for _ in range(n))

    def slow_next(self, n: int, seconds: float) -> None:
        """The next ``n`` requests are answered normally, after ``seconds``."""
        with self._lock:
            self._trouble.extend(_Trouble(200, "", delay_s=seconds) for _ in range(n))

    def release(self) -> None:
        """Let hanging requests go (they get 503)."""
        self._release.set()

    @property
    def held(self) -> int:
        """Requests hanging right now."""
        with self._lock:
            return self._held

    # ---- serving -----------------------------------------------------------

    def _handle(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        content_type = headers.get("content-type", "")
        body: dict[str, Any]
        if content_type.startswith("application/json"):
            body = json.loads(raw or b"{}")
        else:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        request = Request(path, headers, body)
        with self._lock:
            self.requests.append(request)
            self.got_request.set()
            trouble = self._trouble.popleft() if self._trouble else None
            if trouble is not None and trouble.hang:
                self._held += 1
        if trouble is not None and trouble.hang:
            self._release.wait(timeout=60)
            with self._lock:
                self._held -= 1
        if trouble is not None and trouble.delay_s:
            time.sleep(trouble.delay_s)
            trouble = None
        if trouble is not None:
            return self._trouble_reply(request, trouble)
        if path.startswith("/services/"):
            return self._webhook(request)
        if path == "/api/chat.postMessage":
            return self._post_message(request)
        if path == "/api/chat.update":
            return self._update(request)
        return self._api_reply(request, {"ok": False, "error": "unknown_method"}, status=404)

    def _trouble_reply(
        self, request: Request, trouble: _Trouble
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {}
        if trouble.retry_after is not None:
            headers["Retry-After"] = str(trouble.retry_after)
        request.status, request.error = trouble.status, trouble.error
        if request.path.startswith("/services/"):
            headers["Content-Type"] = "text/html"
            return trouble.status, headers, trouble.error.encode()
        headers["Content-Type"] = "application/json; charset=utf-8"
        payload = json.dumps({"ok": False, "error": trouble.error}).encode()
        return trouble.status, headers, payload

    def _webhook(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if request.path != WEBHOOK_PATH:
            request.status, request.error = 404, "no_service"
            return 404, {"Content-Type": "text/html"}, b"no_service"
        if not request.body.get("text") and not request.body.get("blocks"):
            request.status, request.error = 400, "invalid_payload"
            return 400, {"Content-Type": "text/html"}, b"invalid_payload"
        with self._lock:
            self.posts.append(request.body)
        request.status = 200
        return 200, {"Content-Type": "text/html"}, b"ok"

    def _api_reply(
        self, request: Request, payload: dict[str, Any], status: int = 200
    ) -> tuple[int, dict[str, str], bytes]:
        request.status = status
        request.error = None if payload.get("ok") else str(payload.get("error"))
        return (
            status,
            {"Content-Type": "application/json; charset=utf-8"},
            json.dumps(payload).encode(),
        )

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {TOKEN}"

    def _post_message(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if not self._authorized(request):
            return self._api_reply(request, {"ok": False, "error": "invalid_auth"})
        channel = {CHANNEL_NAME: CHANNEL_ID, CHANNEL_ID: CHANNEL_ID}.get(
            str(request.body.get("channel"))
        )
        if channel is None:
            return self._api_reply(request, {"ok": False, "error": "channel_not_found"})
        if not request.body.get("text") and not request.body.get("blocks"):
            return self._api_reply(request, {"ok": False, "error": "no_text"})
        with self._lock:
            ts = f"1750000000.{next(self._ts):06d}"
            self.posts.append(request.body)
            self.messages[(channel, ts)] = request.body
        return self._api_reply(
            request, {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}}
        )

    def _update(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if not self._authorized(request):
            return self._api_reply(request, {"ok": False, "error": "invalid_auth"})
        key = (str(request.body.get("channel")), str(request.body.get("ts")))
        with self._lock:
            if key[0] != CHANNEL_ID:
                return self._api_reply(request, {"ok": False, "error": "channel_not_found"})
            if key not in self.messages:
                return self._api_reply(request, {"ok": False, "error": "message_not_found"})
            self.messages[key] = request.body
            self.updates.append(request.body)
        return self._api_reply(request, {"ok": True, "channel": key[0], "ts": key[1]})


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, reply_headers, payload = self.server.stand_in._handle(self.path, headers, raw)
        self.send_response(status)
        for key, value in reply_headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stand_in: SlackStandIn


@contextlib.contextmanager
def slack_stand_in() -> Iterator[SlackStandIn]:
    """Serve a :class:`SlackStandIn` on 127.0.0.1 until the block ends."""
    stand_in = SlackStandIn()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stand_in = stand_in
    stand_in.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="slack-stand-in", daemon=True
    )
    thread.start()
    try:
        yield stand_in
    finally:
        stand_in.release()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
