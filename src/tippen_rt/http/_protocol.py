"""Hypercorn's per-connection protocol handling, with our limits (hypercorn 0.18).

Hypercorn gives each connection a ``ProtocolWrapper`` that parses HTTP/1.1
with h11 and switches to HTTP/2 (h2) on the preface ``PRI * HTTP/2.0`` or an
``Upgrade: h2c`` request.  :class:`TippenProtocolWrapper` replaces it (see
``_server.py``) and differs in this:

- HTTP/2 only when configured (``TIPPEN_HTTP2``): otherwise the preface is
  refused with a 505 and the connection closed, and an ``Upgrade: h2c``
  header is ignored (the request is answered over HTTP/1.1).
- HTTP/1.1: a request line plus headers over ``TIPPEN_MAX_HEADER_BYTES`` is
  refused with 431 (h11 checks its limit only while a header block is
  incomplete, and hypercorn reads 64 KiB at a time, so a block that arrived
  whole in one read was never measured); Content-Length together with
  Transfer-Encoding is refused with 400 and the connection closed (a request
  smuggling shape behind a proxy); so is a Host the app's router cannot
  take.  Every such refusal and every h11 parser error (400, 431, 501)
  answers with our JSON error body.
- HTTP/2: the same header size and Host checks (a JSON 431/400 on that
  stream); each connection may have ``H2_RESET_ALLOWANCE`` streams reset
  (by either side), regaining one per stream answered, and is closed with
  GOAWAY (ENHANCE_YOUR_CALM) past that; a stream opened and reset within
  one read never reaches the app ("rapid reset" costs the attacker's
  connection only); the rest of a request body that arrives after its
  answer is dropped.

Anything else these classes raise closes that connection only
(``_CycleFreeTCPServer.run``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import h2.errors
import h2.events
import h2.exceptions
import h11
import orjson
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.events import EndBody
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H2CProtocolRequiredError, H2ProtocolAssumedError, H11Protocol
from hypercorn.typing import (
    AppWrapper,
    ConnectionState,
    H11SendableEvent,
    TaskGroup,
    WorkerContext,
)

from ..events import BadInput

#: Stream resets an HTTP/2 connection may have; it regains one per stream answered.
H2_RESET_ALLOWANCE = 100


class ServerConfig(HypercornConfig):
    """Hypercorn's config plus what our protocol classes read."""

    #: Serve HTTP/2 on a cleartext connection (prior knowledge or h2c upgrade).
    http2: bool = False
    #: See ``H2_RESET_ALLOWANCE``.
    h2_reset_allowance: int = H2_RESET_ALLOWANCE


def _http2_enabled(config: HypercornConfig) -> bool:
    # A plain hypercorn config (not ours) keeps hypercorn's own behaviour.
    return config.http2 if isinstance(config, ServerConfig) else True


def _reset_allowance(config: HypercornConfig) -> int:
    return config.h2_reset_allowance if isinstance(config, ServerConfig) else H2_RESET_ALLOWANCE


_PARSER_ERRORS = {
    400: ("bad_request", "malformed HTTP request"),
    431: ("headers_too_large", "request headers are over the size limit"),
    501: ("unsupported_transfer_encoding", "only Transfer-Encoding: chunked is supported"),
}


def _parser_error(status: int) -> BadInput:
    code, message = _PARSER_ERRORS.get(status, (f"http_{status}", "malformed HTTP request"))
    return BadInput(code, message, None, status=status)


def _bad_host(value: bytes) -> bool:
    """A Host (or :authority) the app's URL routing cannot take.

    Werkzeug IDNA-encodes the host name and fails on an empty label or one
    of 64 or more characters (``a..b``, 64 x ``a``): that was a traceback
    and an empty 500 for each such request.  Such a Host is invalid anyway.
    """
    labels = value.partition(b":")[0].split(b".")
    return len(labels[-1]) > 63 or any(not 0 < len(label) < 64 for label in labels[:-1])


_BAD_HOST = ("bad_host", "the Host header is not a valid host name")


class _Refused(Exception):
    """A parsed request we answer with ``error`` and then close the connection."""

    def __init__(self, error: BadInput, request: h11.Request) -> None:
        super().__init__(error.message)
        self.error = error
        self.head = request.method == b"HEAD"


