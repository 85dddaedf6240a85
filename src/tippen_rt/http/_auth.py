"""Admin login: ``/login`` with the tenant's admin token, a signed session cookie, logout.

Every admin page, admin API route and the dashboard WebSocket go through
:func:`current_admin`; the admin it returns belongs to exactly one tenant, and
every handler uses that tenant's id, never one taken from the request.

The cookie is HttpOnly, SameSite=Strict, and Secure when the request came
over https: directly, or as a trusted proxy reports (``TIPPEN_TRUSTED_PROXIES``).
Requests that change something must also come from this site's own origin
when the browser says where they came from (``Origin``), and the WebSocket
must always say so.  Login attempts are rate limited per client
address with a token bucket (429 with Retry-After).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar
from urllib.parse import quote, urlsplit

import trio
from quart import Blueprint, Quart, Response, current_app, redirect, render_template, request
from werkzeug.datastructures import Headers

from ..events import UNSAFE_IN_IDS, BadInput, log_safe
from ..persist import Agent, get_agent_by_token, get_tenant_by_admin_token
from ..persist._admin import load_or_create_secret, load_revoked_sessions, revoke_session
from ..tenants import Tenant, normalize_origin
from ._client import client_address, is_https
from ._errors import error_response
from ._json import json_body, json_response
from ._live_sessions import LiveSessions
from ._services import AppServices, services
from ._session import (
    MAX_NAME_CHARS,
    AdminSession,
    TokenBucket,
    key_tag,
    read_session,
    retry_after_header,
    sign_session,
)

log = logging.getLogger(__name__)

__all__ = [
    "SESSION_COOKIE",
    "Admin",
    "admin_api",
    "admin_page",
    "auth",
    "current_admin",
    "install_auth",
    "live_sessions",
    "same_origin",
    "site_origin",
]

auth = Blueprint("auth", __name__)

SESSION_COOKIE = "tippen_admin"
LOGIN_PATH = "/login"
HOME_PATH = "/user-activity"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Admin:
    """A logged-in admin: their tenant, the name they gave, when the login ends."""

    tenant: Tenant
    name: str
    expires_at: float
    #: The agent logged in (their own token), or 0 for the tenant's admin token.
    agent_id: int = 0

    @property
    def tenant_id(self) -> int:
        """The only tenant this admin may see."""
        return self.tenant.id


class _AuthState:
    """Per-app: the signing secret (read once) and the login rate limiter."""

    def __init__(self, svc: AppServices) -> None:
        self.bucket = TokenBucket(svc.settings.login_burst, svc.settings.login_refill_s)
        self._secret: bytes | None = (
            svc.settings.secret_key.encode() if svc.settings.secret_key else None
        )
        self._lock = trio.Lock()
        #: Signatures of logged-out sessions -> when they expire (epoch s).
        self._revoked: dict[str, float] | None = None
        self.live = LiveSessions()
        svc.tenants.on_admin_change(self.live.recheck)

    async def revoked(self, svc: AppServices) -> dict[str, float]:
        """Logged-out sessions, read from SQLite once."""
        if self._revoked is None:
            async with self._lock:
                if self._revoked is None:
                    now = _now(svc)
                    self._revoked = await svc.store.read(
                        lambda conn: load_revoked_sessions(conn, now)
                    )
        return self._revoked

    async def revoke(self, svc: AppServices, cookie: str, expires_at: float) -> None:
        """End the session in ``cookie`` now: refused from here on, sockets closed."""
        signature = cookie.rsplit(".", 1)[-1]
        now = _now(svc)
        await svc.store.write(lambda conn: revoke_session(conn, signature, expires_at, now))
        revoked = await self.revoked(svc)
        for sig in [s for s, exp in revoked.items() if exp <= now]:
            del revoked[sig]
        revoked[signature] = expires_at
        self.live.end_cookie(cookie)

    async def secret(self, svc: AppServices) -> bytes:
        if self._secret is None:
            async with self._lock:
                if self._secret is None:
                    self._secret = (await svc.store.write(load_or_create_secret)).encode()
        return self._secret


def install_auth(app: Quart, svc: AppServices) -> None:
    """Register the login routes and the state they share."""
    app.extensions["tippen_auth"] = _AuthState(svc)
    app.register_blueprint(auth)


def live_sessions() -> LiveSessions:
    """The open dashboard sockets of this app, by session."""
    return _state().live


def _state() -> _AuthState:
    state: _AuthState = current_app.extensions["tippen_auth"]
    return state


def _now(svc: AppServices) -> float:
    return svc.wall_ms() / 1000.0


async def current_admin(cookies: Mapping[str, str] | None = None) -> Admin | None:
    """The admin whose valid session cookie came with this request or WebSocket."""
    svc = services()
    if cookies is None:
        cookies = request.cookies
    value = cookies.get(SESSION_COOKIE)
    if not value:
        return None
    secret = await _state().secret(svc)
    session = read_session(secret, value, _now(svc))
    if session is None or value.rsplit(".", 1)[-1] in await _state().revoked(svc):
        return None
    tenant = await svc.tenants.by_id(session.tenant_id)
    if tenant is None:
        return None
    if session.agent_id:
        agent = await svc.tenants.agent(session.agent_id)
        if (
            agent is None
            or agent.tenant_id != tenant.id
            or key_tag(secret, agent.token_hash) != session.key_tag
        ):
            return None  # removed since
        return Admin(tenant, agent.name, session.expires_at, agent_id=agent.id)
    if key_tag(secret, tenant.admin_token_hash) != session.key_tag:
        return None
    return Admin(tenant=tenant, name=session.name, expires_at=session.expires_at)


def same_origin(origin: str | None, host: str | None) -> bool:
    """True if ``origin`` (scheme://host[:port]) names ``host`` (the Host header)."""
    if not origin or not host:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return parts.netloc.lower() == host.lower()


def site_origin(origin: str | None, headers: Headers) -> bool:
    """True if ``origin`` is this site: the Host the request names, or the
    configured public URL (behind a proxy that rewrites Host)."""
    if same_origin(origin, headers.get("Host")):
        return True
    public_url = services().settings.public_url
    if not origin or not public_url:
        return False
    try:
        return normalize_origin(origin) == normalize_origin(public_url.rstrip("/"))
    except ValueError:
        return False


def _cross_site(headers: Headers) -> bool:
    """A browser says the request came from another site."""
    origin = headers.get("Origin")
    return origin is not None and not site_origin(origin, headers)


def _unauthorized() -> Response:
    return error_response(BadInput("not_logged_in", "log in as an admin first", None, status=401))


def _forbidden_origin() -> Response:
    return error_response(
        BadInput("origin_not_allowed", "admin requests must come from this site", None, 403)
    )


def admin_api(
    fn: Callable[Concatenate[Admin, P], Awaitable[Response]],
) -> Callable[P, Awaitable[Response]]:
    """An admin API handler: 401 without a valid session, 403 for cross-site writes."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        admin = await current_admin()
        if admin is None:
            return _no_store(_unauthorized())
        if request.method not in _SAFE_METHODS and _cross_site(request.headers):
            return _no_store(_forbidden_origin())
        return _no_store(await fn(admin, *args, **kwargs))

    return wrapper


def admin_page(
    fn: Callable[Concatenate[Admin, P], Awaitable[Response]],
) -> Callable[P, Awaitable[Response]]:
    """An admin page: without a valid session, a redirect to the login page."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        admin = await current_admin()
        if admin is None:
            target = request.full_path if request.query_string else request.path
            return _no_store(
                redirect(f"{LOGIN_PATH}?next={quote(target, safe='/')}", code=303)  # type: ignore[arg-type]
            )
        return _no_store(await fn(admin, *args, **kwargs))

    return wrapper


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this site, never another site."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 for c in target)
    ):
        return HOME_PATH
    return target


