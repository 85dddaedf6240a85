"""SQLite connection set-up and versioned schema migrations.

Migrations are numbered; ``PRAGMA user_version`` records the last one applied.
Each runs in its own transaction, so a crash mid-migration leaves the previous
version intact.  Add new ones at the end; never edit one that has shipped.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    # 1: tenants, events and summaries (the seed plan's tables, per tenant)
    """
    CREATE TABLE tenants (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        api_key TEXT NOT NULL UNIQUE,
        admin_token_hash TEXT NOT NULL,
        origins TEXT NOT NULL DEFAULT '[]',
        settings TEXT NOT NULL DEFAULT '{}',
        identity_secret TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX idx_tenants_admin_token ON tenants(admin_token_hash);

    CREATE TABLE user_activity_events (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        user_id TEXT NOT NULL,
        user_email TEXT,
        subscription_tier TEXT NOT NULL,
        event_type TEXT NOT NULL,
        route TEXT,
        element TEXT,
        element_text TEXT,
        form_id TEXT,
        duration_ms INTEGER,
        error_message TEXT,
        error_source TEXT,
        error_stack TEXT,
        event_name TEXT,
        event_data TEXT,
        visibility TEXT,
        timestamp INTEGER NOT NULL,
        client_timestamp INTEGER NOT NULL,
        received_at INTEGER NOT NULL
    );
    CREATE INDEX idx_events_user_time
        ON user_activity_events(tenant_id, user_id, timestamp);
    CREATE INDEX idx_events_tenant_type_time
        ON user_activity_events(tenant_id, event_type, timestamp);
    CREATE INDEX idx_events_received
        ON user_activity_events(received_at);

    CREATE TABLE user_activity_summary (
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        user_id TEXT NOT NULL,
        user_email TEXT,
        subscription_tier TEXT NOT NULL,
        first_seen_at INTEGER NOT NULL,
        last_active_at INTEGER NOT NULL,
        current_route TEXT,
        time_on_current_page INTEGER NOT NULL DEFAULT 0,
        total_events INTEGER NOT NULL DEFAULT 0,
        total_errors INTEGER NOT NULL DEFAULT 0,
        -- the current session's share of the totals, so rewriting the
        -- summary of a session (after a restart, say) never counts twice
        session_started_at INTEGER NOT NULL,
        session_events INTEGER NOT NULL DEFAULT 0,
        session_errors INTEGER NOT NULL DEFAULT 0,
        last_error_at INTEGER,
        needs_support INTEGER NOT NULL DEFAULT 0,
        support_reasons TEXT NOT NULL DEFAULT '[]',
        support_triggered_at INTEGER,
        session_open INTEGER NOT NULL DEFAULT 1,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX idx_summary_last_active
        ON user_activity_summary(tenant_id, last_active_at);
    CREATE INDEX idx_summary_needs_support
        ON user_activity_summary(tenant_id, needs_support, support_triggered_at);

    -- Batch ids already stored, so a retried batch is not stored twice.
    CREATE TABLE ingest_batches (
        tenant_id INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        event_count INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, user_id, batch_id)
    ) WITHOUT ROWID;
    CREATE INDEX idx_ingest_batches_received ON ingest_batches(received_at);
    """,
    # 2: snapshots of live actor state (the embedded default; Redis otherwise)
    """
    CREATE TABLE live_snapshots (
        tenant_id INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        state BLOB NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    ) WITHOUT ROWID;
    """,
    # 3: admin dashboard: the secret that signs admin sessions (generated once,
    # so logins survive restarts), and the video calls admins start with users
    """
    CREATE TABLE server_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE video_calls (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        user_id TEXT NOT NULL,
        started_by TEXT NOT NULL,
        url TEXT NOT NULL,
        started_at INTEGER NOT NULL
    );
    CREATE INDEX idx_video_calls_user ON video_calls(tenant_id, user_id, id);
    """,
    # 4: support alerts with their Slack delivery, and the per-user rate limit
    """
    CREATE TABLE support_alerts (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        user_id TEXT NOT NULL,
        trigger TEXT NOT NULL,
        reason TEXT NOT NULL,
        -- what the user was doing when the trigger fired (for the message)
        user_email TEXT,
        tier TEXT NOT NULL,
        route TEXT,
        time_on_page_ms INTEGER NOT NULL DEFAULT 0,
        total_events INTEGER NOT NULL DEFAULT 0,
        total_errors INTEGER NOT NULL DEFAULT 0,
        last_active_at INTEGER NOT NULL,
        opened_at INTEGER NOT NULL,
        resolved_at INTEGER,
        resolution TEXT,
        acknowledged_at INTEGER,
        acknowledged_by TEXT,
        delivery_status TEXT NOT NULL CHECK (delivery_status IN
            ('pending', 'sent', 'suppressed', 'failed', 'disabled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        slack_channel TEXT,
        slack_ts TEXT,
        suppressed_count INTEGER NOT NULL DEFAULT 0,
        revision INTEGER NOT NULL DEFAULT 0,
        slack_needs_update INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX idx_alerts_tenant ON support_alerts(tenant_id, id);
    CREATE INDEX idx_alerts_tenant_unresolved
        ON support_alerts(tenant_id, id) WHERE resolved_at IS NULL;
    CREATE INDEX idx_alerts_user ON support_alerts(tenant_id, user_id, id);
    CREATE INDEX idx_alerts_undelivered ON support_alerts(id)
        WHERE delivery_status = 'pending' OR slack_needs_update = 1;

    -- When each user's last Slack alert went out: the rate limit, across restarts.
    CREATE TABLE alert_rate_limits (
        tenant_id INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        last_sent_at INTEGER NOT NULL,
        alert_id INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX idx_alert_rate_limits_alert ON alert_rate_limits(alert_id);
    """,
    # 5: snapshot bookkeeping: when the last snapshot round took its changes
    """
    CREATE TABLE snapshot_meta (
        name TEXT PRIMARY KEY,
        value REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 6: admin sessions ended by logout before their expiry (cookies are
    # stateless; a revoked one is refused until it would have expired anyway)
    """
    CREATE TABLE revoked_sessions (
        signature TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 7: support agents: one login each (token stored hashed), so who
    # acknowledged or called is a person, and one agent can be removed alone
    """
    CREATE TABLE agents (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        email TEXT,
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    """,
    # 8: when the service started, and until when the process before it was
    # alive: replay judges absence across a restart as the live service did
    """
    CREATE TABLE service_starts (
        started_at REAL PRIMARY KEY,
        alive_until REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 9: `tenant rotate-key` keeps the previous API key working for an overlap
    # (epoch ms), and `tenant remove` leaves the id behind so it is never given
    # again: snapshots in Redis and signed cookies that name a removed tenant's
    # id must not come back as another tenant's
    """
    ALTER TABLE tenants ADD COLUMN previous_api_key TEXT;
    ALTER TABLE tenants ADD COLUMN previous_api_key_expires_at INTEGER;
    CREATE TABLE removed_tenants (
        id INTEGER PRIMARY KEY,
        removed_at INTEGER NOT NULL
    );
    """,
    # 10: the user's display name (``userName``), so the dashboard and Slack
    # say "Ann Lee (ann@example.com)"; and since when an alert waits to be
    # posted (a trigger held back by the rate limit is posted when the message
    # that held it back fails: its retry window starts then)
    """
    ALTER TABLE user_activity_summary ADD COLUMN user_name TEXT;
    ALTER TABLE support_alerts ADD COLUMN user_name TEXT;
    ALTER TABLE support_alerts ADD COLUMN pending_since INTEGER;
    """,
    # 11: claims ("I'm on it"): who is helping the user now, and who claimed
    # the alert first and when (the time to first claim, for response times)
    """
    ALTER TABLE support_alerts ADD COLUMN claimed_by TEXT;
    ALTER TABLE support_alerts ADD COLUMN claimed_at INTEGER;
    ALTER TABLE support_alerts ADD COLUMN first_claimed_by TEXT;
    ALTER TABLE support_alerts ADD COLUMN first_claimed_at INTEGER;
    """,
    # 12: call invitations: a video call invites the user's own page (who,
    # until when, delivered, answered), and the alerts of the user say so
    # (the first call, for response times; the latest call and its answer)
    """
    ALTER TABLE video_calls ADD COLUMN agent_id INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE video_calls ADD COLUMN invite_status TEXT;
    ALTER TABLE video_calls ADD COLUMN invite_expires_at INTEGER;
    ALTER TABLE video_calls ADD COLUMN invite_delivered_at INTEGER;
    ALTER TABLE video_calls ADD COLUMN invite_answered_at INTEGER;
    CREATE INDEX idx_video_calls_pending ON video_calls(invite_status)
        WHERE invite_status = 'pending';
    ALTER TABLE support_alerts ADD COLUMN first_call_at INTEGER;
    ALTER TABLE support_alerts ADD COLUMN first_call_by TEXT;
    ALTER TABLE support_alerts ADD COLUMN call_id INTEGER;
    ALTER TABLE support_alerts ADD COLUMN call_by TEXT;
    ALTER TABLE support_alerts ADD COLUMN call_status TEXT;
    ALTER TABLE support_alerts ADD COLUMN call_updated_at INTEGER;
    """,
    # 13: response times read a tenant's alerts by when they opened
    """
    CREATE INDEX idx_alerts_tenant_opened ON support_alerts(tenant_id, opened_at);
    """,
    # 14: indexes follow the queries (tests/persist/test_query_plans.py): the
    # seed plan's (tenant_id, event_type, timestamp) served only the dashboard's
    # last-hour counts, which read the arrival index now; every ingested row
    # paid for it (0.69 -> 0.53 ms of SQLite per 50-row batch without it)
    """
    DROP INDEX IF EXISTS idx_events_tenant_type_time;
    """,
)


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """Open ``path`` with the pragmas the service relies on (WAL, foreign keys).

    The connection is in autocommit mode: callers say ``BEGIN`` themselves.
    ``check_same_thread`` is off because the owner hands it between trio's worker
    threads; the owner guarantees only one thread uses it at a time.
    """
    if readonly:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    # In WAL mode NORMAL already survives a killed process; FULL also survives
    # power loss by syncing the WAL on every commit.  "stored" is a promise and
    # group commit pays the sync once per batch of requests, so FULL it is.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -32000")
    return conn


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer tippen-rt: this one must not touch it."""

    def __init__(self, path: Path | str, version: int) -> None:
        super().__init__(
            f"{path} has schema version {version}, newer than this tippen-rt knows"
            f" ({len(MIGRATIONS)}): a newer tippen-rt has used it; run that version,"
            " or restore a backup made before the upgrade"
        )
        self.version = version


def schema_version(conn: sqlite3.Connection) -> int:
    """The last migration applied to the database (0 for a new file)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def check_schema(path: Path | str) -> None:
    """Raise :class:`SchemaTooNew` if the database at ``path`` is from a newer
    tippen-rt (a downgrade); nothing if it is older, current or not there yet."""
    if not Path(path).exists():
        return
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        version = schema_version(conn)
    finally:
        conn.close()
    if version > len(MIGRATIONS):
        raise SchemaTooNew(path, version)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database; return the resulting version.

    Raises :class:`SchemaTooNew`, having changed nothing, for a database that a
    newer tippen-rt migrated further than this one knows.
    """
    version = schema_version(conn)
    if version > len(MIGRATIONS):
        files = [row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"]
        raise SchemaTooNew(files[0] if files and files[0] else "the database", version)
    for number in range(version + 1, len(MIGRATIONS) + 1):
        log.info("applying schema migration %d", number)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def open_database(path: Path | str) -> sqlite3.Connection:
    """Connect and migrate: what every command does before touching data."""
    conn = connect(path)
    migrate(conn)
    return conn


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit early)."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in migration: {pending!r}")
    return out
