"""No input at the protocol layer ends the process or stalls other clients (issue 18).

Against the REAL service process on 127.0.0.1, over raw sockets (frames are
built with the ``h2`` package):

- 1,001 HTTP/2 PRIORITY frames for unopened streams: with HTTP/2 off (the
  default) the preface is refused with a 505; with ``TIPPEN_HTTP2=true``
  hypercorn's h2 code raises ``priority.TooManyStreamsError``, which now
  closes that connection only, logged in one line.  Either way the process
  lives on and serves the next requests.
- HTTP/2 rapid reset (HEADERS + RST_STREAM pairs) from a few connections:
  each attacking connection is closed (GOAWAY, ENHANCE_YOUR_CALM) while a
  good client's requests succeed.
- HTTP/1.1 corners: headers over ``TIPPEN_MAX_HEADER_BYTES`` get 431,
  Content-Length with Transfer-Encoding gets 400 and a closed connection,
  and parser errors answer with the JSON error body.
- A bounded hypothesis fuzz over raw HTTP/1.1 bytes and HTTP/2 frames: after
  every case the process is alive and ``GET /healthz`` answers.

No timing assertions: a timeout only bounds how long a test waits.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import hpack
import orjson
import pytest
from hyperframe.frame import GoAwayFrame, PriorityFrame
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from ..support.client import Client
from ..support.server import ServerProcess, start_server

pytestmark = pytest.mark.slow

#: Connections here are closed by the server or by the end of a request,
#: never by idleness, so a connection left open is one the server kept.
QUIET = {"TIPPEN_KEEP_ALIVE_TIMEOUT_S": "300", "TIPPEN_READ_TIMEOUT_S": "300"}
HTTP2 = {**QUIET, "TIPPEN_HTTP2": "true"}
#: How long a test waits for the server to close a connection.
CLOSE_WAIT_S = 30.0
MAX_HEADER_BYTES = 16 * 1024
ISOLATED = "after an error in its protocol handling"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class Service:
    """A service process that is restarted if a case killed it (and says so)."""

    root: Path
    env: dict[str, str]
    server: ServerProcess | None = None
    deaths: list[str] = field(default_factory=list)

    def running(self) -> ServerProcess:
        if self.server is None or self.server.proc.poll() is not None:
            if self.server is not None:
                self.deaths.append(self.server.log()[-4000:])
            self.server = start_server(self.root / f"t{len(self.deaths)}.db", env=self.env)
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.kill()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service as configured by default (HTTP/2 off)."""
    service = Service(tmp_path_factory.mktemp("plain"), QUIET)
    service.running()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def with_h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service with ``TIPPEN_HTTP2=true``."""
    service = Service(tmp_path_factory.mktemp("h2"), HTTP2)
    service.running()
    yield service
    service.stop()


# --- raw sockets ---------------------------------------------------------------------


def connect(server: ServerProcess, timeout_s: float = CLOSE_WAIT_S) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s)


def send(sock: socket.socket, data: bytes) -> None:
    """Send what the server will still take (it may close the connection early)."""
    with contextlib.suppress(OSError):
        sock.sendall(data)


def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it closed the connection."""
    received = bytearray()
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return bytes(received), True
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        return bytes(received), True
    except TimeoutError:
        return bytes(received), False


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    #: False when the connection ended before the whole body (the app's answer
    #: to a client that had gone: it is cut off where it was).
    complete: bool = True

    def json(self) -> Any:
        return orjson.loads(self.body)


