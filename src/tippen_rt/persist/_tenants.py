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


_COLUMNS = (
    "id, name, api_key, admin_token_hash, origins, settings, identity_secret, created_at,"
    " previous_api_key, previous_api_key_expires_at"
)


def _row_to_tenant(row: tuple[object, ...]) -> Tenant:
    tid, name, api_key, token_hash, origins, settings, secret, created, previous, expires = row
    return Tenant(
        id=int(tid),  # type: ignore[call-overload]
        name=str(name),
        api_key=str(api_key),
        admin_token_hash=str(token_hash),
        origins=tuple(orjson.loads(origins)),  # type: ignore[arg-type]
        settings=TenantSettings.from_mapping(orjson.loads(settings)),  # type: ignore[arg-type]
        identity_secret=None if secret is None else str(secret),
        created_at=int(created),  # type: ignore[call-overload]
        previous_api_key=None if previous is None else str(previous),
        previous_api_key_expires_at=None if expires is None else int(expires),  # type: ignore[call-overload]
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
            "INSERT INTO tenants (id, name, api_key, admin_token_hash, origins, settings,"
            " identity_secret, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _next_tenant_id(conn),
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


def _next_tenant_id(conn: sqlite3.Connection) -> int:
    """One more than any id ever given: a removed tenant's id is never reused."""
    (top,) = conn.execute(
        "SELECT max(id) FROM (SELECT id FROM tenants UNION ALL SELECT id FROM removed_tenants)"
    ).fetchone()
    return int(top or 0) + 1


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


#: The longest a previous API key may keep working after a rotation (a year).
MAX_KEY_OVERLAP_S = 365 * 24 * 3600


def rotate_api_key(conn: sqlite3.Connection, name: str, *, overlap_s: float, now_ms: int) -> Tenant:
    """Give tenant ``name`` a fresh API key; the current one keeps working for
    ``overlap_s`` more seconds (0: it stops at once).

    One previous key is kept: rotating again ends the earlier one's overlap.
    """
    if not 0 <= overlap_s <= MAX_KEY_OVERLAP_S:
        raise ValueError(f"the overlap must be 0 to {MAX_KEY_OVERLAP_S // 3600} hours")
    tenant = get_tenant_by_name(conn, name)
    previous, expires = None, None
    if overlap_s:
        previous, expires = tenant.api_key, now_ms + round(overlap_s * 1000)
    conn.execute(
        "UPDATE tenants SET api_key = ?, previous_api_key = ?, previous_api_key_expires_at = ?"
        " WHERE id = ?",
        (new_api_key(), previous, expires, tenant.id),
    )
    rotated = get_tenant(conn, tenant.id)
    assert rotated is not None
    return rotated


def tenant_rows(conn: sqlite3.Connection, tenant_id: int) -> dict[str, int]:
    """Rows per table that belong to tenant ``tenant_id``."""
    return {
        table: int(
            conn.execute(
                f'SELECT count(*) FROM "{table}" WHERE tenant_id = ?', (tenant_id,)
            ).fetchone()[0]
        )
        for table in _tables_with_tenant_id(conn)
    }


def remove_tenant(conn: sqlite3.Connection, name: str, *, now_ms: int) -> dict[str, int]:
    """Delete tenant ``name`` and every row of every table that belongs to it;
    return how many rows each table lost.  Its id is never given again."""
    tenant = get_tenant_by_name(conn, name)
    # Rows may refer to each other (an alert to an agent, say): check at COMMIT.
    conn.execute("PRAGMA defer_foreign_keys = ON")
    removed = {
        table: conn.execute(f'DELETE FROM "{table}" WHERE tenant_id = ?', (tenant.id,)).rowcount
        for table in _tables_with_tenant_id(conn)
    }
    conn.execute("DELETE FROM tenants WHERE id = ?", (tenant.id,))
    conn.execute("INSERT INTO removed_tenants (id, removed_at) VALUES (?, ?)", (tenant.id, now_ms))
    return removed


def _tables_with_tenant_id(conn: sqlite3.Connection) -> list[str]:
    """Every table with a ``tenant_id`` column: a table added later is not forgotten."""
    tables = [
        str(name)
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name"
        )
    ]
    return [
        table
        for table in tables
        if any(col[1] == "tenant_id" for col in conn.execute(f'PRAGMA table_info("{table}")'))
    ]
