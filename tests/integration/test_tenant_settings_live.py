"""``tippen-rt tenant set`` against a running service: a trigger turned off, and
``--require-origin off``, reach it (and users already live) within the reload,
and the dashboard's ``GET /api/admin/settings`` shows them."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from tippen_rt.persist import open_database, read_served_settings

from ..conftest import ORIGIN
from ..support.client import Client
from ..support.server import ServerProcess, running_server
from .test_cli_and_process import add_tenant, cli

#: The service reads the tenants again every 5 s; the brief promises 10 s.
RELOAD_BOUND_S = 10.0


def post(
    server: ServerProcess, api_key: str, events: list[dict[str, Any]], origin: str | None
) -> tuple[int, Any]:
    now = time.time() * 1000
    client = Client(server.url)
    try:
        return client.post_json(
            "/api/track/user-activity",
            {
                "apiKey": api_key,
                "userId": "ann",
                "subscriptionTier": "paid",
                "events": [{"timestamp": now, **e} for e in events],
            },
            {"Origin": origin} if origin else {},
        )
    finally:
        client.close()


def alerts(db: Path) -> list[tuple[str, str | None]]:
    conn = sqlite3.connect(db)
    try:
        rows: list[tuple[str, str | None]] = conn.execute(
            "SELECT trigger, resolution FROM support_alerts ORDER BY id"
        ).fetchall()
        return rows
    finally:
        conn.close()


def log_in(server: ServerProcess, admin_token: str) -> str:
    """The session cookie of an admin login (logins are rate limited: log in once)."""
    client = Client(server.url)
    try:
        status, body, headers = client.post_json_full("/login", {"token": admin_token})
    finally:
        client.close()
    assert status == 200, body
    return headers["set-cookie"].split(";", 1)[0]


def admin_get(server: ServerProcess, cookie: str, path: str) -> dict[str, Any]:
    """GET ``path`` of the admin API with the session ``cookie``."""
    client = Client(server.url)
    try:
        status, raw = client.get(path, {"Cookie": cookie})
    finally:
        client.close()
    assert status == 200, raw
    found: dict[str, Any] = orjson.loads(raw)
    return found


def live_user(server: ServerProcess, admin_token: str) -> dict[str, Any]:
    user = admin_get(server, log_in(server, admin_token), f"/api/admin/user?id={quote('ann')}")
    live: dict[str, Any] = user["live"]
    return live


def trigger_on(server: ServerProcess, cookie: str, trigger: str) -> bool:
    """Whether the dashboard's settings say ``trigger`` is on."""
    settings = admin_get(server, cookie, "/api/admin/settings")
    [found] = [t for t in settings["triggers"] if t["trigger"] == trigger]
    return bool(found["on"])


def wait_until(check: Any, bound_s: float, what: str) -> float:
    """Seconds until ``check()`` held; fail after ``bound_s``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > bound_s:
            raise AssertionError(f"not within {bound_s} s: {what}")
        time.sleep(0.1)
    return time.monotonic() - start


ERRORS = [{"type": "route", "route": "/checkout"}] + [
    {"type": "error", "message": f"boom {i}"} for i in range(4)
]


def test_a_trigger_turned_off_stops_for_a_live_user_within_the_reload(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    created = add_tenant(db, "acme", ORIGIN)
    with running_server(db) as server:
        assert post(server, created["api_key"], ERRORS, ORIGIN)[0] == 200
        wait_until(lambda: alerts(db) == [("multiple_errors", None)], 5, "the alert")
        assert live_user(server, created["admin_token"])["needsSupport"] is True

        done = cli("tenant", "set", "acme", "--trigger", "multiple_errors=off", db=db)
        assert done.returncode == 0, done.stderr
        assert "multiple_errors  off" in done.stdout
        # Nothing more from the user: the new settings alone close the episode.
        wait_until(
            lambda: alerts(db) == [("multiple_errors", "switched_off")],
            RELOAD_BOUND_S,
            "the open alert closed as switched off",
        )
        live = live_user(server, created["admin_token"])
        assert live["needsSupport"] is False and live["triggers"] == []
        # A new burst does not fire while it is off.
        assert post(server, created["api_key"], ERRORS[1:], ORIGIN)[0] == 200
        time.sleep(0.5)
        assert alerts(db) == [("multiple_errors", "switched_off")]


def test_require_origin_off_lets_a_server_post_within_the_reload(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    created = add_tenant(db, "acme", ORIGIN)
    heartbeat = [{"type": "heartbeat"}]
    with running_server(db, env={"TIPPEN_PUBLIC_URL": "https://tippen.example.com"}) as server:
        # What `tippen-rt slack test` will use, recorded for it.
        conn = open_database(db)
        try:
            assert read_served_settings(conn).public_url == "https://tippen.example.com"
        finally:
            conn.close()
        status, body = post(server, created["api_key"], heartbeat, None)
        assert (status, body["error"]["code"]) == (403, "origin_required")
        assert post(server, created["api_key"], heartbeat, ORIGIN)[0] == 200

        done = cli("tenant", "set", "acme", "--require-origin", "off", db=db)
        assert done.returncode == 0, done.stderr
        wait_until(
            lambda: post(server, created["api_key"], heartbeat, None)[0] == 200,
            RELOAD_BOUND_S,
            "a post without Origin accepted",
        )
        # Turned on again, servers are refused again.
        assert cli("tenant", "set", "acme", "--require-origin", "on", db=db).returncode == 0
        wait_until(
            lambda: post(server, created["api_key"], heartbeat, None)[0] == 403,
            RELOAD_BOUND_S,
            "a post without Origin refused",
        )


def test_the_dashboards_settings_show_a_trigger_turned_off_within_the_reload(
    tmp_path: Path,
) -> None:
    db = tmp_path / "t.db"
    created = add_tenant(db, "acme", ORIGIN)
    with running_server(db) as server:
        cookie = log_in(server, created["admin_token"])
        assert trigger_on(server, cookie, "low_activity") is True
        done = cli("tenant", "set", "acme", "--trigger", "low_activity=off", db=db)
        assert done.returncode == 0, done.stderr
        wait_until(
            lambda: not trigger_on(server, cookie, "low_activity"),
            RELOAD_BOUND_S,
            "the settings show low_activity off",
        )
        settings = admin_get(server, cookie, "/api/admin/settings")
        assert [t["on"] for t in settings["triggers"]] == [True, False, True, True]
        assert settings["tenant"] == "acme" and settings["origins"] == [ORIGIN]