def parse_response(data: bytes) -> RawResponse:
    """The first HTTP/1.1 response in ``data``."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response in {data[:300]!r}"
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    return RawResponse(status, headers, rest[:length], complete=len(rest) >= length)


def exchange(server: ServerProcess, request: bytes) -> tuple[RawResponse, bool]:
    """Send ``request`` on a new connection; the response and whether it was closed."""
    with connect(server) as sock:
        send(sock, request)
        data, closed = read_until_closed(sock)
    return parse_response(data), closed


def assert_json_error(response: RawResponse, status: int, code: str) -> None:
    assert response.status == status, response
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"success", "error"} and body["success"] is False
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code and body["error"]["field"] is None
    assert body["error"]["message"]


def healthz(server: ServerProcess) -> int:
    client = Client(server.url, timeout_s=CLOSE_WAIT_S)
    try:
        status, _ = client.get("/healthz")
        return status
    finally:
        client.close()


def still_serving(server: ServerProcess) -> None:
    """The process is alive and answers a normal request."""
    assert server.proc.poll() is None, f"the process exited:\n{server.log()[-4000:]}"
    assert healthz(server) == 200


# --- HTTP/2 frames -------------------------------------------------------------------


def h2_client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.initiate_connection()
    return conn


def priority_flood(count: int = 1001) -> bytes:
    """The client preface, then PRIORITY frames for ``count`` streams never opened."""
    conn = h2_client()
    data = bytearray(conn.data_to_send())
    for i in range(count):
        frame = PriorityFrame(2 * i + 3)
        frame.depends_on = 0
        frame.stream_weight = 16
        data += frame.serialize()
    return bytes(data)


def request_headers(path: str = "/healthz", method: str = "GET") -> list[tuple[bytes, bytes]]:
    return [
        (b":method", method.encode()),
        (b":path", path.encode()),
        (b":scheme", b"http"),
        (b":authority", b"127.0.0.1"),
    ]


def frames(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, stream id, payload) of each complete HTTP/2 frame in ``data``."""
    at = 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        kind = data[at + 3]
        stream_id = int.from_bytes(data[at + 5 : at + 9], "big") & 0x7FFFFFFF
        if at + 9 + length > len(data):
            return
        yield kind, stream_id, data[at + 9 : at + 9 + length]
        at += 9 + length


def goaway_codes(data: bytes) -> list[int]:
    codes = []
    for kind, _, payload in frames(data):
        if kind == GoAwayFrame.type:
            frame = GoAwayFrame(0)
            frame.parse_body(memoryview(payload))
            codes.append(frame.error_code)
    return codes


def h2_exchange(
    server: ServerProcess, headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, bytes]:
    """One request over HTTP/2 with prior knowledge; its status and body."""
    conn = h2_client()
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, headers or request_headers(), end_stream=True)
    status, body = 0, bytearray()
    with connect(server) as sock:
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            assert data, "the server closed the HTTP/2 connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                elif isinstance(event, h2.events.StreamEnded):
                    return status, bytes(body)
            sock.sendall(conn.data_to_send())


def h2_get(server: ServerProcess) -> int:
    """``GET /healthz`` over HTTP/2; its status."""
    return h2_exchange(server)[0]


# --- the flood of PRIORITY frames ----------------------------------------------------


def test_priority_flood_is_refused_when_http2_is_off(plain: Service) -> None:
    server = plain.running()
    with connect(server) as sock:
        send(sock, priority_flood())
        data, closed = read_until_closed(sock)
    assert closed
    assert_json_error(parse_response(data), 505, "http2_not_enabled")
    still_serving(server)
    assert not plain.deaths


def test_an_h2c_upgrade_is_answered_over_http1_when_http2_is_off(plain: Service) -> None:
    server = plain.running()
    response, _ = exchange(
        server,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    )
    assert response.status == 200, response  # not 101 Switching Protocols
    assert response.json()["ok"] is True


def test_an_error_in_http2_handling_closes_that_connection_only(with_h2: Service) -> None:
    server = with_h2.running()
    assert h2_get(server) == 200  # HTTP/2 is on
    logged_before = len(server.output)
    with connect(server) as sock:
        send(sock, priority_flood())
        _, closed = read_until_closed(sock)
    assert closed
    still_serving(server)
    assert h2_get(server) == 200
    server.wait_for_log(ISOLATED)
    new_lines = server.output[logged_before:]
    isolated = [line for line in new_lines if ISOLATED in line]
    assert len(isolated) == 1, new_lines
    assert "TooManyStreamsError" in isolated[0]
    assert not any("Traceback" in line for line in new_lines), "".join(new_lines)
    assert not with_h2.deaths


# --- rapid reset ---------------------------------------------------------------------


