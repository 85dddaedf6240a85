"""Every acknowledged event survives ``kill -9`` of the server."""

from __future__ import annotations

import http.client
import sqlite3
import threading
import time
from pathlib import Path

from ..support.client import Client
from ..support.server import running_server
from .test_cli_and_process import add_tenant

WRITERS = 8
BATCHES_PER_WRITER = 60
EVENTS_PER_BATCH = 20


def test_acknowledged_events_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    api_key = add_tenant(db, server_sender=True)["api_key"]
    acked: list[str] = []  # event markers the server acknowledged
    lock = threading.Lock()

    with running_server(db) as server:

        def writer(n: int) -> None:
            client = Client(server.url)
            try:
                for b in range(BATCHES_PER_WRITER):
                    ts = time.time() * 1000
                    markers = [f"w{n}-b{b}-e{e}" for e in range(EVENTS_PER_BATCH)]
                    status, body = client.post_json(
                        "/api/track/user-activity",
                        {
                            "apiKey": api_key,
                            "userId": f"user-{n}",
                            "subscriptionTier": "paid",
                            "events": [
                                {"type": "click", "element": m, "timestamp": ts} for m in markers
                            ],
                        },
                    )
                    assert status == 200 and body["stored"] == EVENTS_PER_BATCH
                    with lock:
                        acked.extend(markers)
            finally:
                client.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        # Straight after the last acknowledgement: no graceful anything.
        server.kill()

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {row[0] for row in conn.execute("SELECT element FROM user_activity_events")}
    assert len(acked) == WRITERS * BATCHES_PER_WRITER * EVENTS_PER_BATCH
    missing = [m for m in acked if m not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"


def test_kill_9_mid_load_loses_only_unacknowledged_batches(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    api_key = add_tenant(db, server_sender=True)["api_key"]
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    with running_server(db) as server:

        def writer(n: int) -> None:
            client = Client(server.url, timeout_s=5)
            b = 0
            try:
                while not stop.is_set():
                    ts = time.time() * 1000
                    markers = [f"w{n}-b{b}-e{e}" for e in range(EVENTS_PER_BATCH)]
                    status, _ = client.post_json(
                        "/api/track/user-activity",
                        {
                            "apiKey": api_key,
                            "userId": f"user-{n}",
                            "subscriptionTier": "paid",
                            "events": [
                                {"type": "click", "element": m, "timestamp": ts} for m in markers
                            ],
                        },
                    )
                    if status == 200:
                        with lock:
                            acked.extend(markers)
                    b += 1
            except (OSError, http.client.HTTPException):
                pass  # the server died under us: expected
            finally:
                client.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 200 * EVENTS_PER_BATCH and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # while requests are in flight
        stop.set()
        for t in threads:
            t.join(timeout=30)

    assert len(acked) >= 200 * EVENTS_PER_BATCH
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {row[0] for row in conn.execute("SELECT element FROM user_activity_events")}
    missing = [m for m in acked if m not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost"
    # Batches are all-or-nothing: every stored batch is complete.
    counts = conn.execute(
        "SELECT count(*) FROM user_activity_events GROUP BY substr(element, 1,"
        " instr(element, '-e') - 1)"
    ).fetchall()
    assert {c for (c,) in counts} == {EVENTS_PER_BATCH}
