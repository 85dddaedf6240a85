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
from .tenants import Tenant

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


def ensure_demo_tenant(
    conn: sqlite3.Connection, bound_url: str, public_url: str = ""
) -> DemoAccess:
    """Create the demo tenant if missing, allow its origins, and issue a fresh token.

    The admin token is stored only hashed, so the demo rotates it on every start
    to be able to print one that works.
    """
    origins = demo_origins(bound_url, public_url)
    try:
        tenant = get_tenant_by_name(conn, DEMO_TENANT)
    except NoSuchTenant:
        tenant, token = create_tenant(conn, DEMO_TENANT, origins)
        return DemoAccess(tenant, token)
    merged = list(dict.fromkeys([*tenant.origins, *origins]))
    tenant = update_tenant(conn, DEMO_TENANT, origins=merged)
    return DemoAccess(tenant, rotate_admin_token(conn, DEMO_TENANT))
