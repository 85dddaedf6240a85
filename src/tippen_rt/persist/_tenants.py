"""Tenant rows: create, list, look up. Plain functions of a connection.

The CLI calls them on its own connection; the service runs them through the
EventStore (writes) or its read connection (reads).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

import orjson

from ..tenants import (
    Tenant,
    TenantSettings,
    hash_admin_token,
    new_admin_token,
    new_api_key,
    normalize_origin,
)


class TenantExists(ValueError):
    """A tenant with that name already exists."""


class NoSuchTenant(LookupError):
    """No tenant has that name."""


_COLUMNS = "id, name, api_key, admin_token_hash, origins, settings, identity_secret, created_at"


def _row_to_tenant(row: tuple[object, ...]) -> Tenant:
    tid, name, api_key, token_hash, origins, settings, secret, created = row
    return Tenant(
        id=int(tid),  # type: ignore[call-overload]
        name=str(name),
        api_key=str(api_key),
        admin_token_hash=str(token_hash),
        origins=tuple(orjson.loads(origins)),  # type: ignore[arg-type]
        settings=TenantSettings.from_mapping(orjson.loads(settings)),  # type: ignore[arg-type]
        identity_secret=None if secret is None else str(secret),
        created_at=int(created),  # type: ignore[call-overload]
    )


def create_tenant(
    conn: sqlite3.Connection,
    name: str,
    origins: Iterable[str] = (),
    settings: TenantSettings | None = None,
    identity_secret: str | None = None,
) -> tuple[Tenant, str]:
    """Insert a tenant with fresh keys; return it and its admin token (shown once)."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError("tenant name must be 1 to 64 characters")
    clean_origins = tuple(dict.fromkeys(normalize_origin(o) for o in origins))
    token = new_admin_token()
    tenant_settings = settings or TenantSettings()
    try:
        cur = conn.execute(
            "INSERT INTO tenants (name, api_key, admin_token_hash, origins, settings,"
            " identity_secret, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                new_api_key(),
                hash_admin_token(token),
                orjson.dumps(list(clean_origins)).decode(),
                orjson.dumps(tenant_settings.to_mapping()).decode(),
                identity_secret,
                int(time.time() * 1000),
            ),
        )
    except sqlite3.IntegrityError:
        raise TenantExists(f"a tenant named {name!r} already exists") from None
    tenant = get_tenant(conn, cur.lastrowid or 0)
    assert tenant is not None
    return tenant, token


def get_tenant(conn: sqlite3.Connection, tenant_id: int) -> Tenant | None:
    """The tenant with ``tenant_id``, or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
    return None if row is None else _row_to_tenant(row)


def get_tenant_by_name(conn: sqlite3.Connection, name: str) -> Tenant:
    """The tenant called ``name``; raise :class:`NoSuchTenant` if there is none."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM tenants WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NoSuchTenant(f"no tenant named {name!r}")
    return _row_to_tenant(row)


def get_tenant_by_admin_token(conn: sqlite3.Connection, token: str) -> Tenant | None:
    """The tenant whose admin token is ``token``, or None."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM tenants WHERE admin_token_hash = ?",
        (hash_admin_token(token),),
    ).fetchone()
    return None if row is None else _row_to_tenant(row)


def list_tenants(conn: sqlite3.Connection) -> list[Tenant]:
    """Every tenant, oldest first."""
    return [_row_to_tenant(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM tenants ORDER BY id")]


def update_tenant(
    conn: sqlite3.Connection,
    name: str,
    *,
    origins: Iterable[str] | None = None,
    settings: TenantSettings | None = None,
    identity_secret: str | None = None,
) -> Tenant:
    """Change a tenant's origins, settings or identity secret."""
    tenant = get_tenant_by_name(conn, name)
    if origins is not None:
        clean = list(dict.fromkeys(normalize_origin(o) for o in origins))
        conn.execute(
            "UPDATE tenants SET origins = ? WHERE id = ?",
            (orjson.dumps(clean).decode(), tenant.id),
        )
    if settings is not None:
        conn.execute(
            "UPDATE tenants SET settings = ? WHERE id = ?",
            (orjson.dumps(settings.to_mapping()).decode(), tenant.id),
        )
    if identity_secret is not None:
        conn.execute(
            "UPDATE tenants SET identity_secret = ? WHERE id = ?",
            (identity_secret or None, tenant.id),
        )
    updated = get_tenant(conn, tenant.id)
    assert updated is not None
    return updated


def rotate_admin_token(conn: sqlite3.Connection, name: str) -> str:
    """Give tenant ``name`` a fresh admin token; the old one stops working."""
    tenant = get_tenant_by_name(conn, name)
    token = new_admin_token()
    conn.execute(
        "UPDATE tenants SET admin_token_hash = ? WHERE id = ?", (hash_admin_token(token), tenant.id)
    )
    return token