def clean_name(name: object) -> str:
    """The name an admin gives at login, as shown to other admins, in Slack and
    in logs: without control, bidi or zero-width characters, at most
    MAX_NAME_CHARS; "" when none is left."""
    if not isinstance(name, str):
        return ""
    # Lone surrogates (from JSON escapes such as \ud800) cannot be encoded: dropped.
    name = UNSAFE_IN_IDS.sub("", name).encode(errors="ignore").decode()
    return name.strip()[:MAX_NAME_CHARS].strip()


# ---- routes ---------------------------------------------------------------


@auth.get(LOGIN_PATH)
async def login_page() -> Response:
    """The login form (or straight on to the dashboard when already logged in)."""
    next_path = safe_next(request.args.get("next"))
    if await current_admin() is not None:
        return _no_store(redirect(next_path, code=303))  # type: ignore[arg-type]
    return await _login_form(next_path, None, 200)


async def _login_form(next_path: str, error: str | None, status: int) -> Response:
    from ._pages import page_response

    body = await render_template("login.html", next_path=next_path, error=error)
    return page_response(body, status)


@auth.post(LOGIN_PATH)
async def login() -> Response:
    """Check the admin token; on success set the session cookie.

    Takes a form (``token``, ``name``, ``next``) and answers with a redirect,
    or JSON (``{"token", "name"}``) and answers with JSON.
    """
    svc = services()
    wants_json = request.mimetype == "application/json"
    if _cross_site(request.headers):
        return _forbidden_origin()
    client = log_safe(client_address(svc.settings.proxies), 64)
    wait_s = _state().bucket.take(client, trio.current_time())
    if wait_s > 0:
        log.warning("login rate limit hit by %s", client)
        return error_response(
            BadInput("rate_limited", "too many login attempts; try again later", None, 429),
            {"Retry-After": retry_after_header(wait_s)},
        )
    if wants_json:
        doc = await json_body()
        if not isinstance(doc, dict):
            doc = {}
        token, name, next_raw = doc.get("token"), doc.get("name"), None
    else:
        form = await request.form
        token, name, next_raw = form.get("token"), form.get("name"), form.get("next")
    next_path = safe_next(next_raw if isinstance(next_raw, str) else None)
    tenant = None
    agent: Agent | None = None
    if isinstance(token, str) and 0 < len(token) <= 256 and token.isascii():
        # Admin tokens are ASCII; anything else (a lone surrogate would not
        # even encode) is simply wrong.
        given = token.strip()
        tenant = await svc.store.read(lambda conn: get_tenant_by_admin_token(conn, given))
        if tenant is None:
            agent = await svc.store.read(lambda conn: get_agent_by_token(conn, given))
            if agent is not None:
                if await svc.tenants.agent(agent.id) is None:
                    await svc.tenants.reload()  # added a moment ago: know it from now on
                tenant = await svc.tenants.by_id(agent.tenant_id)
    if tenant is None:
        log.info("failed admin login from %s", client)
        if wants_json:
            return error_response(BadInput("bad_token", "wrong admin token", "token", 401))
        return await _login_form(next_path, "That admin token is not right.", 401)
    secret = await _state().secret(svc)
    expires_at = _now(svc) + svc.settings.admin_session_s
    if agent is not None:  # the agent's own name, not a typed one
        session = AdminSession(
            tenant.id, agent.name, expires_at, key_tag(secret, agent.token_hash), agent.id
        )
    else:
        session = AdminSession(
            tenant_id=tenant.id,
            name=clean_name(name) or "admin",
            expires_at=expires_at,
            key_tag=key_tag(secret, tenant.admin_token_hash),
        )
    cookie = sign_session(secret, session)
    log.info("admin login for tenant %s from %s", log_safe(tenant.name), client)
    if wants_json:
        response = json_response({"success": True, "tenant": tenant.name})
    else:
        response = redirect(next_path, code=303)  # type: ignore[assignment]
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(svc.settings.admin_session_s),
        path="/",
        secure=is_https(svc.settings.proxies),
        httponly=True,
        samesite="Strict",
    )
    return _no_store(response)


@auth.post("/logout")
async def logout() -> Response:
    """End the session: refused from now on (open dashboards close too), the
    cookie is cleared, and the browser goes to the login page."""
    if _cross_site(request.headers):
        return _forbidden_origin()
    svc = services()
    cookie = request.cookies.get(SESSION_COOKIE)
    admin = await current_admin()
    if cookie and admin is not None:
        await _state().revoke(svc, cookie, admin.expires_at)
        log.info(
            "admin %s of tenant %s logged out", log_safe(admin.name), log_safe(admin.tenant.name)
        )
    if request.mimetype == "application/json":
        response = json_response({"success": True})
    else:
        response = redirect(LOGIN_PATH, code=303)  # type: ignore[assignment]
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(svc.settings.proxies),
    )
    return _no_store(response)
