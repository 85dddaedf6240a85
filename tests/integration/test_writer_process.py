"""The real service's SQLite writer process: killed under load, it costs only the
batches it held (answered 503, never "stored"), a new one takes over, /readyz
and the log say so, and every acknowledged event is in the file."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import orjson

from ..support.client import Client
from ..support.server import ServerProcess, running_server
from .test_cli_and_process import add_tenant

OPERATOR = "op-token-for-tests"
WRITERS = 4
EVENTS_PER_BATCH = 10


def writer_pids(server: ServerProcess) -> list[int]:
    """The service's child processes (its SQLite writer)."""
    pid = server.proc.pid
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return children


def one_writer(server: ServerProcess) -> list[int]:
    """The service's children once only one is left: a killed writer stays a
    child (a zombie) until the service has reaped it, which on a loaded machine
    can take a moment."""
    deadline = time.monotonic() + 10
    while len(children := writer_pids(server)) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    return children


def readyz(server: ServerProcess) -> dict[str, object]:
    client = Client(server.url)
    try:
        status, body = client.get("/readyz", {"Authorization": f"Bearer {OPERATOR}"})
    finally:
        client.close()
    assert status in (200, 503), body
    return dict(orjson.loads(body))


def test_a_killed_writer_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    api_key = add_tenant(db, server_sender=True)["api_key"]
    acked: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    with running_server(db, env={"TIPPEN_OPERATOR_TOKEN": OPERATOR}) as server:
        (first,) = writer_pids(server)
        assert readyz(server)["checks"]["store"]["writer_ok"] is True  # type: ignore[index]

        def writer(n: int) -> None:
            client = Client(server.url)
            b = 0
            try:
                while not stop.is_set():
                    markers = [f"w{n}-b{b}-e{e}" for e in range(EVENTS_PER_BATCH)]
                    ts = time.time() * 1000
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
                    with lock:
                        statuses.append(status)
                        if status == 200:
                            assert body["stored"] == EVENTS_PER_BATCH
                            acked.extend(markers)
                    b += 1
            finally:
                client.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(statuses) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(first, signal.SIGKILL)
        killed_at = len(statuses)
        while len(statuses) < killed_at + 300 and time.monotonic() < deadline + 30:
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join(timeout=30)

        assert set(statuses) <= {200, 503}, sorted(set(statuses))
        assert 200 in statuses[killed_at:], "nothing was stored after the writer was replaced"
        (second,) = one_writer(server)
        assert second != first
        store = readyz(server)["checks"]["store"]  # type: ignore[index]
        assert store["writer_deaths"] == 1 and store["writer_starts"] == 2, store
        assert store["writer_ok"] is True
        assert f"writer process {first}" in server.log()
        server.kill()

    conn = sqlite3.connect(db)
    stored = {r[0] for r in conn.execute("SELECT element FROM user_activity_events")}
    conn.close()
    missing = [m for m in acked if m not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
