"""``tippen-rt backup PATH`` while the service takes writes: a consistent copy."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from ..conftest import ORIGIN
from ..support.client import Client
from ..support.server import running_server
from .test_cli_and_process import add_tenant, cli

EVENTS_PER_BATCH = 5


def _write_batches(url: str, api_key: str, stop: threading.Event, acked: list[int]) -> None:
    """Post batches of EVENTS_PER_BATCH events until ``stop``; count the acknowledged ones."""
    client = Client(url)
    try:
        n = 0
        while not stop.is_set() and n < 20_000:  # bounded, whatever happens
            now = int(time.time() * 1000)
            batch = {
                "apiKey": api_key,
                "userId": f"u{n % 50}",
                "subscriptionTier": "paid",
                "batchId": f"b{n}",
                "events": [
                    {"type": "click", "element": f"#b{i}", "timestamp": now}
                    for i in range(EVENTS_PER_BATCH)
                ],
            }
            status, body = client.post_json("/api/track/user-activity", batch, {"Origin": ORIGIN})
            assert status == 200, body
            acked.append(n)
            n += 1
    finally:
        client.close()


def _events(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM user_activity_events").fetchone()[0])
    finally:
        conn.close()


def test_a_backup_taken_under_load_is_consistent_and_usable(tmp_path: Path) -> None:
    db = tmp_path / "tippen.db"
    created = add_tenant(db, "acme", ORIGIN)
    copy = tmp_path / "backups" / "tippen-1.db"
    copy.parent.mkdir()
    with running_server(db) as server:
        stop, acked = threading.Event(), []
        writer = threading.Thread(
            target=_write_batches, args=(server.url, created["api_key"], stop, acked)
        )
        writer.start()
        try:
            deadline = time.monotonic() + 20
            while len(acked) < 50:  # the service is busy writing
                assert writer.is_alive() and time.monotonic() < deadline
                time.sleep(0.01)
            before = len(acked)
            done = cli("backup", str(copy), db=db)
            after = len(acked)
            assert done.returncode == 0, done.stderr
            time.sleep(0.2)  # and writes go on after it
        finally:
            stop.set()
            writer.join(timeout=30)
        assert len(acked) > after > before  # ingest went on during and after the copy
        status, _ = Client(server.url).get("/healthz")
        assert status == 200
    assert "integrity ok" in done.stdout and "schema version" in done.stdout
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
        # Each batch has one event per element #b0..#b4: equal counts, no half batch.
        per_element = conn.execute(
            "SELECT count(*) FROM user_activity_events GROUP BY element"
        ).fetchall()
        stored = conn.execute("SELECT count(*) FROM user_activity_events").fetchone()[0]
    finally:
        conn.close()
    assert len(per_element) == EVENTS_PER_BATCH and len(set(per_element)) == 1
    # Every batch acknowledged before the backup began is in it.
    assert before * EVENTS_PER_BATCH <= stored <= after * EVENTS_PER_BATCH
    assert _events(db) == len(acked) * EVENTS_PER_BATCH
    assert not list(copy.parent.glob(".*partial*"))
    # The copy is a database the service runs on.
    listed = cli("tenant", "list", db=copy)
    assert listed.returncode == 0 and listed.stdout.startswith("acme\t")
    with running_server(copy) as restored:
        status, _ = Client(restored.url).get("/healthz")
        assert status == 200


def test_backup_refuses_to_overwrite_or_invent_a_database(tmp_path: Path) -> None:
    db = tmp_path / "tippen.db"
    add_tenant(db, "acme")
    taken = tmp_path / "taken.db"
    taken.write_bytes(b"keep me")
    done = cli("backup", str(taken), db=db)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "exists" in done.stderr
    assert taken.read_bytes() == b"keep me"
    missing = tmp_path / "nothing-here.db"
    done = cli("backup", str(tmp_path / "b.db"), db=missing)
    assert done.returncode == 2 and "there is no database" in done.stderr
    assert not missing.exists() and not (tmp_path / "b.db").exists()
