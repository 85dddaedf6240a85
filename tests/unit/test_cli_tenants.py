"""``tippen-rt tenant rotate-key`` and ``tenant remove``, and the exit status of
every CLI mistake: 2, one line on stderr, nothing changed."""

from __future__ import annotations

import io
import sqlite3
import time
from pathlib import Path

import pytest

from tippen_rt.cli import main
from tippen_rt.events import validate_batch
from tippen_rt.persist import (
    NewAlert,
    SummaryRow,
    create_agent,
    create_tenant,
    get_tenant_by_name,
    insert_batch,
    list_tenants,
    open_alert,
    open_database,
    upsert_summaries,
)
from tippen_rt.persist._admin import record_video_call
from tippen_rt.tenants import Tenant

#: Tables ``tenant remove`` must empty of the tenant's rows (every one with a
#: tenant_id is checked; these must have had some to begin with).
FILLED = (
    "agents",
    "alert_rate_limits",
    "ingest_batches",
    "live_snapshots",
    "support_alerts",
    "user_activity_events",
    "user_activity_summary",
    "video_calls",
)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    conn = open_database(path)
    for name in ("acme", "beta"):
        tenant, _ = create_tenant(conn, name, ["https://app.example.com"])
        fill(conn, tenant)
    conn.close()
    monkeypatch.setenv("TIPPEN_DB_PATH", str(path))
    return path


def fill(conn: sqlite3.Connection, tenant: Tenant) -> None:
    """A user with events, a summary, an alert, a call and a snapshot; an agent."""
    now = int(time.time() * 1000)
    batch = validate_batch(
        {
            "apiKey": tenant.api_key,
            "userId": "ann",
            "subscriptionTier": "paid",
            "batchId": "b1",
            "events": [{"type": "error", "message": "boom", "timestamp": now}],
        },
        now,
    )
    insert_batch(conn, tenant.id, batch)
    summary = SummaryRow(
        tenant_id=tenant.id,
        user_id="ann",
        email=None,
        tier="paid",
        session_started_at=now,
        last_active_at=now,
        current_route="/a",
        time_on_current_page=0,
        session_events=1,
        session_errors=1,
        last_error_at=now,
        needs_support=True,
        support_reasons=("multiple_errors",),
        support_triggered_at=now,
        session_open=True,
        updated_at=now,
    )
    upsert_summaries(conn, [summary])
    alert = NewAlert(
        tenant_id=tenant.id,
        user_id="ann",
        trigger="multiple_errors",
        reason="4 errors",
        user_email=None,
        tier="paid",
        route="/a",
        time_on_page_ms=0,
        total_events=1,
        total_errors=1,
        last_active_at=now,
        opened_at=now,
    )
    open_alert(conn, alert, slack_enabled=True, rate_limit_ms=600_000, now=now)
    record_video_call(conn, tenant.id, "ann", started_by="Sam", url="https://x/y", at_ms=now)
    conn.execute(
        "INSERT INTO live_snapshots (tenant_id, user_id, state) VALUES (?, 'ann', x'00')",
        (tenant.id,),
    )
    create_agent(conn, tenant.name, "Ada")


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def dump(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table: to show that nothing changed."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}"), key=repr) for t in tables}
    finally:
        conn.close()


def rows_of(db: Path, tenant_id: int) -> dict[str, int]:
    """Rows per table with a tenant_id column that belong to ``tenant_id``."""
    conn = sqlite3.connect(db)
    try:
        out = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
            if "tenant_id" in columns:
                (n,) = conn.execute(
                    f"SELECT count(*) FROM {table} WHERE tenant_id = ?", (tenant_id,)
                ).fetchone()
                out[table] = n
        return out
    finally:
        conn.close()


def tenant(db: Path, name: str) -> Tenant:
    conn = open_database(db)
    try:
        return get_tenant_by_name(conn, name)
    finally:
        conn.close()


class Terminal(io.StringIO):
    """Standard input that is a terminal, with ``text`` typed on it."""

    def isatty(self) -> bool:
        return True


# ---- rotate-key ----------------------------------------------------------------