def rapid_reset(server: ServerProcess, pairs: int, outcome: list[tuple[bool, list[int]]]) -> None:
    """HEADERS + RST_STREAM ``pairs`` times on one connection, sent in bursts."""
    conn = h2_client()
    with connect(server) as sock:
        for _ in range(pairs // 50):
            for _ in range(50):
                stream_id = conn.get_next_available_stream_id()
                conn.send_headers(stream_id, request_headers(), end_stream=True)
                conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            send(sock, conn.data_to_send())
        data, closed = read_until_closed(sock)
    outcome.append((closed, goaway_codes(data)))


def test_rapid_reset_costs_the_attacker_its_connection(with_h2: Service) -> None:
    server = with_h2.running()
    outcomes: list[tuple[bool, list[int]]] = []
    attackers = [
        threading.Thread(target=rapid_reset, args=(server, 500, outcomes), daemon=True)
        for _ in range(4)
    ]
    for thread in attackers:
        thread.start()
    good = Client(server.url, timeout_s=CLOSE_WAIT_S)
    try:
        statuses = [good.get("/healthz")[0] for _ in range(30)]
    finally:
        good.close()
    statuses.append(h2_get(server))
    for thread in attackers:
        thread.join(timeout=2 * CLOSE_WAIT_S)
    assert statuses == [200] * 31
    assert len(outcomes) == 4
    for closed, codes in outcomes:
        assert closed
        assert codes == [h2.errors.ErrorCodes.ENHANCE_YOUR_CALM]
    still_serving(server)
    assert not with_h2.deaths


def test_a_client_that_resets_a_few_streams_keeps_its_connection(with_h2: Service) -> None:
    server = with_h2.running()
    conn = h2_client()
    with connect(server) as sock:
        for _ in range(20):
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(stream_id, request_headers(), end_stream=True)
            conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(stream_id, request_headers(), end_stream=True)
        sock.sendall(conn.data_to_send())
        status = 0
        done = False
        while not done:
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                    done = True
            sock.sendall(conn.data_to_send())
    assert status == 200


def test_a_body_still_arriving_after_the_answer_is_dropped_not_fatal(
    with_h2: Service,
) -> None:
    """A 413 comes before the whole upload; the rest of it must not end the connection."""
    server = with_h2.running()
    conn = h2_client()
    upload = conn.get_next_available_stream_id()
    conn.send_headers(
        upload,
        [
            *request_headers("/api/track/user-activity", "POST"),
            (b"content-type", b"application/json"),
            (b"content-length", b"1000000"),
        ],
    )
    conn.send_data(upload, b"x" * 16_000)
    answers: dict[int, int] = {}
    ended: set[int] = set()

    def until_ended(sock: socket.socket, stream_id: int) -> None:
        while stream_id not in ended:
            data = sock.recv(65536)
            assert data, "the server closed the HTTP/2 connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    answers[event.stream_id] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.StreamEnded):
                    ended.add(event.stream_id)
            sock.sendall(conn.data_to_send())

    with connect(server) as sock:
        sock.sendall(conn.data_to_send())
        until_ended(sock, upload)
        assert answers[upload] == 413
        conn.send_data(upload, b"x" * 16_000)  # more of the body, answered already
        second = conn.get_next_available_stream_id()
        conn.send_headers(second, request_headers(), end_stream=True)
        sock.sendall(conn.data_to_send())
        until_ended(sock, second)
    assert answers[second] == 200
    still_serving(server)


# --- HTTP/1.1 corners ----------------------------------------------------------------


def test_a_connection_close_request_gets_its_connection_closed(plain: Service) -> None:
    # Hypercorn closed it from the app's task, which quart-trio had cancelled.
    response, closed = exchange(
        plain.running(), b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert response.status == 200
    assert closed


def get_with_header_of(size: int) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * size + b"\r\n\r\n"


@pytest.mark.parametrize("pad", [MAX_HEADER_BYTES, 40 * 1024, 60 * 1024])
def test_headers_over_the_limit_get_431_with_json(plain: Service, pad: int) -> None:
    response, closed = exchange(plain.running(), get_with_header_of(pad))
    assert_json_error(response, 431, "headers_too_large")
    assert closed


def test_http2_headers_over_the_limit_get_431_with_json(with_h2: Service) -> None:
    pad = (b"x-pad", b"a" * MAX_HEADER_BYTES)
    status, body = h2_exchange(with_h2.running(), [*request_headers(), pad])
    assert status == 431
    assert orjson.loads(body)["error"]["code"] == "headers_too_large"


def test_headers_under_the_limit_are_served(plain: Service) -> None:
    response, _ = exchange(
        plain.running(),
        get_with_header_of(MAX_HEADER_BYTES - 200)[:-2] + b"Connection: close\r\n\r\n",
    )
    assert response.status == 200


def test_headers_dribbled_in_past_the_limit_get_431_with_json(plain: Service) -> None:
    with connect(plain.running()) as sock:
        send(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(40):
            send(sock, b"X-Pad: " + b"a" * 1000 + b"\r\n")
        data, closed = read_until_closed(sock)
    assert_json_error(parse_response(data), 431, "headers_too_large")
    assert closed


def test_content_length_with_chunked_is_refused_and_the_connection_closed(
    plain: Service,
) -> None:
    response, closed = exchange(
        plain.running(),
        b"POST /api/track/user-activity HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    )
    assert_json_error(response, 400, "ambiguous_body_length")
    assert closed


@pytest.mark.parametrize("host", [b"a" * 64, b"a..b", b".example.com:8080"])
def test_a_host_the_router_cannot_take_gets_400_with_json(
    plain: Service, with_h2: Service, host: bytes
) -> None:
    # Was a traceback in the log and an empty 500 per request.
    response, closed = exchange(
        plain.running(), b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    )
    assert_json_error(response, 400, "bad_host")
    assert closed
    status, body = h2_exchange(with_h2.running(), [*request_headers()[:3], (b":authority", host)])
    assert status == 400
    assert orjson.loads(body)["error"]["code"] == "bad_host"
    assert "Traceback" not in plain.running().log() + with_h2.running().log()


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, "bad_request"),
        (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request"),  # no Host
        (
            b"POST /api/track/user-activity HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            501,
            "unsupported_transfer_encoding",
        ),
    ],
)
def test_parser_errors_answer_with_the_json_error(
    plain: Service, request_bytes: bytes, status: int, code: str
) -> None:
    response, closed = exchange(plain.running(), request_bytes)
    assert_json_error(response, status, code)
    assert closed


# --- fuzzing -------------------------------------------------------------------------

FUZZ = settings(
    max_examples=100,
    deadline=None,
    # A failing case may leave no process to shrink against (the service is
    # restarted for the next case): the first failing case is the report.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


def fuzz_case(service: Service, data: bytes, http1: bool) -> None:
    """Send ``data`` and half-close: the server closes the connection too, its
    HTTP/1.1 error answers are JSON, and afterwards it still serves."""
    server = service.running()
    with connect(server) as sock:
        send(sock, data)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        answer, closed = read_until_closed(sock)
    assert server.proc.poll() is None, f"the process exited:\n{server.log()[-4000:]}"
    assert closed, "the server kept a connection its client had left"
    if http1 and answer.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in answer:
        response = parse_response(answer)
        if response.status >= 400 and response.complete and not data.startswith(b"HEAD "):
            assert response.json()["success"] is False, response
    assert healthz(server) == 200


crlf = st.sampled_from([b"\r\n", b"\n"])
tokens = st.sampled_from([b"GET", b"POST", b"HEAD", b"OPTIONS", b"PUT", b"CONNECT", b"PRI"])
targets = st.sampled_from([b"/healthz", b"/api/track/user-activity", b"*", b"/", b"//x?y=%zz"])
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9.9", b"HTTP/1"])
header_names = st.sampled_from(
    [
        b"Host",
        b"Content-Length",
        b"Transfer-Encoding",
        b"Connection",
        b"Upgrade",
        b"HTTP2-Settings",
        b"Expect",
        b"Content-Type",
        b"X-Forwarded-For",
        b"Sec-WebSocket-Key",
    ]
)
header_values = st.one_of(
    st.sampled_from(
        [
            b"x",
            b"0",
            b"5",
            b"-1",
            b"99999999999999999999",
            b"chunked",
            b"chunked, identity",
            b"gzip",
            b"close",
            b"keep-alive",
            b"Upgrade, HTTP2-Settings",
            b"h2c",
            b"websocket",
            b"100-continue",
            b"AAMAAABkAAQCAAAAAAIAAAAA",
            b"application/json",
        ]
    ),
    st.binary(max_size=40),
    st.integers(1, 70_000).map(lambda n: b"a" * n),
)
headers = st.lists(
    st.tuples(st.one_of(header_names, st.binary(min_size=1, max_size=20)), header_values),
    max_size=8,
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"fffffffff\r\n", b'{"apiKey":1}']),
)


@st.composite
def http1_requests(draw: st.DrawFn) -> bytes:
    eol = draw(crlf)
    line = b" ".join([draw(tokens), draw(targets), draw(versions)])
    fields = b"".join(name + b": " + value + eol for name, value in draw(headers))
    return line + eol + fields + eol + draw(bodies)


@st.composite
def http1_bytes(draw: st.DrawFn) -> bytes:
    requests = b"".join(draw(st.lists(http1_requests(), min_size=1, max_size=3)))
    mutation = draw(st.sampled_from(["none", "cut", "insert", "raw"]))
    if mutation == "cut":
        return requests[: draw(st.integers(0, len(requests)))]
    if mutation == "insert":
        at = draw(st.integers(0, len(requests)))
        return requests[:at] + draw(st.binary(min_size=1, max_size=50)) + requests[at:]
    if mutation == "raw":
        return draw(st.binary(max_size=2000))
    return requests


def raw_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream_id & 0x7FFFFFFF)
        + payload
    )


