"""``agents``: a tenant's support agents, each with a personal login token.

The tenant's admin token bootstraps the dashboard; agents log in with their
own token, so "acknowledged by" and "call started by" name a person, and one
agent who leaves is removed alone (their sessions end; nobody else's do).
Tokens are stored only hashed, like admin tokens.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from ..tenants import hash_admin_token, new_admin_token
from ._tenants import get_tenant_by_name

AGENT_TOKEN_PREFIX = "agent_"
MAX_AGENT_NAME = 64


@dataclass(frozen=True, slots=True)
class Agent:
    """One support agent of one tenant."""

    id: int
    tenant_id: int
    name: str
    email: str | None
    token_hash: str
    created_at: int


class AgentExists(ValueError):
    """The tenant already has an agent of that name."""


class NoSuchAgent(LookupError):
    """The tenant has no agent of that name."""


_COLUMNS = "id, tenant_id, name, email, token_hash, created_at"


def _agent(row: tuple[object, ...]) -> Agent:
    return Agent(*row)  # type: ignore[arg-type]


def create_agent(
    conn: sqlite3.Connection, tenant_name: str, name: str, email: str | None = None
) -> tuple[Agent, str]:
    """Add an agent to tenant ``tenant_name``; return it and its login token (shown once)."""
    tenant = get_tenant_by_name(conn, tenant_name)
    name = name.strip()
    if not name or len(name) > MAX_AGENT_NAME or not name.isprintable():
        raise ValueError(f"an agent name is 1 to {MAX_AGENT_NAME} printable characters")
    if email is not None and ("@" not in email or not email.isprintable() or len(email) > 320):
        raise ValueError(f"{email!r} is not an email address")
    token = AGENT_TOKEN_PREFIX + new_admin_token().removeprefix("admin_")
    try:
        cursor = conn.execute(
            "INSERT INTO agents (tenant_id, name, email, token_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (tenant.id, name, email, hash_admin_token(token), int(time.time() * 1000)),
        )
    except sqlite3.IntegrityError:
        raise AgentExists(f"tenant {tenant.name!r} already has an agent named {name!r}") from None
    assert cursor.lastrowid is not None
    row = conn.execute(f"SELECT {_COLUMNS} FROM agents WHERE id = ?", (cursor.lastrowid,))
    return _agent(row.fetchone()), token


def list_agents(conn: sqlite3.Connection, tenant_name: str | None = None) -> list[Agent]:
    """Agents of one tenant (by name), or of all, oldest first."""
    if tenant_name is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM agents ORDER BY id")
    else:
        tenant = get_tenant_by_name(conn, tenant_name)
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM agents WHERE tenant_id = ? ORDER BY id", (tenant.id,)
        )
    return [_agent(r) for r in rows]


def remove_agent(conn: sqlite3.Connection, tenant_name: str, name: str) -> Agent:
    """Remove an agent: their token and every session made with it stop working."""
    tenant = get_tenant_by_name(conn, tenant_name)
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM agents WHERE tenant_id = ? AND name = ?", (tenant.id, name)
    ).fetchone()
    if row is None:
        raise NoSuchAgent(f"tenant {tenant.name!r} has no agent named {name!r}")
    conn.execute("DELETE FROM agents WHERE id = ?", (row[0],))
    return _agent(row)


def get_agent_by_token(conn: sqlite3.Connection, token: str) -> Agent | None:
    """The agent whose login token is ``token``, or None."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM agents WHERE token_hash = ?", (hash_admin_token(token),)
    ).fetchone()
    return None if row is None else _agent(row)
