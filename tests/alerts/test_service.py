"""The real ``tippen-rt serve`` process posts alerts to Slack and restarts without repeats."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tippen_rt.persist import create_tenant, open_database

from ..conftest import ORIGIN
from ..support.client import Client
from ..support.server import ServerProcess, start_server
from .slack_server import SlackStandIn

TRACK = "/api/track/user-activity"
PUBLIC = "https://tippen.example.com"


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def post_errors(server: ServerProcess, api_key: str, user: str) -> None:
    client = Client(server.url)
    try:
        now = time.time() * 1000
        status, body = client.post_json(
            TRACK,
            {
                "apiKey": api_key,
                "userId": user,
                "userEmail": f"{user}@example.com",
                "subscriptionTier": "paid",
                "events": [{"type": "route", "route": "/checkout", "timestamp": now}]
                + [{"type": "error", "message": f"boom {i}", "timestamp": now} for i in range(4)],
            },
            {"Origin": ORIGIN},
        )
    finally:
        client.close()
    assert status == 200, body


def alert_rows(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT user_id, trigger, delivery_status FROM support_alerts ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def test_the_service_alerts_slack_once_per_user_across_a_restart(
    tmp_path: Path, slack: SlackStandIn
) -> None:
    db = tmp_path / "t.db"
    conn = open_database(db)
    tenant, _ = create_tenant(conn, "acme", [ORIGIN])
    conn.close()
    env = {
        "TIPPEN_SLACK_WEBHOOK_URL": slack.webhook_url,
        "TIPPEN_PUBLIC_URL": PUBLIC,
        "TIPPEN_SNAPSHOT_INTERVAL_S": "0.2",
    }
    server = start_server(db, env=env)
    try:
        post_errors(server, tenant.api_key, "ann")
        wait_for(lambda: len(slack.posts) == 1, "the Slack message")
        wait_for(lambda: alert_rows(db) == [("ann", "multiple_errors", "sent")], "sent")
        time.sleep(0.5)  # a snapshot round records the alert in the actor's state
        assert server.stop() == 0
    finally:
        server.kill()
    text = str(slack.posts[0]["text"])
    assert text.startswith("User needs support: ann@example.com (paid) on /checkout")
    assert f"{PUBLIC}/user-activity/ann" in text

    again = start_server(db, env=env)
    try:
        post_errors(again, tenant.api_key, "ann")  # more errors: same episode, or held back
        post_errors(again, tenant.api_key, "bob")
        wait_for(lambda: len(slack.posts) == 2, "bob's message")
        assert again.stop() == 0
    finally:
        again.kill()
    assert "bob@example.com" in str(slack.posts[1]["text"])
    assert [r for r in alert_rows(db) if r[0] == "ann" and r[2] == "sent"] == [
        ("ann", "multiple_errors", "sent")
    ]
