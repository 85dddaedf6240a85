"""The command line and the process lifecycle, as a user runs them."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tippen_rt.persist import database_lock
from tippen_rt.tenants import hash_admin_token

from ..conftest import ORIGIN
from ..support.client import Client
from ..support.server import running_server


def cli(
    *args: str, db: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tippen_rt"]
    if db is not None:
        cmd += ["--db", str(db)]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def add_tenant(
    db: Path, name: str = "acme", *origins: str, server_sender: bool = False
) -> dict[str, str]:
    """``tenant add``; ``server_sender``: the test posts events as a server does,
    without an Origin header (``tenant set --require-origin off``)."""
    args = ["tenant", "add", name, "--json"]
    for origin in origins:
        args += ["--origin", origin]
    result = cli(*args, db=db)
    assert result.returncode == 0, result.stderr
    created: dict[str, str] = orjson.loads(result.stdout)
    if server_sender:
        done = cli("tenant", "set", name, "--require-origin", "off", db=db)
        assert done.returncode == 0, done.stderr
    return created


def test_tenant_add_prints_keys_and_stores_only_a_hash(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    created = add_tenant(db, "acme", "https://app.example.com")
    assert created["name"] == "acme"
    assert created["api_key"].startswith("client_") and len(created["api_key"]) > 30
    assert created["admin_token"].startswith("admin_")
    row = (
        sqlite3.connect(db)
        .execute("SELECT api_key, admin_token_hash, origins FROM tenants")
        .fetchone()
    )
    assert row[0] == created["api_key"]
    assert row[1] == hash_admin_token(created["admin_token"])
    assert created["admin_token"] not in row[1]
    assert orjson.loads(row[2]) == ["https://app.example.com"]
    second = add_tenant(db, "beta")
    assert second["api_key"] != created["api_key"]


def test_tenant_list_and_duplicate_names(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    created = add_tenant(db, "acme")
    listed = cli("tenant", "list", "--json", db=db)
    assert orjson.loads(listed.stdout) == [
        {"name": "acme", "api_key": created["api_key"], "origins": []}
    ]
    again = cli("tenant", "add", "acme", db=db)
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_the_database_comes_from_the_environment(tmp_path: Path) -> None:
    db = tmp_path / "from-env.db"
    result = cli("tenant", "add", "acme", env={"TIPPEN_DB_PATH": str(db)})
    assert result.returncode == 0
    assert db.exists()


def test_bad_origin_and_bad_setting_are_clear_errors(tmp_path: Path) -> None:
    bad_origin = cli("tenant", "add", "x", "--origin", "app.example.com/path", db=tmp_path / "a.db")
    assert bad_origin.returncode == 2 and "origin" in bad_origin.stderr
    bad_env = cli("serve", env={"TIPPEN_PORT": "eighty"}, db=tmp_path / "a.db")
    assert bad_env.returncode == 2 and "TIPPEN_PORT" in bad_env.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_service_cleanly(tmp_path: Path, sig: int) -> None:
    db = tmp_path / "t.db"
    created = add_tenant(db, server_sender=True)
    with running_server(db) as server:
        client = Client(server.url)
        status, body = client.post_json(
            "/api/track/user-activity",
            {
                "apiKey": created["api_key"],
                "userId": "u",
                "subscriptionTier": "paid",
                "events": [{"type": "heartbeat", "timestamp": time.time() * 1000}],
            },
        )
        assert (status, body["stored"]) == (200, 1), body
        client.close()
        assert server.stop(sig) == 0, server.log()
        assert "tippen-rt stopped" in server.log()
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "WAL was not checkpointed"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM user_activity_events").fetchone()[0] == 1


def test_db_is_taken_before_or_after_the_command(tmp_path: Path) -> None:
    before, after = tmp_path / "before.db", tmp_path / "after.db"
    assert cli("tenant", "add", "acme", db=before).returncode == 0
    assert cli("tenant", "add", "beta", "--db", str(after)).returncode == 0
    assert cli("tenant", "list", "--db", str(before)).stdout.startswith("acme\t")
    assert cli("tenant", "list", db=after).stdout.startswith("beta\t")
    # The one after the command wins, as a user reads it.
    assert cli("tenant", "list", "--db", str(after), db=before).stdout.startswith("beta\t")


def test_a_second_serve_on_the_same_database_refuses_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    add_tenant(db)
    with running_server(db) as server:
        second = cli("serve", "--port", "0", db=db)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert "already served by process" in lines[0] and str(server.proc.pid) in lines[0]
        assert Client(server.url).get("/healthz")[0] == 200  # the first one is unharmed
    # Once the first is gone, the lock is free again, even after kill -9.
    with running_server(db) as server:
        server.proc.kill()
        server.proc.wait(timeout=10)
    with running_server(db):
        pass


def test_a_locked_database_is_not_even_opened(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    with database_lock(db):
        refused = cli("serve", "--port", "0", db=db)
    assert refused.returncode == 2 and "already served" in refused.stderr
    assert not db.exists()  # no file created, no migration run


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    add_tenant(db)
    with running_server(db) as server:
        other = cli("serve", "--port", str(server.port), db=tmp_path / "other.db")
    assert other.returncode == 2
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{server.port}" in lines[0], other.stderr


def test_tenant_set_changes_the_running_service(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    api_key = add_tenant(db, "acme", ORIGIN)["api_key"]

    def send() -> tuple[int, object]:
        client = Client(server.url)
        try:
            return client.post_json(
                "/api/track/user-activity",
                {
                    "apiKey": api_key,
                    "userId": "ann",
                    "subscriptionTier": "paid",
                    "events": [{"type": "heartbeat", "timestamp": time.time() * 1000}],
                },
                {"Origin": ORIGIN},
            )
        finally:
            client.close()

    with running_server(db) as server:
        assert send()[0] == 200
        assert cli("tenant", "set", "acme", "--identity", "required", db=db).returncode == 0
        deadline = time.monotonic() + 20  # the service reloads tenants every few seconds
        while (status := send())[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status[0] == 401, status
        assert status[1]["error"]["code"] == "user_hash_required"  # type: ignore[index]
