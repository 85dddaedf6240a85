"""``support_alerts`` and ``alert_rate_limits``: the plain functions of a connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tippen_rt.persist import (
    NewAlert,
    acknowledge_alert,
    count_alerts,
    create_tenant,
    delete_user_alerts,
    get_alert,
    last_alert_sent_at,
    list_alerts,
    mark_failed,
    mark_sent,
    open_alert,
    open_database,
    resolve_alerts,
    undelivered_alert_ids,
)

MIN = 60_000


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(tmp_path / "alerts.db")
    create_tenant(connection, "acme")
    create_tenant(connection, "other")
    yield connection
    connection.close()


def new(
    user: str = "ann", trigger: str = "stuck_on_page", at: int = 0, tenant: int = 1
) -> NewAlert:
    return NewAlert(
        tenant_id=tenant,
        user_id=user,
        trigger=trigger,
        reason="why",
        user_email=f"{user}@example.com",
        tier="paid",
        route="/x",
        time_on_page_ms=1000,
        total_events=5,
        total_errors=0,
        last_active_at=at,
        opened_at=at,
    )


def test_the_rate_limit_holds_back_alerts_and_counts_them(conn: sqlite3.Connection) -> None:
    kw = {"slack_enabled": True, "rate_limit_ms": 10 * MIN}
    first = open_alert(conn, new(at=0), now=0, **kw)
    assert first.alert.delivery_status == "pending"
    assert last_alert_sent_at(conn, 1, "ann") == 0
    held = open_alert(conn, new(trigger="low_activity", at=9 * MIN), now=9 * MIN, **kw)
    assert held.alert.delivery_status == "suppressed" and held.alert.suppressed
    assert held.covering is not None and held.covering.id == first.alert.id
    assert held.covering.suppressed_count == 1
    # Another user and another tenant have their own limits.
    assert open_alert(conn, new("bob", at=MIN), now=MIN, **kw).alert.delivery_status == "pending"
    other = open_alert(conn, new(tenant=2, at=MIN), now=MIN, **kw)
    assert other.alert.delivery_status == "pending"
    again = open_alert(conn, new(trigger="multiple_errors", at=10 * MIN), now=10 * MIN, **kw)
    assert again.alert.delivery_status == "pending"
    assert last_alert_sent_at(conn, 1, "ann") == 10 * MIN


def test_a_later_send_known_to_the_actor_counts(conn: sqlite3.Connection) -> None:
    opened = open_alert(
        conn, new(at=5 * MIN), slack_enabled=True, rate_limit_ms=10 * MIN, last_sent_hint=0, now=0
    )
    assert opened.alert.delivery_status == "suppressed"
    assert opened.covering is None


def test_without_slack_alerts_are_disabled_and_take_no_slot(conn: sqlite3.Connection) -> None:
    opened = open_alert(conn, new(), slack_enabled=False, rate_limit_ms=10 * MIN, now=0)
    assert opened.alert.delivery_status == "disabled"
    assert last_alert_sent_at(conn, 1, "ann") is None
    assert undelivered_alert_ids(conn, limit=10) == []


def test_lifecycle_resolve_acknowledge_and_listing(conn: sqlite3.Connection) -> None:
    kw = {"slack_enabled": True, "rate_limit_ms": 0}
    a = open_alert(conn, new(at=1), now=1, **kw).alert
    b = open_alert(conn, new(trigger="multiple_errors", at=2), now=2, **kw).alert
    c = open_alert(conn, new("bob", at=3), now=3, **kw).alert
    assert [x.status for x in (a, b, c)] == ["open"] * 3
    assert count_alerts(conn, 1) == {"open": 3, "acknowledged": 0}

    [resolved] = resolve_alerts(conn, 1, "ann", "stuck_on_page", at=10, now=11)
    assert (resolved.id, resolved.status, resolved.resolved_at) == (a.id, "resolved", 10)
    assert resolved.resolution == "recovered" and resolved.revision == 1
    assert resolve_alerts(conn, 1, "ann", "stuck_on_page", at=12, now=12) == []

    acked = acknowledge_alert(conn, 1, c.id, "alice", now=20)
    assert acked is not None and [x.id for x in acked] == [c.id]
    assert acked[0].acknowledged_by == "alice" and acked[0].status == "acknowledged"
    # A second acknowledgement keeps the first.
    again = acknowledge_alert(conn, 1, c.id, "bob", now=30)
    assert again is not None and again[0].acknowledged_by == "alice"
    assert acknowledge_alert(conn, 2, c.id, "eve", now=30) is None

    def ids(**kw: object) -> list[int]:
        return [x.id for x in list_alerts(conn, 1, **kw)]  # type: ignore[arg-type]

    assert ids() == [c.id, b.id, a.id]
    assert ids(status="open") == [b.id]
    assert ids(status="acknowledged") == [c.id]
    assert ids(status="resolved") == [a.id]
    assert ids(user_id="ann") == [b.id, a.id]
    assert ids(limit=2) == [c.id, b.id]
    assert ids(limit=2, before_id=b.id) == [a.id]
    assert list_alerts(conn, 2) == []
    assert count_alerts(conn, 1) == {"open": 1, "acknowledged": 1}
    with pytest.raises(ValueError):
        list_alerts(conn, 1, status="closed")  # type: ignore[arg-type]
    fetched = get_alert(conn, 1, b.id)
    assert fetched == b
    assert get_alert(conn, 2, b.id) is None
    assert fetched.to_mapping()["status"] == "open"


def test_acknowledging_one_alert_acknowledges_the_users_other_open_ones(
    conn: sqlite3.Connection,
) -> None:
    kw = {"slack_enabled": True, "rate_limit_ms": 0}
    a = open_alert(conn, new(at=1), now=1, **kw).alert
    b = open_alert(conn, new(trigger="multiple_errors", at=2), now=2, **kw).alert
    bob = open_alert(conn, new("bob", at=3), now=3, **kw).alert
    acked = acknowledge_alert(conn, 1, b.id, "alice", now=5)
    assert acked is not None and [x.id for x in acked] == [b.id, a.id]
    assert get_alert(conn, 1, bob.id) == bob


def test_delivery_bookkeeping(conn: sqlite3.Connection) -> None:
    kw = {"slack_enabled": True, "rate_limit_ms": 10 * MIN}
    a = open_alert(conn, new(at=0), now=0, **kw).alert
    b = open_alert(conn, new("bob", at=0), now=0, **kw).alert
    assert undelivered_alert_ids(conn, limit=10) == [a.id, b.id]

    # Posted in bot mode, then resolved: the message needs an update.
    sent = mark_sent(conn, a.id, channel="C1", ts="1.2", revision=a.revision, now=1)
    assert sent is not None and (sent.delivery_status, sent.attempts) == ("sent", 1)
    assert not sent.slack_needs_update
    [resolved] = resolve_alerts(conn, 1, "ann", "stuck_on_page", at=2, now=2)
    assert resolved.slack_needs_update
    assert undelivered_alert_ids(conn, limit=10) == [a.id, b.id]

    # Bob's never went out: failed, and his rate-limit slot is free again.
    failed = mark_failed(conn, b.id, "HTTP 500", counted=True, now=3)
    assert failed is not None and (failed.delivery_status, failed.last_error) == (
        "failed",
        "HTTP 500",
    )
    assert last_alert_sent_at(conn, 1, "bob") is None
    assert undelivered_alert_ids(conn, limit=10) == [a.id]


def test_a_post_of_an_older_revision_still_needs_an_update(conn: sqlite3.Connection) -> None:
    a = open_alert(conn, new(), slack_enabled=True, rate_limit_ms=0, now=0).alert
    resolve_alerts(conn, 1, "ann", "stuck_on_page", at=1, now=1)  # while the post was in flight
    sent = mark_sent(conn, a.id, channel="C1", ts="1.2", revision=a.revision, now=2)
    assert sent is not None and sent.slack_needs_update
    # A webhook message can't be updated, so it never needs one.
    b = open_alert(conn, new("bob"), slack_enabled=True, rate_limit_ms=0, now=0).alert
    resolve_alerts(conn, 1, "bob", "stuck_on_page", at=1, now=1)
    hook = mark_sent(conn, b.id, channel=None, ts=None, revision=b.revision, now=2)
    assert hook is not None and not hook.slack_needs_update


def test_erasing_a_user_removes_alerts_and_rate_limit(conn: sqlite3.Connection) -> None:
    kw = {"slack_enabled": True, "rate_limit_ms": 10 * MIN}
    open_alert(conn, new(at=0), now=0, **kw)
    open_alert(conn, new(trigger="low_activity", at=1), now=1, **kw)
    open_alert(conn, new("bob"), now=0, **kw)
    assert delete_user_alerts(conn, 1, "ann") == 2
    assert list_alerts(conn, 1, user_id="ann") == []
    assert last_alert_sent_at(conn, 1, "ann") is None
    assert len(list_alerts(conn, 1)) == 1


def test_the_open_alerts_query_uses_an_index(conn: sqlite3.Connection) -> None:
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM support_alerts WHERE tenant_id = 1"
        " AND resolved_at IS NULL AND acknowledged_at IS NULL ORDER BY id DESC LIMIT 50"
    ).fetchall()
    assert "idx_alerts_tenant_unresolved" in str(plan)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM support_alerts WHERE tenant_id = 1"
        " AND user_id = 'ann' ORDER BY id DESC LIMIT 50"
    ).fetchall()
    assert "idx_alerts_user" in str(plan)
