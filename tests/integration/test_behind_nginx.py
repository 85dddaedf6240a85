"""The service behind docs/deploy.md's nginx site, as written there (ports and
certificate paths aside): TLS, the WebSocket upgrade, forwarded headers
believed as TIPPEN_TRUSTED_PROXIES=1 says, /metrics kept off the proxy.

Skipped where nginx or openssl is not installed (Debian packages nginx, openssl).
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, RejectConnection, Request, TextMessage

from ..conftest import ORIGIN
from ..support.client import Client
from ..support.server import ServerProcess, running_server
from ..unit.test_deploy_docs import doc_files
from .test_cli_and_process import add_tenant

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("nginx") is None, reason="nginx is not installed (Debian nginx)"
    ),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]

NAME = "tippen.example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], bound_s: float = 15) -> None:
    deadline = time.monotonic() + bound_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def nginx_in_front(tmp_path: Path) -> Iterator[tuple[ServerProcess, int, int, dict[str, str]]]:
    db = tmp_path / "t.db"
    created = add_tenant(db, "acme", ORIGIN)
    env = {"TIPPEN_TRUSTED_PROXIES": "1", "TIPPEN_ACCESS_LOG": "true"}
    with running_server(db, env=env) as server:
        key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
                *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={NAME}"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        https, plain = _free_port(), _free_port()
        site = doc_files()["nginx.conf"]
        live = f"/etc/letsencrypt/live/{NAME}"
        for old, new in {
            "server 127.0.0.1:8080;": f"server 127.0.0.1:{server.port};",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
            "listen [::]:443 ssl http2;": "",
            "listen 80;": f"listen 127.0.0.1:{plain};",
            "listen [::]:80;": "",
            f"{live}/fullchain.pem": str(cert),
            f"{live}/privkey.pem": str(key),
        }.items():
            assert old in site, old
            site = site.replace(old, new)
        (tmp_path / "site.conf").write_text(site)
        temp = " ".join(
            f"{kind}_temp_path {tmp_path / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        main = tmp_path / "main.conf"
        main.write_text(
            f"user root; pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'};\n"
            f"events {{}}\nhttp {{ access_log off; {temp} include {tmp_path / 'site.conf'}; }}\n"
        )
        nginx = subprocess.Popen(
            ["nginx", "-c", str(main), "-p", str(tmp_path), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(https, nginx)
            yield server, https, plain, created
        finally:
            nginx.terminate()
            nginx.wait(timeout=15)


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # our own self-signed certificate
    return context


def _https(port: int) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=_tls())


def _request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    conn.request(method, path, body=body, headers={"Host": NAME, **(headers or {})})
    response = conn.getresponse()
    response.read()
    return response


def test_behind_the_documented_nginx(
    nginx_in_front: tuple[ServerProcess, int, int, dict[str, str]],
) -> None:
    server, https, plain, created = nginx_in_front
    conn = _https(https)
    assert _request(conn, "GET", "/tippen-app-tracker.js").status == 200
    assert _request(conn, "GET", "/metrics").status == 404  # kept off the proxy

    # Over https through the proxy the session cookie is Secure; directly, not.
    login = orjson.dumps({"token": created["admin_token"]})
    json_type = {"Content-Type": "application/json"}
    response = _request(conn, "POST", "/login", login, json_type)
    assert response.status == 200
    set_cookie = response.getheader("Set-Cookie") or ""
    assert "Secure" in set_cookie.split(";", 1)[1]
    cookie = set_cookie.split(";", 1)[0]
    direct = Client(server.url)
    status, _, headers = direct.post_json_full("/login", {"token": created["admin_token"]})
    direct.close()
    assert status == 200 and "Secure" not in headers["set-cookie"]

    # A client's own X-Forwarded-For is not believed: the proxy's entry is.
    forged = _request(conn, "GET", "/healthz", headers={"X-Forwarded-For": "6.6.6.6"})
    assert forged.status == 200
    conn.close()
    deadline = time.monotonic() + 10
    while "/healthz" not in server.log():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [line] = [line for line in server.log().splitlines() if '"GET /healthz ' in line]
    assert "6.6.6.6" not in line and '127.0.0.1 "GET /healthz HTTP/1.1" 200' in line

    # Plain http is sent to https.
    redirect = _request(http.client.HTTPConnection("127.0.0.1", plain, timeout=10), "GET", "/x")
    assert redirect.status == 301
    assert redirect.getheader("Location") == f"https://{NAME}/x"

    # The dashboard's WebSocket upgrades through the proxy and gets its snapshot.
    raw = socket.create_connection(("127.0.0.1", https), timeout=10)
    with _tls().wrap_socket(raw, server_hostname=NAME) as tls:
        ws = WSConnection(ConnectionType.CLIENT)
        tls.sendall(
            ws.send(
                Request(
                    host=NAME,
                    target="/ws/admin",
                    extra_headers=[
                        (b"origin", f"https://{NAME}".encode()),
                        (b"cookie", cookie.encode()),
                    ],
                )
            )
        )
        accepted, snapshot = False, None
        deadline = time.monotonic() + 10
        while snapshot is None and time.monotonic() < deadline:
            data = tls.recv(65536)
            assert data, "the proxy closed the socket"
            ws.receive_data(data)
            for event in ws.events():
                assert not isinstance(event, RejectConnection), event
                if isinstance(event, AcceptConnection):
                    accepted = True
                elif isinstance(event, Ping):
                    tls.sendall(ws.send(event.response()))
                elif isinstance(event, TextMessage):
                    snapshot = orjson.loads(event.data)
    assert accepted and snapshot is not None and snapshot["type"] == "snapshot"
