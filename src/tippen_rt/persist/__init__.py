"""Persistence: the SQLite schema, the group-committing EventStore, tenant rows.

Redis (``RedisSnapshotStore``) is imported only when asked for: it is the
``tippen-rt[redis]`` extra, and a service without ``TIPPEN_REDIS_URL`` runs
without it installed.
"""

from typing import TYPE_CHECKING, Any

from ..config import Settings
from ._agents import (
    Agent,
    AgentExists,
    NoSuchAgent,
    create_agent,
    get_agent_by_token,
    list_agents,
    remove_agent,
)
from ._alerts import (
    CALL_STATUSES,
    DISABLED,
    FAILED,
    PENDING,
    RECOVERED,
    SENT,
    SUPERSEDED,
    SUPPRESSED,
    SWITCHED_OFF,
    USER_LEFT,
    Alert,
    AlertStatus,
    DeliveryStatus,
    NewAlert,
    Opened,
    acknowledge_alert,
    alert_by_id,
    claim_alerts,
    count_alerts,
    delete_user_alerts,
    get_alert,
    give_up_update,
    last_alert_sent_at,
    list_alerts,
    mark_disabled,
    mark_failed,
    mark_held_back,
    mark_sent,
    mark_updated,
    open_alert,
    record_attempt_error,
    record_call,
    release_held_back,
    resolve_alerts,
    undelivered_alert_ids,
)
from ._backup import BackupError, BackupReport, backup_database
from ._event_store import EventStore, StoreBusy, StoreClosed, StoreStats, run_inline
from ._events import InsertResult, count_events, insert_batch, insert_batches
from ._lock import DatabaseInUse, database_lock
from ._retention_service import RetentionService, SweepReport
from ._schema import (
    MIGRATIONS,
    SchemaTooNew,
    check_schema,
    connect,
    migrate,
    open_database,
    schema_version,
)
from ._served import ServedSettings, read_served_settings, record_served_settings
from ._snapshot_sqlite import SqliteSnapshotStore
from ._snapshot_store import SnapshotStore
from ._summaries import SummaryRow, upsert_summaries
from ._tenants import (
    MAX_KEY_OVERLAP_S,
    NoSuchTenant,
    TenantExists,
    create_tenant,
    get_tenant,
    get_tenant_by_admin_token,
    get_tenant_by_name,
    list_tenants,
    remove_tenant,
    rotate_admin_token,
    rotate_api_key,
    tenant_rows,
    update_tenant,
)
from ._writer_process import WriterLost

if TYPE_CHECKING:
    from ._snapshot_redis import RedisSnapshotStore

__all__ = [
    "CALL_STATUSES",
    "DISABLED",
    "FAILED",
    "MAX_KEY_OVERLAP_S",
    "MIGRATIONS",
    "PENDING",
    "RECOVERED",
    "SENT",
    "SUPERSEDED",
    "SUPPRESSED",
    "SWITCHED_OFF",
    "USER_LEFT",
    "Agent",
    "AgentExists",
    "Alert",
    "AlertStatus",
    "BackupError",
    "BackupReport",
    "DatabaseInUse",
    "DeliveryStatus",
    "EventStore",
    "InsertResult",
    "NewAlert",
    "NoSuchAgent",
    "NoSuchTenant",
    "Opened",
    "RedisSnapshotStore",
    "RetentionService",
    "SchemaTooNew",
    "ServedSettings",
    "SnapshotStore",
    "SqliteSnapshotStore",
    "StoreBusy",
    "StoreClosed",
    "StoreStats",
    "SummaryRow",
    "SweepReport",
    "TenantExists",
    "WriterLost",
    "acknowledge_alert",
    "alert_by_id",
    "backup_database",
    "check_schema",
    "claim_alerts",
    "connect",
    "count_alerts",
    "count_events",
    "create_agent",
    "create_tenant",
    "database_lock",
    "delete_user_alerts",
    "get_agent_by_token",
    "get_alert",
    "get_tenant",
    "get_tenant_by_admin_token",
    "get_tenant_by_name",
    "give_up_update",
    "insert_batch",
    "insert_batches",
    "last_alert_sent_at",
    "list_agents",
    "list_alerts",
    "list_tenants",
    "mark_disabled",
    "mark_failed",
    "mark_held_back",
    "mark_sent",
    "mark_updated",
    "migrate",
    "open_alert",
    "open_database",
    "read_served_settings",
    "record_attempt_error",
    "record_call",
    "record_served_settings",
    "release_held_back",
    "remove_agent",
    "remove_tenant",
    "resolve_alerts",
    "rotate_admin_token",
    "rotate_api_key",
    "run_inline",
    "schema_version",
    "snapshot_store",
    "tenant_rows",
    "undelivered_alert_ids",
    "update_tenant",
    "upsert_summaries",
]


def __getattr__(name: str) -> Any:
    # ``from tippen_rt.persist import RedisSnapshotStore`` imports redis then, not before.
    if name == "RedisSnapshotStore":
        from ._snapshot_redis import RedisSnapshotStore

        return RedisSnapshotStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def snapshot_store(settings: Settings, store: EventStore) -> SnapshotStore:
    """Redis when ``TIPPEN_REDIS_URL`` is set, else the SQLite file."""
    if settings.redis_url:
        from ._snapshot_redis import RedisSnapshotStore

        return RedisSnapshotStore(settings.redis_url, prefix=settings.redis_prefix)
    return SqliteSnapshotStore(store)