def test_rotate_key_gives_a_new_key_and_keeps_the_old_one_for_a_day(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, beta = tenant(db, "acme"), tenant(db, "beta")
    started = time.time() * 1000
    code, out, err = run("tenant", "rotate-key", "acme", capsys=capsys)
    after = tenant(db, "acme")
    assert (code, err) == (0, "")
    assert after.api_key != before.api_key and after.api_key.startswith("client_")
    assert after.api_key in out
    assert after.previous_api_key == before.api_key
    assert after.previous_api_key_expires_at is not None
    assert started + 24 * 3600_000 <= after.previous_api_key_expires_at
    assert after.previous_api_key_expires_at <= time.time() * 1000 + 24 * 3600_000
    old = f"client_…{before.api_key[-4:]}"
    assert f"old key:     {old} keeps working until " in out and "(24 h), then stops" in out
    assert before.api_key not in out  # the old key is only named, masked
    assert tenant(db, "beta") == beta  # nobody else's key moved

    code, out, _ = run("tenant", "show", "acme", capsys=capsys)
    assert code == 0 and f"api key:      {after.api_key}" in out
    assert f"old api key:  {old} works until " in out and "(another 23 h 59 min)" in out
    assert before.api_key not in out


def test_rotate_key_with_no_overlap_stops_the_old_key_and_a_second_rotation_ends_the_first(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tenant(db, "acme")
    assert run("tenant", "rotate-key", "acme", "--overlap-hours", "2", capsys=capsys)[0] == 0
    second = tenant(db, "acme")
    assert second.previous_api_key == first.api_key
    code, out, _ = run("tenant", "rotate-key", "acme", "--overlap-hours", "0", capsys=capsys)
    third = tenant(db, "acme")
    assert code == 0
    assert third.previous_api_key is None and third.previous_api_key_expires_at is None
    assert f"old key:     client_…{second.api_key[-4:]} stops now" in out
    assert f"the key before it, client_…{first.api_key[-4:]}, stops now" in out
    code, out, _ = run("tenant", "show", "acme", capsys=capsys)
    assert "old api key" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nobody"], "tippen-rt: no tenant named 'nobody'"),
        (["acme", "--overlap-hours", "-1"], "tippen-rt: --overlap-hours must be 0 to 8760, not -1"),
        (["acme", "--overlap-hours", "nan"], "tippen-rt: --overlap-hours must be 0 to 8760"),
        (["acme", "--overlap-hours", "9000"], "tippen-rt: --overlap-hours must be 0 to 8760"),
    ],
)
def test_rotate_key_mistakes_are_one_line_and_change_nothing(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    before = dump(db)
    code, out, err = run("tenant", "rotate-key", *argv, capsys=capsys)
    assert (code, out) == (2, "")
    assert err.startswith(message) and err.count("\n") == 1, err
    assert dump(db) == before


# ---- remove --------------------------------------------------------------------


def test_remove_deletes_the_tenant_and_every_row_of_it_and_no_one_elses(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acme, beta = tenant(db, "acme"), tenant(db, "beta")
    before = rows_of(db, acme.id)
    assert all(before[t] > 0 for t in FILLED), before
    beta_before = rows_of(db, beta.id)
    code, out, err = run("tenant", "remove", "acme", "--yes", capsys=capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        "removed tenant 'acme' and its data (1 events, 1 users, 1 alerts, 1 video calls, 1 agents)"
    )
    assert set(rows_of(db, acme.id).values()) == {0}
    assert rows_of(db, beta.id) == beta_before
    assert [t.name for t in _list(db)] == ["beta"]
    # The id is never given again: nothing kept under it can come back as another's.
    code, _, _ = run("tenant", "add", "acme", capsys=capsys)
    assert code == 0 and tenant(db, "acme").id not in (acme.id, beta.id)
    code, _, err = run("tenant", "remove", "nobody", "--yes", capsys=capsys)
    assert (code, err) == (2, "tippen-rt: no tenant named 'nobody'\n")


def _list(db: Path) -> list[Tenant]:
    conn = open_database(db)
    try:
        return list_tenants(conn)
    finally:
        conn.close()


def test_remove_asks_on_a_terminal_and_refuses_without_one(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dump(db)
    monkeypatch.setattr("sys.stdin", io.StringIO("acme\n"))  # a pipe, not a terminal
    code, out, err = run("tenant", "remove", "acme", capsys=capsys)
    assert (code, out) == (2, "")
    assert err == (
        "tippen-rt: removing 'acme' deletes all its data; confirm on a terminal, or add --yes\n"
    )
    monkeypatch.setattr("sys.stdin", Terminal("acm\n"))  # a typo
    code, out, err = run("tenant", "remove", "acme", capsys=capsys)
    assert (code, out) == (2, "")
    assert "This deletes tenant 'acme' and all its data (1 events, 1 users" in err
    confirm = "Type the tenant's name to confirm: "
    assert err.endswith(f"{confirm}tippen-rt: not confirmed; nothing was removed\n")
    monkeypatch.setattr("sys.stdin", Terminal(""))  # Ctrl+D
    assert run("tenant", "remove", "acme", capsys=capsys)[0] == 2
    assert dump(db) == before
    monkeypatch.setattr("sys.stdin", Terminal("acme\n"))
    code, out, _ = run("tenant", "remove", "acme", capsys=capsys)
    assert code == 0 and out.startswith("removed tenant 'acme'")
    assert [t.name for t in _list(db)] == ["beta"]


# ---- the exit status of mistakes ---------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tenant", "add", "acme"], "tippen-rt: a tenant named 'acme' already exists"),
        (["tenant", "add", "x", "--origin", "app.example.com/x"], "is not an origin"),
        (["tenant", "show", "nobody"], "tippen-rt: no tenant named 'nobody'"),
        (["tenant", "set", "nobody", "--add-origin", "https://b.example"], "no tenant named"),
        (["tenant", "rotate-admin-token", "nobody"], "tippen-rt: no tenant named 'nobody'"),
        (["agent", "add", "nobody", "Ada"], "tippen-rt: no tenant named 'nobody'"),
        (["agent", "add", "acme", "Ada"], "tippen-rt: "),
        (["agent", "add", "acme", "Bo", "--email", "not-an-address"], "is not an email address"),
        (["agent", "list", "nobody"], "tippen-rt: no tenant named 'nobody'"),
        (["agent", "remove", "acme", "Nobody"], "tippen-rt: "),
        (["agent", "remove", "nobody", "Ada"], "tippen-rt: no tenant named 'nobody'"),
        (["slack", "test", "--tenant", "nobody"], "tippen-rt: no tenant named 'nobody'"),
    ],
)
def test_a_mistake_exits_2_with_one_line_and_changes_nothing(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    before = dump(db)
    code, out, err = run(*argv, capsys=capsys)
    assert (code, out) == (2, ""), err
    assert err.startswith("tippen-rt: ") and message in err and err.count("\n") == 1, err
    assert dump(db) == before
