"""``tenant rotate-key`` and ``tenant remove`` against the running service: the
real process, the real CLI in another process, the same SQLite file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ..support.client import Client
from ..support.server import ServerProcess, running_server
from .test_cli_and_process import add_tenant, cli

ORIGIN = "https://app.example.com"
OPERATOR = {"TIPPEN_OPERATOR_TOKEN": "op-secret"}


def send(
    server: ServerProcess, api_key: str, user: str, *events: dict[str, Any]
) -> tuple[int, Any]:
    client = Client(server.url)
    try:
        return client.post_json(
            "/api/track/user-activity",
            {
                "apiKey": api_key,
                "userId": user,
                "subscriptionTier": "paid",
                "events": [
                    {"timestamp": time.time() * 1000, **e}
                    for e in events or [{"type": "heartbeat"}]
                ],
            },
            headers={"Origin": ORIGIN},
        )
    finally:
        client.close()


def code_of(answer: tuple[int, Any]) -> tuple[int, str | None]:
    status, body = answer
    return status, (body or {}).get("error", {}).get("code")


def until(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait for ``check()``: the service reads the tenants again every few seconds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the running service did not follow the CLI"
        time.sleep(0.2)


def live_by_tenant(server: ServerProcess) -> dict[str, int]:
    client = Client(server.url)
    try:
        status, raw = client.get("/readyz", headers={"Authorization": "Bearer op-secret"})
    finally:
        client.close()
    assert status == 200, raw
    body = orjson.loads(raw)
    live: dict[str, int] = body["checks"]["live_users_by_tenant"]
    return live


def test_after_rotate_key_both_keys_work_until_the_overlap_ends(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    old = add_tenant(db, "acme", ORIGIN)["api_key"]
    with running_server(db) as server:
        assert code_of(send(server, old, "ann")) == (200, None)
        overlap_h = 0.003  # 10.8 s
        rotated = cli("tenant", "rotate-key", "acme", "--overlap-hours", str(overlap_h), db=db)
        assert rotated.returncode == 0, rotated.stderr
        new = rotated.stdout.split()[2]
        (expires_ms,) = (
            sqlite3.connect(db)
            .execute("SELECT previous_api_key_expires_at FROM tenants WHERE name = 'acme'")
            .fetchone()
        )
        until(lambda: code_of(send(server, new, "ann")) == (200, None))
        assert code_of(send(server, old, "ann")) == (200, None)
        assert time.time() * 1000 < expires_ms - 1000, "too slow to see both keys in the overlap"
        time.sleep(max(0.0, expires_ms / 1000 + 0.3 - time.time()))
        # Refused at once: the expiry is checked on every request.
        assert code_of(send(server, old, "ann")) == (401, "unknown_api_key")
        assert code_of(send(server, new, "ann")) == (200, None)

        # --overlap-hours 0: the key before stops at the service's next look.
        rotated = cli("tenant", "rotate-key", "acme", "--overlap-hours", "0", db=db)
        assert rotated.returncode == 0, rotated.stderr
        newest = rotated.stdout.split()[2]
        until(lambda: code_of(send(server, new, "ann")) == (401, "unknown_api_key"))
        assert code_of(send(server, newest, "ann")) == (200, None)
    assert "Traceback" not in server.log()


def test_tenant_remove_stops_its_key_sessions_and_live_users(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    acme, beta = add_tenant(db, "acme", ORIGIN), add_tenant(db, "beta", ORIGIN)
    ids = dict(sqlite3.connect(db).execute("SELECT name, id FROM tenants").fetchall())
    acme_id, beta_id = str(ids["acme"]), str(ids["beta"])
    errors = [{"type": "error", "message": "boom"} for _ in range(4)]
    with running_server(db, env=OPERATOR) as server:
        assert code_of(send(server, acme["api_key"], "ann", *errors)) == (200, None)
        assert code_of(send(server, acme["api_key"], "al")) == (200, None)
        assert code_of(send(server, beta["api_key"], "bo")) == (200, None)
        assert live_by_tenant(server) == {acme_id: 2, beta_id: 1}
        client = Client(server.url)
        status, body, headers = client.post_json_full(
            "/login", {"token": acme["admin_token"], "name": "Sam"}
        )
        assert status == 200, body
        cookie = {"Cookie": headers["set-cookie"].split(";", 1)[0]}
        assert client.get("/api/admin/me", headers=cookie)[0] == 200

        removed = cli("tenant", "remove", "acme", "--yes", db=db)
        assert removed.returncode == 0, removed.stderr
        assert "1 alerts" in removed.stdout  # ann's errors paged someone before
        until(lambda: acme_id not in live_by_tenant(server))
        assert live_by_tenant(server) == {beta_id: 1}
        assert code_of(send(server, acme["api_key"], "ann")) == (401, "unknown_api_key")
        assert client.get("/api/admin/me", headers=cookie)[0] == 401
        assert code_of(send(server, beta["api_key"], "bo")) == (200, None)
        client.close()

        def acme_rows() -> int:
            conn = sqlite3.connect(db)
            try:
                return sum(
                    conn.execute(
                        f"SELECT count(*) FROM {t} WHERE tenant_id = ?", (acme_id,)
                    ).fetchone()[0]
                    for t in ("live_snapshots", "user_activity_summary", "support_alerts")
                )
            finally:
                conn.close()

        until(lambda: acme_rows() == 0)  # the next snapshot round forgot them too
        assert server.stop() == 0, server.log()
    assert acme_rows() == 0
    # A restart does not bring them back.
    with running_server(db, env=OPERATOR) as server:
        assert live_by_tenant(server) == {beta_id: 1}
        assert server.stop() == 0
    assert "Traceback" not in server.log()