def _refusal(request: h11.Request, max_header_bytes: int, http2: bool) -> BadInput | None:
    """Why ``request`` (its head, parsed) must be refused, or None."""
    # "METHOD SP target SP HTTP/x.y CRLF", then "name: value CRLF" each, then CRLF:
    # whitespace h11 strips around values is not counted.
    size = len(request.method) + len(request.target) + len(request.http_version) + 11
    has_length = has_transfer_coding = bad_host = False
    # raw_items() is a plain list: iterating the Headers sequence itself costs
    # about ten times as much.
    for raw_name, value in request.headers.raw_items():
        size += len(raw_name) + len(value) + 4
        name = raw_name.lower()
        if name == b"content-length":
            has_length = True
        elif name == b"transfer-encoding":
            has_transfer_coding = True
        elif name == b"host":
            bad_host = bad_host or _bad_host(value)
    if size > max_header_bytes:
        return _parser_error(431)
    if bad_host:
        return BadInput(*_BAD_HOST, None)
    if has_length and has_transfer_coding:
        return BadInput(
            "ambiguous_body_length",
            "Content-Length together with Transfer-Encoding is refused",
            None,
        )
    if (
        not http2
        and request.method == b"PRI"
        and request.target == b"*"
        and request.http_version == b"2.0"
    ):
        return BadInput(
            "http2_not_enabled",
            "HTTP/2 is not served on this port",
            None,
            status=505,
        )
    return None


class TippenH11Protocol(H11Protocol):
    """HTTP/1.1 with our header limit, CL+TE refusal, JSON errors and HTTP/2 policy."""

    async def _check_protocol(self, event: h11.Request) -> None:
        http2 = _http2_enabled(self.config)
        error = _refusal(event, self.config.h11_max_incomplete_size, http2)
        if error is not None:
            raise _Refused(error, event)
        if http2:
            await super()._check_protocol(event)
        # Otherwise an "Upgrade: h2c" header is ignored, as a server may.

    async def _handle_events(self) -> None:
        try:
            await super()._handle_events()
        except _Refused as refused:
            await self._send_error_response(refused.error.status, refused.error, not refused.head)
            await self.send(Closed())

    async def _send_error_response(
        self, status_code: int, error: BadInput | None = None, with_body: bool = True
    ) -> None:
        body = orjson.dumps((error or _parser_error(status_code)).to_json())
        try:
            reason = HTTPStatus(status_code).phrase.encode()
        except ValueError:
            reason = b""
        head = h11.Response(
            status_code=status_code,
            reason=reason,
            headers=[
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),
                *self.config.response_headers("h11"),
            ],
        )
        # One write: a pipelined request's app may be answering concurrently,
        # and its response must not end up inside this one (h11 then refuses
        # it, as for hypercorn's own error responses).
        data = self._h11_bytes(head)
        if with_body:
            data += self._h11_bytes(h11.Data(data=body))
        data += self._h11_bytes(h11.EndOfMessage())
        if data:
            await self.send(RawData(data=data))

    def _h11_bytes(self, event: H11SendableEvent) -> bytes:
        try:
            return self.connection.send(event) or b""
        except h11.LocalProtocolError:
            # After a parser error h11 is in ERROR and refuses what it cannot
            # send (a body for HEAD), as hypercorn's _send_h11_event allows.
            if self.connection.their_state is not h11.ERROR:
                raise
            return b""


