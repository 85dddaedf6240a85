"""What the running service uses, recorded for the commands run beside it.

``tippen-rt serve`` records, at every start, the public URL its Slack
messages link to and the Slack API root it calls.  ``tippen-rt slack test``,
run from another shell (with another environment), reads them so its test
message looks like a real alert of that service.  Kept as rows of
``server_secrets`` (name/value), though neither is secret.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

__all__ = ["ServedSettings", "read_served_settings", "record_served_settings"]

_PUBLIC_URL = "served:public_url"
_SLACK_API_URL = "served:slack_api_url"


@dataclass(frozen=True, slots=True)
class ServedSettings:
    """What the service last started with; None where it never said."""

    public_url: str | None = None
    slack_api_url: str | None = None


def record_served_settings(conn: sqlite3.Connection, public_url: str, slack_api_url: str) -> None:
    """Record what this service uses ('' for no public URL)."""
    now = int(time.time() * 1000)
    conn.executemany(
        "INSERT OR REPLACE INTO server_secrets (name, value, created_at) VALUES (?, ?, ?)",
        [(_PUBLIC_URL, public_url, now), (_SLACK_API_URL, slack_api_url, now)],
    )


def read_served_settings(conn: sqlite3.Connection) -> ServedSettings:
    """What the service last started with on this database."""
    values = dict(
        conn.execute(
            "SELECT name, value FROM server_secrets WHERE name IN (?, ?)",
            (_PUBLIC_URL, _SLACK_API_URL),
        ).fetchall()
    )
    return ServedSettings(values.get(_PUBLIC_URL), values.get(_SLACK_API_URL))
