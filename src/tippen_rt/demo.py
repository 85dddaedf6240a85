"""``tippen-rt serve --demo``: a ready tenant so a newcomer sees it work at once."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .persist import (
    NoSuchTenant,
    create_tenant,
    get_tenant_by_name,
    rotate_admin_token,
    update_tenant,
)
from .tenants import Tenant

DEMO_TENANT = "demo"


@dataclass(frozen=True, slots=True)
class DemoAccess:
    """What the demo prints: the tenant and a login token that works now."""

    tenant: Tenant
    admin_token: str


def demo_origins(base_url: str) -> list[str]:
    """The origins the sample app is served from: the service itself."""
    origins = [base_url]
    if "://127.0.0.1:" in base_url:
        origins.append(base_url.replace("://127.0.0.1:", "://localhost:"))
    return origins


def ensure_demo_tenant(conn: sqlite3.Connection, base_url: str) -> DemoAccess:
    """Create the demo tenant if missing, allow ``base_url``, and issue a fresh token.

    The admin token is stored only hashed, so the demo rotates it on every start
    to be able to print one that works.
    """
    origins = demo_origins(base_url)
    try:
        tenant = get_tenant_by_name(conn, DEMO_TENANT)
    except NoSuchTenant:
        tenant, token = create_tenant(conn, DEMO_TENANT, origins)
        return DemoAccess(tenant, token)
    merged = list(dict.fromkeys([*tenant.origins, *origins]))
    tenant = update_tenant(conn, DEMO_TENANT, origins=merged)
    return DemoAccess(tenant, rotate_admin_token(conn, DEMO_TENANT))
