"""Upgrades and downgrades: an older database is migrated at start; one that a
newer tippen-rt has migrated is refused, in one line, before anything changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tippen_rt.persist import MIGRATIONS, connect
from tippen_rt.persist._schema import _statements

from ..support.client import Client
from ..support.server import running_server
from .test_cli_and_process import add_tenant, cli


def _user_version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _as_if_newer(db: Path) -> int:
    """Make ``db`` look migrated by a tippen-rt with one more migration."""
    newer = len(MIGRATIONS) + 1
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.close()
    return newer


def test_a_database_from_a_newer_version_is_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "tippen.db"
    add_tenant(db, "acme")
    newer = _as_if_newer(db)
    before = db.read_bytes()
    for args in (["serve", "--port", "0"], ["tenant", "list"], ["agent", "list", "acme"]):
        done = cli(*args, db=db)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert f"schema version {newer}, newer than this tippen-rt knows" in done.stderr
        assert "Traceback" not in done.stderr
    assert _user_version(db) == newer
    assert db.read_bytes() == before


def test_an_older_database_is_migrated_at_start(tmp_path: Path) -> None:
    db = tmp_path / "tippen.db"
    conn = connect(db)
    for statement in _statements(MIGRATIONS[0]):  # as the first release left it
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO tenants (name, api_key, admin_token_hash, created_at)"
        " VALUES ('old', 'client_old', 'x', 0)"
    )
    conn.close()
    with running_server(db) as server:
        status, _ = Client(server.url).get("/healthz")
        assert status == 200
        assert _user_version(db) == len(MIGRATIONS)
    listed = cli("tenant", "list", db=db)
    assert listed.returncode == 0 and listed.stdout.startswith("old\tclient_old")
