"""CSV exports of the admin's tenant: ``GET /api/admin/export/alerts.csv`` and
``/export/users.csv``.

Streamed: the rows are read from SQLite a page at a time (keyset by id, or by
user id) and each page is written out before the next is read, so an export
of a year of alerts holds one page in memory, never the whole table.  Only the
logged-in admin's tenant is read.

Everything a tracked app sent is user text, and a spreadsheet runs a cell
that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a
formula: such cells are written with a leading ``'`` (OWASP's advice for CSV
injection), which spreadsheets show as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from quart import Blueprint, Response, request

from ..events import BadInput
from ..persist import Alert
from ..persist._admin import export_summaries
from ..persist._alerts import export_alerts
from ._auth import Admin, admin_api
from ._services import services

__all__ = ["ALERT_COLUMNS", "USER_COLUMNS", "csv_cell", "export_routes"]

export_routes = Blueprint("export", __name__, url_prefix="/api/admin/export")

#: Rows read from SQLite per page of an export.
PAGE_ROWS = 500
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """One value as a CSV cell: times as ISO 8601 UTC by the caller, None as empty,
    text that a spreadsheet would run as a formula prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _seconds(since: int, at: int | None) -> float | None:
    return None if at is None else round(max(0, at - since) / 1000, 1)


#: The alerts export, one row per alert: what fired, its lifecycle and response times.
ALERT_COLUMNS: Sequence[tuple[str, Callable[[Alert], Any]]] = (
    ("alert_id", lambda a: a.id),
    ("opened_at", lambda a: _iso(a.opened_at)),
    ("user_id", lambda a: a.user_id),
    ("user_name", lambda a: a.user_name),
    ("user_email", lambda a: a.user_email),
    ("tier", lambda a: a.tier),
    ("trigger", lambda a: a.trigger),
    ("reason", lambda a: a.reason),
    ("route", lambda a: a.route),
    ("status", lambda a: a.status),
    ("resolution", lambda a: a.resolution),
    ("resolved_at", lambda a: _iso(a.resolved_at)),
    ("first_claimed_by", lambda a: a.first_claimed_by),
    ("first_claimed_at", lambda a: _iso(a.first_claimed_at)),
    ("acknowledged_by", lambda a: a.acknowledged_by),
    ("acknowledged_at", lambda a: _iso(a.acknowledged_at)),
    ("first_call_by", lambda a: a.first_call_by),
    ("first_call_at", lambda a: _iso(a.first_call_at)),
    ("call_status", lambda a: a.call_status),
    ("seconds_to_claim", lambda a: _seconds(a.opened_at, a.first_claimed_at)),
    ("seconds_to_acknowledge", lambda a: _seconds(a.opened_at, a.acknowledged_at)),
    ("seconds_to_call", lambda a: _seconds(a.opened_at, a.first_call_at)),
    ("seconds_to_response", lambda a: _response_s(a)),
    ("responded_by", lambda a: (a.response or (None, None))[1]),
    ("slack_delivery", lambda a: a.delivery_status),
)


def _response_s(alert: Alert) -> float | None:
    response = alert.response
    return None if response is None else round(response[0] / 1000, 1)


#: The users export, one row per user ever seen: their stored summary.
USER_COLUMNS: Sequence[tuple[str, Callable[[dict[str, Any]], Any]]] = (
    ("user_id", lambda r: r["user_id"]),
    ("user_name", lambda r: r["user_name"]),
    ("user_email", lambda r: r["user_email"]),
    ("tier", lambda r: r["subscription_tier"]),
    ("first_seen_at", lambda r: _iso(r["first_seen_at"])),
    ("last_active_at", lambda r: _iso(r["last_active_at"])),
    ("current_route", lambda r: r["current_route"]),
    ("total_events", lambda r: r["total_events"]),
    ("total_errors", lambda r: r["total_errors"]),
    ("needs_support", lambda r: bool(r["needs_support"])),
    ("session_open", lambda r: bool(r["session_open"])),
)


def _csv_lines(rows: Iterable[Iterable[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue().encode()


def _ms_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(
            "invalid_field", f"{name} must be a time in ms since the epoch", name
        ) from None
    if not 0 <= value < 2**53:
        raise BadInput("invalid_field", f"{name} must be a time in ms since the epoch", name)
    return value


def _download(admin: Admin, what: str, body: AsyncIterator[bytes]) -> Response:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in admin.tenant.name)[:60]
    return Response(
        body,
        status=200,
        content_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="tippen-{safe}-{what}-{day}.csv"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@export_routes.get("/alerts.csv")
@admin_api
async def alerts_csv(admin: Admin) -> Response:
    """Every alert of the tenant (``from``/``to``: opened in that range, ms), oldest
    first, with its lifecycle and response times."""
    svc = services()
    start, end = _ms_arg("from"), _ms_arg("to")
    tenant_id = admin.tenant_id

    async def body() -> AsyncIterator[bytes]:
        yield _csv_lines([[name for name, _ in ALERT_COLUMNS]])
        after = 0
        while True:
            page = await svc.store.read(
                partial(
                    export_alerts,
                    tenant_id=tenant_id,
                    after_id=after,
                    limit=PAGE_ROWS,
                    opened_from=start,
                    opened_to=end,
                )
            )
            if not page:
                return
            yield _csv_lines([[get(a) for _, get in ALERT_COLUMNS] for a in page])
            after = page[-1].id

    return _download(admin, "alerts", body())


@export_routes.get("/users.csv")
@admin_api
async def users_csv(admin: Admin) -> Response:
    """Every user of the tenant as stored (the live ones' summaries are at most a
    few seconds behind), by user id."""
    svc = services()
    tenant_id = admin.tenant_id

    async def body() -> AsyncIterator[bytes]:
        yield _csv_lines([[name for name, _ in USER_COLUMNS]])
        after: str | None = None
        while True:
            page = await svc.store.read(
                partial(export_summaries, tenant_id=tenant_id, after_user=after, limit=PAGE_ROWS)
            )
            if not page:
                return
            yield _csv_lines([[get(r) for _, get in USER_COLUMNS] for r in page])
            after = page[-1]["user_id"]

    return _download(admin, "users", body())