stream_ids = st.one_of(st.integers(0, 12).map(lambda n: 2 * n + 1), st.integers(0, 2**31 - 1))


@st.composite
def headers_frames(draw: st.DrawFn) -> bytes:
    fields = []
    for name, choices in (
        (b":method", [b"GET", b"POST", b"HEAD", b"CONNECT", b"OPTIONS", b""]),
        (b":path", [b"/healthz", b"/api/track/user-activity", b"*", b"", b"/%00"]),
        (b":scheme", [b"http", b"https", b""]),
        (b":authority", [b"127.0.0.1", b""]),
        (b":protocol", [b"websocket"]),
    ):
        if draw(st.booleans()):
            fields.append((name, draw(st.sampled_from(choices))))
    for name, value in draw(headers):
        fields.append((name.lower(), value[:2000]))
    block = hpack.Encoder().encode(fields)
    flags = draw(st.sampled_from([0x5, 0x4, 0x1, 0x0, 0x25]))  # END_STREAM/HEADERS, PRIORITY
    if flags & 0x20:
        block = struct.pack(">IB", draw(st.integers(0, 2**31 - 1)), 15) + block
    return raw_frame(0x1, flags, draw(stream_ids), block)


@st.composite
def priority_bursts(draw: st.DrawFn) -> bytes:
    count = draw(st.integers(1, 1200))
    first = draw(st.integers(0, 20)) * 2 + 1
    depends = draw(st.integers(0, 2**31 - 1))
    return b"".join(
        raw_frame(0x2, 0, first + 2 * i, struct.pack(">IB", depends, 15)) for i in range(count)
    )


