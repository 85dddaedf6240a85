"""Persistence: the SQLite schema, the group-committing EventStore, tenant rows."""

from ..config import Settings
from ._event_store import EventStore, StoreBusy, StoreClosed, StoreStats, run_inline
from ._events import InsertResult, count_events, insert_batch
from ._retention_service import RetentionService, SweepReport
from ._schema import MIGRATIONS, connect, migrate, open_database
from ._snapshot_redis import RedisSnapshotStore
from ._snapshot_sqlite import SqliteSnapshotStore
from ._snapshot_store import SnapshotStore
from ._summaries import SummaryRow, upsert_summaries
from ._tenants import (
    NoSuchTenant,
    TenantExists,
    create_tenant,
    get_tenant,
    get_tenant_by_admin_token,
    get_tenant_by_name,
    list_tenants,
    rotate_admin_token,
    update_tenant,
)

__all__ = [
    "MIGRATIONS",
    "EventStore",
    "InsertResult",
    "NoSuchTenant",
    "RedisSnapshotStore",
    "RetentionService",
    "SnapshotStore",
    "SqliteSnapshotStore",
    "StoreBusy",
    "StoreClosed",
    "StoreStats",
    "SummaryRow",
    "SweepReport",
    "TenantExists",
    "connect",
    "count_events",
    "create_tenant",
    "get_tenant",
    "get_tenant_by_admin_token",
    "get_tenant_by_name",
    "insert_batch",
    "list_tenants",
    "migrate",
    "open_database",
    "rotate_admin_token",
    "run_inline",
    "snapshot_store",
    "update_tenant",
    "upsert_summaries",
]


def snapshot_store(settings: Settings, store: EventStore) -> SnapshotStore:
    """Redis when ``TIPPEN_REDIS_URL`` is set, else the SQLite file."""
    if settings.redis_url:
        return RedisSnapshotStore(settings.redis_url, prefix=settings.redis_prefix)
    return SqliteSnapshotStore(store)
