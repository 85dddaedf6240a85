"""Slow and oversized requests are cut off by server limits; others are still served."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ..support.client import Client
from ..support.server import ServerProcess, running_server
from .test_cli_and_process import add_tenant

LIMITS = {
    "TIPPEN_KEEP_ALIVE_TIMEOUT_S": "2",
    "TIPPEN_BODY_TIMEOUT_S": "2",
    "TIPPEN_READ_TIMEOUT_S": "5",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    db = tmp_path / "t.db"
    api_key = add_tenant(db, server_sender=True)["api_key"]
    with running_server(db, env=LIMITS) as running:
        yield running, api_key


def connect(server: ServerProcess) -> socket.socket:
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=15)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed (or answered and closed) the connection."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def normal_request_works(server: ServerProcess, api_key: str) -> bool:
    client = Client(server.url, timeout_s=5)
    try:
        status, body = client.post_json(
            "/api/track/user-activity",
            {
                "apiKey": api_key,
                "userId": "fine",
                "subscriptionTier": "paid",
                "events": [{"type": "heartbeat", "timestamp": time.time() * 1000}],
            },
        )
        return status == 200 and body["stored"] == 1
    finally:
        client.close()


def test_slowloris_headers_are_cut_off_and_others_are_served(
    server: tuple[ServerProcess, str],
) -> None:
    running, api_key = server
    slow = [connect(running) for _ in range(30)]
    stop = threading.Event()

    def dribble() -> None:
        for sock in slow:
            sock.sendall(b"POST /api/track/user-activity HTTP/1.1\r\nHost: x\r\n")
        while not stop.is_set():
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X")  # one byte of a header that never ends
            time.sleep(0.3)

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        assert normal_request_works(running, api_key)
        # Every slow connection is closed by the server (2 s header deadline).
        assert all(closed_by_server(sock) for sock in slow)
        assert normal_request_works(running, api_key)
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in slow:
            sock.close()


def test_a_body_that_dribbles_in_gets_408(server: tuple[ServerProcess, str]) -> None:
    running, api_key = server
    sock = connect(running)
    sock.sendall(
        b"POST /api/track/user-activity HTTP/1.1\r\nHost: x\r\n"
        b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"apiKey": '
    )
    answer = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
        try:
            sock.sendall(b" ")
        except OSError:
            break
        sock.settimeout(0.3)
        with contextlib.suppress(TimeoutError):
            answer += sock.recv(65536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"body_timeout" in answer or b"408" in answer
    assert normal_request_works(running, api_key)


def test_oversized_headers_are_refused(server: tuple[ServerProcess, str]) -> None:
    running, api_key = server
    sock = connect(running)
    with contextlib.suppress(OSError):  # the server may close before we finish
        sock.sendall(
            b"POST /api/track/user-activity HTTP/1.1\r\nHost: x\r\n"
            + b"X-Padding: "
            + b"a" * (64 * 1024)
            + b"\r\n\r\n"
        )
    sock.settimeout(5)
    try:
        answer = sock.recv(65536)
    except (ConnectionResetError, TimeoutError):
        answer = b""
    sock.close()
    assert not answer.startswith(b"HTTP/1.1 2"), answer[:200]
    assert normal_request_works(running, api_key)