class TippenH2Protocol(H2Protocol):
    """HTTP/2 whose connection is closed when its client resets too many streams."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._reset_credit = self._reset_allowance = _reset_allowance(self.config)

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        screened = await self._screen(events)
        if screened is None:
            return
        if not any(isinstance(event, h2.events.DataReceived) for event in screened):
            await super()._handle_events(screened)
            return
        # Hypercorn looks a body's stream up without a default, so a body
        # still arriving for a stream already answered (a 413 before the
        # whole upload, say) raised KeyError and ended the connection with
        # every other stream on it.  Checked as each event comes, since a
        # stream can end while the events before it are handled.
        for event in screened:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            else:
                await super()._handle_events([event])
        await self._flush()

    async def _screen(self, events: list[h2.events.Event]) -> list[h2.events.Event] | None:
        """The events to handle, or None once the connection is closed for its resets."""
        reset = {e.stream_id for e in events if isinstance(e, h2.events.StreamReset)}
        if reset:
            self._reset_credit -= len(reset)
            if self._reset_credit < 0:
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self.connection.close_connection(
                        error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                        additional_data=b"too many streams reset",
                    )
                await self._flush()
                await self.send(Closed())
                return None
            # A request opened and reset within this read is never started.
            opened = {e.stream_id for e in events if isinstance(e, h2.events.RequestReceived)}
            skipped = reset & opened
            if skipped:
                kept = []
                for event in events:
                    if getattr(event, "stream_id", None) not in skipped:
                        kept.append(event)
                    elif isinstance(event, h2.events.DataReceived):
                        # Hand the flow-control window back all the same.
                        self.connection.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                events = kept
        return events

    async def _create_stream(self, request: h2.events.RequestReceived) -> None:
        path = authority = host = None
        size = 0
        for name, value in request.headers:
            size += len(name) + len(value) + 4  # as if written as HTTP/1.1 lines
            if name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            elif name == b"host":
                host = value
        name_given = authority if authority is not None else host
        if size > self.config.h11_max_incomplete_size:
            await self._refuse(request.stream_id, _parser_error(431))
        elif name_given is not None and _bad_host(name_given):
            await self._refuse(request.stream_id, BadInput(*_BAD_HOST, None))
        elif path is None:  # h2 allows it for CONNECT; hypercorn then failed
            await self._refuse(request.stream_id, _parser_error(400))
        else:
            await super()._create_stream(request)

    async def _refuse(self, stream_id: int, error: BadInput) -> None:
        """Answer a request that never reaches the app (its body is then dropped)."""
        body = orjson.dumps(error.to_json())
        try:
            self.connection.send_headers(
                stream_id,
                [
                    (b":status", b"%d" % error.status),
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                    (b"cache-control", b"no-store"),
                    *self.config.response_headers("h2"),
                ],
            )
            self.connection.send_data(stream_id, body, end_stream=True)
        except h2.exceptions.ProtocolError:  # no flow-control window for it, say
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.connection.reset_stream(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        await self._flush()

    async def stream_send(self, event: StreamEvent) -> None:
        if isinstance(event, EndBody):
            # An answered stream earns back one reset, up to the allowance.
            self._reset_credit = min(self._reset_credit + 1, self._reset_allowance)
        await super().stream_send(event)


class TippenProtocolWrapper(ProtocolWrapper):
    """Hypercorn's ``ProtocolWrapper`` with our HTTP/1.1 and HTTP/2 classes."""

    def __init__(
        self,
        app: AppWrapper,
        config: HypercornConfig,
        context: WorkerContext,
        task_group: TaskGroup,
        state: ConnectionState,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        send: Callable[[Event], Awaitable[None]],
        alpn_protocol: str | None = None,
    ) -> None:
        # What ProtocolWrapper.__init__ does, minus building an H11Protocol
        # only to replace it (an h11.Connection per connection).
        self.app = app
        self.config = config
        self.context = context
        self.task_group = task_group
        self.ssl = ssl
        self.client = client
        self.server = server
        self.send = send
        self.state = state
        self.protocol: TippenH11Protocol | TippenH2Protocol = (
            self._h2() if alpn_protocol == "h2" else TippenH11Protocol(*self._args())
        )

    def _args(self) -> tuple[Any, ...]:
        return (
            self.app,
            self.config,
            self.context,
            self.task_group,
            self.state,
            self.ssl,
            self.client,
            self.server,
            self.send,
        )

    def _h2(self) -> TippenH2Protocol:
        return TippenH2Protocol(*self._args())

    async def handle(self, event: Event) -> None:
        # TippenH11Protocol raises these two only when HTTP/2 is enabled.
        try:
            return await self.protocol.handle(event)
        except H2ProtocolAssumedError as error:
            protocol = self.protocol = self._h2()
            await protocol.initiate()
            data = error.data
        except H2CProtocolRequiredError as error:
            protocol = self.protocol = self._h2()
            await protocol.initiate(error.headers, error.settings)
            data = error.data
        if data != b"":
            await protocol.handle(RawData(data=data))
