"""Persistence: the SQLite schema, the group-committing EventStore, tenant rows."""

from ._event_store import EventStore, StoreBusy, StoreClosed, StoreStats, run_inline
from ._events import InsertResult, count_events, insert_batch
from ._schema import MIGRATIONS, connect, migrate, open_database
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
    "StoreBusy",
    "StoreClosed",
    "StoreStats",
    "SummaryRow",
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
    "update_tenant",
    "upsert_summaries",
]
