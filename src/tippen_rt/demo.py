"""``tippen-rt serve --demo``: a ready tenant so a newcomer sees it work at once."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from urllib.parse import urlsplit

from .persist import (
    NoSuchTenant,
    create_tenant,
    get_tenant_by_name,
    rotate_admin_token,
    update_tenant,
)
from .tenants import Tenant, hash_admin_token

DEMO_TENANT = "demo"


@dataclass(frozen=True, slots=True)
class DemoAccess:
    """What the demo prints: the tenant and a login token that works now."""

    tenant: Tenant
    admin_token: str


_ANY_ADDRESS = re.compile(r"^(https?://)(?:0\.0\.0\.0|\[::\])(:\d+)$")
_LOOPBACK = re.compile(r"^(https?://)127\.0\.0\.1(:\d+)$")


def demo_base_url(bound_url: str, public_url: str = "") -> str:
    """The URL to show a newcomer: the public URL if set; for a service bound to
    every address (``0.0.0.0``), this machine's loopback; else the bound one."""
    if public_url:
        return public_url.rstrip("/")
    return _ANY_ADDRESS.sub(r"\g<1>127.0.0.1\g<2>", bound_url)


def demo_origins(bound_url: str, public_url: str = "") -> list[str]:
    """The origins the sample app may be opened at: the service itself, under
    each name that reaches it (127.0.0.1 and localhost, the public URL)."""
    base = _ANY_ADDRESS.sub(r"\g<1>127.0.0.1\g<2>", bound_url)
    origins = [base]
    if _LOOPBACK.match(base):
        origins.append(_LOOPBACK.sub(r"\g<1>localhost\g<2>", base))
    if public_url:
        parts = urlsplit(public_url)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return list(dict.fromkeys(origins))


#: Where the demo keeps its login token in plain text (``server_secrets``), so
#: the same token works across restarts and open dashboards stay logged in.
#: Only the demo tenant's: real tenants' tokens are stored only hashed.
DEMO_TOKEN_SECRET = "demo_admin_token"


def ensure_demo_tenant(
    conn: sqlite3.Connection, bound_url: str, public_url: str = ""
) -> DemoAccess:
    """Create the demo tenant if missing, allow its origins, and return its login token.

    The token is the one kept from the last start while it still matches the
    tenant (nobody rotated it meanwhile); otherwise a new one is made and kept.
    """
    origins = demo_origins(bound_url, public_url)
    try:
        tenant = get_tenant_by_name(conn, DEMO_TENANT)
    except NoSuchTenant:
        tenant, token = create_tenant(conn, DEMO_TENANT, origins)
        _keep_token(conn, token)
        return DemoAccess(tenant, token)
    merged = list(dict.fromkeys([*tenant.origins, *origins]))
    tenant = update_tenant(conn, DEMO_TENANT, origins=merged)
    row = conn.execute(
        "SELECT value FROM server_secrets WHERE name = ?", (DEMO_TOKEN_SECRET,)
    ).fetchone()
    if row is not None and hash_admin_token(row[0]) == tenant.admin_token_hash:
        return DemoAccess(tenant, str(row[0]))
    token = rotate_admin_token(conn, DEMO_TENANT)
    _keep_token(conn, token)
    return DemoAccess(get_tenant_by_name(conn, DEMO_TENANT), token)


def _keep_token(conn: sqlite3.Connection, token: str) -> None:
    conn.execute(
        "INSERT INTO server_secrets (name, value, created_at)"
        " VALUES (?, ?, CAST(strftime('%s','now') AS INTEGER) * 1000)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (DEMO_TOKEN_SECRET, token),
    )