@st.composite
def rapid_resets(draw: st.DrawFn) -> bytes:
    first = draw(st.integers(0, 20)) * 2 + 1
    block = hpack.Encoder().encode(request_headers())
    return b"".join(
        raw_frame(0x1, 0x5, first + 2 * i, block)
        + raw_frame(0x3, 0, first + 2 * i, struct.pack(">I", 8))
        for i in range(draw(st.integers(1, 300)))
    )


h2_frames = st.one_of(
    headers_frames(),
    priority_bursts(),
    rapid_resets(),
    st.builds(
        lambda sid, flags, data: raw_frame(0x0, flags, sid, data),
        stream_ids,
        st.sampled_from([0, 1, 8, 9]),
        st.binary(max_size=300),
    ),
    st.builds(
        lambda sid, code: raw_frame(0x3, 0, sid, struct.pack(">I", code)),
        stream_ids,
        st.integers(0, 15),
    ),
    st.builds(
        lambda pairs: raw_frame(0x4, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs)),
        st.lists(st.tuples(st.integers(0, 9), st.integers(0, 2**32 - 1)), max_size=4),
    ),
    st.builds(
        lambda sid, inc: raw_frame(0x8, 0, sid, struct.pack(">I", inc)),
        stream_ids,
        st.integers(0, 2**31 - 1),
    ),
    st.builds(
        raw_frame,
        st.integers(0, 12),
        st.integers(0, 255),
        stream_ids,
        st.binary(max_size=100),
    ),
)


@st.composite
def http2_bytes(draw: st.DrawFn) -> bytes:
    start = draw(st.sampled_from(["preface", "preface", "h2c", "none"]))
    settings_frame = raw_frame(0x4, 0, 0, b"")
    if start == "preface":
        head = PREFACE + settings_frame
    elif start == "h2c":
        head = (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
            + PREFACE
            + settings_frame
        )
    else:
        head = b""
    return head + b"".join(draw(st.lists(h2_frames, max_size=6)))


def test_fuzzed_http1_bytes_never_stop_the_service(plain: Service) -> None:
    @FUZZ
    @given(data=http1_bytes())
    def case(data: bytes) -> None:
        fuzz_case(plain, data, http1=True)

    case()
    assert not plain.deaths, plain.deaths[0]


def test_fuzzed_http2_frames_never_stop_the_service(with_h2: Service) -> None:
    @FUZZ
    @given(data=http2_bytes())
    def case(data: bytes) -> None:
        fuzz_case(with_h2, data, http1=False)

    case()
    assert not with_h2.deaths, with_h2.deaths[0]
