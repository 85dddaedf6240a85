"""GET /metrics, JSON logs and the access log, from the real service process."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import ORIGIN
from ..support.client import Client
from ..support.server import ServerProcess, running_server
from .test_cli_and_process import add_tenant

TOKEN = "op-7f3a9c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def post(server: ServerProcess, api_key: str, user: str, events: list[dict[str, Any]]) -> int:
    now = int(time.time() * 1000)
    client = Client(server.url)
    try:
        status, _ = client.post_json(
            "/api/track/user-activity",
            {
                "apiKey": api_key,
                "userId": user,
                "subscriptionTier": "paid",
                "events": [{"timestamp": now, **e} for e in events],
            },
            {"Origin": ORIGIN},
        )
    finally:
        client.close()
    return status


def scrape(server: ServerProcess, headers: dict[str, str] | None = AUTH) -> tuple[int, str]:
    client = Client(server.url)
    try:
        client._conn.request("GET", "/metrics", headers=headers or {})
        response = client._conn.getresponse()
        body = response.read().decode()
        if response.status == 200:
            assert response.getheader("Content-Type", "").startswith("text/plain; version=0.0.4")
        return response.status, body
    finally:
        client.close()


def samples(server: ServerProcess) -> Samples:
    """Every sample of a scrape, parsed by prometheus-client's own parser."""
    status, text = scrape(server)
    assert status == 200, text
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wait_for(check: Callable[[], bool], what: str, bound_s: float = 10.0) -> None:
    deadline = time.monotonic() + bound_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {bound_s} s: {what}")
        time.sleep(0.1)


def test_metrics_need_the_operator_token(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with running_server(db) as server:  # no token set: never
        status, body = scrape(server, AUTH)
        assert status == 401 and "operator_token_required" in body
    with running_server(db, env={"TIPPEN_OPERATOR_TOKEN": TOKEN}) as server:
        assert scrape(server, None)[0] == 401
        assert scrape(server, {"Authorization": "Bearer wrong"})[0] == 401
        assert scrape(server, {"Authorization": f"Basic {TOKEN}"})[0] == 401
        status, text = scrape(server)
        assert status == 200 and "tippen_store_commits_total" in text


def test_metrics_count_what_the_service_did(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    tenants = [add_tenant(db, name, ORIGIN) for name in ("acme", "beta", "gamma")]
    env = {"TIPPEN_OPERATOR_TOKEN": TOKEN, "TIPPEN_METRICS_TENANTS": "1"}
    with running_server(db, env=env) as server:
        acme, beta, gamma = (t["api_key"] for t in tenants)
        route = [{"type": "route", "route": "/home"}, {"type": "click", "element": "a#x"}]
        for user in ("ann", "bob"):
            assert post(server, acme, user, route) == 200
        assert post(server, beta, "cy", route) == 200
        assert post(server, gamma, "di", route[:1]) == 200
        assert post(server, acme, "ann", [{"type": "nope"}]) == 400
        # Four errors within five minutes: "multiple errors" fires at once.
        errors = [{"type": "error", "message": f"boom {i}"} for i in range(4)]
        assert post(server, gamma, "di", errors) == 200

        def fired() -> bool:
            got = samples(server)
            key = ("tippen_triggers_fired_total", (("trigger", "multiple_errors"),))
            pauses = sum(
                v for (name, _), v in got.items() if name == "tippen_gc_pause_seconds_count"
            )
            # The registry collects the young generation at each snapshot round (2 s);
            # the loop-lag probe takes a sample every 0.5 s.
            lag = got[("tippen_event_loop_lag_seconds_count", ())]
            alerted = got[("tippen_alerts_recorded_total", ())] == 1
            return got.get(key) == 1 and alerted and pauses > 0 and lag > 0

        wait_for(fired, "the trigger and its alert counted, a GC pause and the loop lag timed")
        got = samples(server)

    assert got[("tippen_ingest_requests_total", (("status", "200"),))] == 5
    assert got[("tippen_ingest_requests_total", (("status", "400"),))] == 1
    assert got[("tippen_events_stored_total", ())] == 2 + 2 + 2 + 1 + 4
    assert got[("tippen_store_commits_total", ())] >= 1
    assert got[("tippen_store_commit_seconds_count", ())] >= 5
    assert got[("tippen_store_queue_capacity", ())] == 2048
    # One tenant by name (acme, with the most live users); beta and gamma are "other".
    live = {labels: n for (name, labels), n in got.items() if name == "tippen_live_users"}
    by_tenant: dict[str, float] = {}
    for labels, n in live.items():
        by_tenant[dict(labels)["tenant"]] = by_tenant.get(dict(labels)["tenant"], 0) + n
    assert by_tenant == {"acme": 2, "other": 2}
    assert {dict(labels)["presence"] for labels in live} <= {
        "active",
        "idle",
        "hidden",
        "away",
    }
    for trigger in ("stuck_on_page", "low_activity", "long_inactivity"):
        assert got[("tippen_triggers_fired_total", (("trigger", trigger),))] == 0
    # No Slack target anywhere: recorded, not posted.
    assert got[("tippen_alert_deliveries_total", (("state", "posted"),))] == 0
    assert got[("tippen_hub_subscribers", ())] == 0
    assert got[("tippen_hub_resyncs_total", ())] == 0
    print({k: v for k, v in got.items() if "loop" in k[0]})
    assert got[("tippen_event_loop_lag_seconds_count", ())] >= 1
    assert sum(v for (name, _), v in got.items() if name == "tippen_gc_pause_seconds_count") >= 1
    assert got[("process_resident_memory_bytes", ())] > 0


def test_json_logs_and_the_access_log_keep_secrets_out(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    created = add_tenant(db, "acme", ORIGIN)
    env = {
        "TIPPEN_LOG_FORMAT": "json",
        "TIPPEN_ACCESS_LOG": "true",
        "TIPPEN_OPERATOR_TOKEN": TOKEN,
    }
    secret_query = "q-secret-5e1d"
    with running_server(db, env=env) as server:
        assert post(server, created["api_key"], "ann", [{"type": "route", "route": "/p"}]) == 200
        client = Client(server.url)
        status, _, headers = client.post_json_full("/login", {"token": created["admin_token"]})
        assert status == 200
        cookie = headers["set-cookie"].split(";", 1)[0]
        assert client.get(f"/api/admin/users?q={secret_query}", {"Cookie": cookie})[0] == 200
        assert client.get("/no/such/path")[0] == 404
        client.close()
        assert scrape(server)[0] == 200
        assert server.stop() == 0
    lines = server.log().splitlines()
    records = [orjson.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    access = [r for r in records if r["logger"] == "tippen_rt.access"]
    seen = {(r["method"], r["path"], r["status"]) for r in access}
    assert {
        ("POST", "/api/track/user-activity", 200),
        ("POST", "/login", 200),
        ("GET", "/api/admin/users", 200),
        ("GET", "/no/such/path", 404),
        ("GET", "/metrics", 200),
    } <= seen
    for r in access:
        assert r["client"] == "127.0.0.1" and r["bytes"] >= 0 and r["duration_ms"] >= 0
    assert any(r["message"] == "tippen-rt listening on " + server.url for r in records)
    everything = "\n".join(lines)
    session = cookie.split("=", 1)[1]
    for secret in (created["api_key"], created["admin_token"], TOKEN, session, secret_query):
        assert secret not in everything
