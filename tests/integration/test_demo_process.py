"""``make run`` (``tippen-rt serve --demo``) as a newcomer runs it: the real process.

Its login works the same after a restart (open dashboards stay logged in),
and its Slack messages link to the dashboard at the URL it printed, with no
``TIPPEN_PUBLIC_URL`` set.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from ..alerts.slack_server import slack_stand_in
from ..support.client import Client
from ..support.server import ServerProcess, start_server

_PRINTED = re.compile(r"^\s+(login token|dashboard|API key):\s+(\S+)", re.MULTILINE)


def printed(server: ServerProcess) -> dict[str, str]:
    """What the demo printed last: login token, dashboard, API key."""
    server.wait_for_log("API key:")
    return dict(_PRINTED.findall(server.log()))


def test_the_demo_keeps_its_login_and_links_slack_to_itself(tmp_path: Path) -> None:
    db = tmp_path / "tippen.db"
    with slack_stand_in() as slack:
        env = {"TIPPEN_SLACK_WEBHOOK_URL": slack.webhook_url, "TIPPEN_PUBLIC_URL": ""}
        server = start_server(db, "--demo", env=env)
        try:
            first = printed(server)
            assert first["dashboard"] == server.url + "/user-activity"
            assert "TIPPEN_PUBLIC_URL is not set" not in server.log()
            client = Client(server.url)
            try:
                status, cookie = _log_in(client, first["login token"])
                assert status == 200
                assert server.stop() == 0
                server = start_server(db, "--demo", env=env, port=server.port)
                again = printed(server)
                # The same login, and the session made before the restart still works.
                assert again["login token"] == first["login token"]
                assert again["API key"] == first["API key"]
            finally:
                client.close()
            client = Client(server.url)
            try:
                status, _ = client.get("/api/admin/me", headers={"Cookie": cookie})
                assert status == 200

                now = int(time.time() * 1000)
                batch = {
                    "apiKey": again["API key"],
                    "userId": "ann/42",
                    "subscriptionTier": "paid",
                    "sentAt": now,
                    "events": [
                        {"type": "route", "route": "/reports", "timestamp": now},
                        *(
                            {"type": "error", "message": f"E{i}", "timestamp": now}
                            for i in range(4)
                        ),
                    ],
                }
                status, answer = client.post_json(
                    "/api/track/user-activity", batch, headers={"Origin": server.url}
                )
                assert status == 200, answer
            finally:
                client.close()
            deadline = time.monotonic() + 20
            while not slack.posts:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
        finally:
            server.kill()
    [post] = slack.posts
    links = {
        e["text"]["text"]: e.get("url")
        for block in post["blocks"]
        if block["type"] == "actions"
        for e in block["elements"]
    }
    assert links["View User Activity"] == server.url + "/user-activity/ann%2F42"


def _log_in(client: Client, token: str) -> tuple[int, str]:
    """POST /login as JSON; (status, the session cookie as a Cookie header value)."""
    status, _, headers = client.post_json_full("/login", {"token": token, "name": "Sam"})
    cookie = headers.get("set-cookie", "").split(";", 1)[0]
    return status, cookie
