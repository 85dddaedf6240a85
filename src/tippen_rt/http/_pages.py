"""The dashboard pages, their static files, and the ``/ws/admin`` WebSocket.

Pages are Jinja templates (autoescaped) with hand-written JS and CSS from
``tippen_rt/web``: no build step.  The JS puts everything that comes from a
tracked app into the page as text nodes, never as markup, and the Content
Security Policy allows only this site's own scripts and styles, so even a
slip there could not run an injected script.
"""

from __future__ import annotations

import logging
import re
from importlib.resources import files
from typing import Any

import trio
from quart import Blueprint, Quart, Response, redirect, render_template, websocket

from ..events import BadInput
from ..persist import _alerts as alerts_db
from ._admin_api import admin_api_routes
from ._auth import (
    SESSION_COOKIE,
    Admin,
    admin_page,
    current_admin,
    install_auth,
    live_sessions,
    site_origin,
)
from ._errors import error_response
from ._export import export_routes
from ._hub import Hub, Subscriber
from ._services import AppServices, services
from ._tracker_assets import asset_response, load_asset
from ._views import alert_json

log = logging.getLogger(__name__)

__all__ = ["WEB_DIR", "install_dashboard", "page_response", "pages"]

#: The dashboard's templates and static files, inside the installed package.
WEB_DIR = files("tippen_rt") / "web"
STATIC_PREFIX = "/static/admin"

pages = Blueprint("pages", __name__, template_folder=str(WEB_DIR / "templates"))

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_STATIC_NAME = re.compile(r"^[a-z0-9_-]{1,64}\.(?:js|css|svg)$")
#: WebSocket close codes the page understands.
CLOSE_GOING_AWAY = 1001
CLOSE_SESSION_EXPIRED = 4401


def install_dashboard(app: Quart, svc: AppServices) -> None:
    """Login, the admin API, the pages and the WebSocket, on ``app``."""
    install_auth(app, svc)
    app.register_blueprint(admin_api_routes)
    app.register_blueprint(export_routes)
    app.register_blueprint(pages)


def page_response(body: str, status: int = 200) -> Response:
    """An HTML page with the dashboard's security headers."""
    return Response(
        body,
        status=status,
        content_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-store",
        },
    )


@pages.get("/")
async def root() -> Response:
    """The service's front door leads to the dashboard."""
    return redirect("/user-activity", code=303)  # type: ignore[return-value]


@pages.get("/user-activity")
@admin_page
async def dashboard(admin: Admin) -> Response:
    """Live users, support alerts and summary cards."""
    body = await render_template("dashboard.html", admin=admin, page="dashboard")
    return page_response(body)


@pages.get("/user-activity/<path:user_id>")
@admin_page
async def user_page(admin: Admin, user_id: str) -> Response:
    """One user: timeline, route journey, errors, video call."""
    body = await render_template("user.html", admin=admin, user_id=user_id, page="user")
    return page_response(body)


@pages.get(f"{STATIC_PREFIX}/<name>")
async def static_file(name: str) -> Response:
    """The dashboard's own JS and CSS (revalidated by ETag)."""
    if not _STATIC_NAME.match(name):
        return error_response(BadInput("not_found", "no such file", None, status=404))
    asset = await load_asset(WEB_DIR / "static" / name)
    if asset is None:
        return error_response(BadInput("not_found", "no such file", None, status=404))
    return asset_response(asset, "no-cache")


# ---- the WebSocket -------------------------------------------------------------


async def _alerts_now(svc: AppServices, tenant_id: int) -> list[dict[str, Any]]:
    if svc.notifier is None:
        return []

    def unresolved(conn: Any) -> list[Any]:
        return [
            *alerts_db.list_alerts(conn, tenant_id, status="open", limit=200),
            *alerts_db.list_alerts(conn, tenant_id, status="acknowledged", limit=200),
        ]

    return [alert_json(a) for a in await svc.store.read(unresolved)]


async def _snapshot(svc: AppServices, hub: Hub, tenant_id: int) -> str:
    calls = [] if svc.calls is None else [i.to_json() for i in svc.calls.recent(tenant_id)]
    return hub.snapshot(tenant_id, await _alerts_now(svc, tenant_id), calls)


@pages.websocket("/ws/admin")
async def admin_socket() -> Response | None:
    """Live updates of the admin's tenant: a snapshot, then changes as they happen."""
    svc = services()
    hub = svc.hub
    if not site_origin(websocket.headers.get("Origin"), websocket.headers):
        return error_response(
            BadInput("origin_not_allowed", "the dashboard socket is for this site only", None, 403)
        )
    admin = await current_admin(websocket.cookies)
    if admin is None:
        return error_response(BadInput("not_logged_in", "log in as an admin first", None, 401))
    if hub is None:
        return error_response(BadInput("unavailable", "live updates are off", None, 503))
    await websocket.accept()
    tenant_id = admin.tenant_id
    cookie = websocket.cookies.get(SESSION_COOKIE, "")
    expires_in_s = admin.expires_at - svc.wall_ms() / 1000
    ended = False
    with hub.subscribe(tenant_id) as sub:
        await websocket.send(await _snapshot(svc, hub, tenant_id))
        with trio.move_on_after(max(0.0, expires_in_s)) as session:
            while True:
                # Interrupted when the session may have ended (logout, token
                # rotated): check it again, go on only if it still holds.
                with live_sessions().watch(tenant_id, cookie) as watch:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_read_client, sub)
                        await _forward(svc, hub, sub, tenant_id)
                        # The hub has stopped: stop reading the client too.
                        nursery.cancel_scope.cancel()
                if not watch.cancelled_caught:
                    break
                if await current_admin(websocket.cookies) is None:
                    ended = True
                    break
        if ended or session.cancelled_caught:
            await websocket.send('{"type":"session_expired"}')
            await websocket.close(
                CLOSE_SESSION_EXPIRED, "session ended" if ended else "session expired"
            )
        else:
            await websocket.close(CLOSE_GOING_AWAY, "server shutting down")
    return None


async def _forward(svc: AppServices, hub: Hub, sub: Subscriber, tenant_id: int) -> None:
    """Send what the hub queues for this connection until the hub stops."""
    while True:
        try:
            text = await sub.next()
        except trio.EndOfChannel:
            return
        if text is None:
            text = await _snapshot(svc, hub, tenant_id)
        elif not text:
            continue
        await websocket.send(text)


async def _read_client(sub: Subscriber) -> None:
    """The page may ask for a fresh snapshot (``"resync"``); anything else is ignored."""
    while True:
        message = await websocket.receive()
        if message == "resync" or message == '{"type":"resync"}':
            sub.force_resync()
