"""The tracker script and the sample app, served by the service itself.

``GET /tippen-app-tracker.js`` is what app pages embed.  It is public, so any
origin may load it; it is revalidated cheaply with its ETag and sent gzipped
to browsers that accept it.

With ``serve --demo``, ``GET /demo/app`` (and every path below it, so the
sample single-page app survives a reload) is the sample app with the demo
tenant's API key filled into its script tag and its thresholds into the text
that says how to make each trigger fire, ``GET /demo/<file>`` its assets, and
``POST /demo/thresholds`` the sample app's switch between short thresholds and
the defaults (the demo tenant's only, from this site's own pages only).
Without ``--demo`` those paths are 404.

Files come from the package itself (``tippen_rt/tracker/``, found with
:mod:`importlib.resources`, so an installed wheel serves them as a source
checkout does), read once per process.  The scripts are served without their
comments and whitespace, their local names
shortened (:func:`minify_script`): the commented source is for people, and
every byte is downloaded by every page.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import trio
from quart import Blueprint, Response, request

from ..demo import (
    DEMO_TENANT,
    describe_thresholds,
    sample_app_heartbeat_ms,
    sample_app_values,
    set_demo_thresholds,
)
from ..events import BadInput
from ..tenants import Tenant
from ._auth import site_origin
from ._errors import error_response
from ._json import json_body, json_response
from ._minify_js import minify_script
from ._services import services

__all__ = [
    "INVITE_PATH",
    "TRACKER_PATH",
    "Asset",
    "minify_script",
    "tracker_assets",
    "tracker_dir",
]

tracker_assets = Blueprint("tracker_assets", __name__)

TRACKER_PATH = "/tippen-app-tracker.js"
TRACKER_FILE = "tippen-app-tracker.js"
#: The tracker's second script: call invitations, loaded only while its user
#: is flagged (docs/support.md), from the directory the tracker came from.
INVITE_PATH = "/tippen-invite.js"
INVITE_FILE = "tippen-invite.js"
#: Served minified, like the tracker.
_MINIFIED = frozenset({TRACKER_FILE, INVITE_FILE})
DEMO_INDEX = "index.html"
#: Short, because the script's URL carries no version; the ETag makes the
#: revalidation after that a 304 without a body.
SCRIPT_CACHE_CONTROL = "public, max-age=300"
DEMO_CACHE_CONTROL = "no-cache"

_CONTENT_TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
}
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def tracker_dir() -> Traversable:
    """The package's ``tracker/`` directory: the scripts and the sample app (``examples/``)."""
    return files("tippen_rt") / "tracker"


@dataclass(frozen=True, slots=True)
class Asset:
    """A file's bytes, its gzipped form and their strong ETags."""

    body: bytes
    content_type: str
    gzipped: bytes
    etag: str
    gzip_etag: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Asset:
        """Compress ``body`` once and derive its ETags from its content."""
        digest = hashlib.sha256(body).hexdigest()[:20]
        return cls(
            body=body,
            content_type=content_type,
            gzipped=gzip.compress(body, compresslevel=9, mtime=0),
            etag=f'"{digest}"',
            gzip_etag=f'"{digest}-gz"',
        )


_cache: dict[str, Asset] = {}


async def load_asset(resource: Traversable) -> Asset | None:
    """The package file ``resource`` as an :class:`Asset`, read once; None if it is missing."""
    key = str(resource)
    asset = _cache.get(key)
    if asset is None:
        suffix = "." + resource.name.rpartition(".")[2] if "." in resource.name else ""
        content_type = _CONTENT_TYPES.get(suffix, "application/octet-stream")
        try:
            body = await trio.to_thread.run_sync(_read, resource)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        asset = _cache[key] = Asset.of(body, content_type)
    return asset


def _read(resource: Traversable) -> bytes:
    """The file's bytes as served: scripts minified (in this worker thread)."""
    body = resource.read_bytes()
    if resource.name in _MINIFIED:
        body = minify_script(body.decode()).encode()
    return body


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True if an ``If-None-Match`` header names ``etag`` (weak comparison) or is ``*``."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def asset_response(asset: Asset, cache_control: str, *, any_origin: bool = False) -> Response:
    """``asset`` for the current request: gzipped if accepted, 304 if the client has it."""
    gzipped = request.accept_encodings["gzip"] > 0
    etag = asset.gzip_etag if gzipped else asset.etag
    headers = {
        "ETag": etag,
        "Cache-Control": cache_control,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if any_origin:
        headers["Access-Control-Allow-Origin"] = "*"
    if etag_matches(request.headers.get("If-None-Match"), etag):
        return Response(b"", status=304, headers=headers, content_type=asset.content_type)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    body = asset.gzipped if gzipped else asset.body
    return Response(body, status=200, headers=headers, content_type=asset.content_type)


def _not_found(what: str) -> Response:
    return error_response(BadInput("not_found", f"{what} not found", None, status=404))


@tracker_assets.get(TRACKER_PATH)
async def tracker_script() -> Response:
    """The tracker script, for any origin to embed."""
    asset = await load_asset(tracker_dir() / TRACKER_FILE)
    if asset is None:
        return _not_found(f"{TRACKER_FILE} (the installed package has no tracker/ directory)")
    return asset_response(asset, SCRIPT_CACHE_CONTROL, any_origin=True)


@tracker_assets.get(INVITE_PATH)
async def invite_script() -> Response:
    """The call invitation script the tracker loads while its user is flagged."""
    asset = await load_asset(tracker_dir() / INVITE_FILE)
    if asset is None:
        return _not_found(f"{INVITE_FILE} (the installed package has no tracker/ directory)")
    return asset_response(asset, SCRIPT_CACHE_CONTROL, any_origin=True)


async def _demo_tenant() -> Tenant | None:
    tenants = services().tenants
    for attempt in range(2):
        if attempt:
            await tenants.reload()  # --demo creates it just after the server starts
        for tenant in tenants.all():
            if tenant.name == DEMO_TENANT:
                return tenant
    return None


@tracker_assets.get("/demo/app")
@tracker_assets.get("/demo/app/<path:_route>")
async def demo_app(_route: str = "") -> Response:
    """The sample app, with the demo tenant's API key in its script tag.

    Query parameters ``user``, ``email``, ``name``, ``tier``, ``flush`` and ``heartbeat``
    (ms) and ``endpoint`` fill the matching ``data-tippen-*`` attributes, to try
    several users at once, to watch batches go out faster, or to send them
    elsewhere.
    """
    if not services().settings.demo:
        return _not_found("the sample app (start with --demo)")
    template = await load_asset(tracker_dir() / "examples" / DEMO_INDEX)
    if template is None:
        return _not_found("tippen_rt/tracker/examples/index.html")
    tenant = await _demo_tenant()
    if tenant is None:
        return error_response(
            BadInput("demo_not_ready", "the demo tenant is being created", None, status=503),
            {"Retry-After": "1"},
        )
    args = request.args
    tier = args.get("tier", "free_trial")
    heartbeat_ms = sample_app_heartbeat_ms(tenant.settings)
    values = {
        **sample_app_values(tenant.settings, tier),
        "api_key": tenant.api_key,
        "user_id": args.get("user", "demo-user"),
        "user_email": args.get("email", "demo@example.com"),
        "user_name": args.get("name", ""),
        "tier": tier,
        "flush_ms": args.get("flush", ""),
        "heartbeat_ms": args.get("heartbeat", "" if heartbeat_ms is None else str(heartbeat_ms)),
        "endpoint": args.get("endpoint", ""),
    }
    page = _PLACEHOLDER.sub(
        lambda m: html.escape(values.get(m.group(1), ""), quote=True),
        template.body.decode(),
    )
    return Response(
        page,
        status=200,
        headers={"Cache-Control": DEMO_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"},
        content_type=template.content_type,
    )


@tracker_assets.post("/demo/thresholds")
async def demo_thresholds() -> Response:
    """Switch the demo tenant to short thresholds (``{"short": true}``) or back
    to the defaults (``{"short": false}``); live users get them at once.

    Only in demo mode, only for the demo tenant, only between these two sets,
    and only from this site's own pages: a page elsewhere cannot flip it.
    """
    svc = services()
    if not svc.settings.demo:
        return _not_found("the sample app (start with --demo)")
    origin = request.headers.get("Origin")
    if origin is not None and not site_origin(origin, request.headers):
        return error_response(
            BadInput("origin_not_allowed", "only the sample app may switch this", None, 403)
        )
    doc = await json_body() if request.mimetype == "application/json" else None
    short = doc.get("short") if isinstance(doc, dict) else None
    if not isinstance(short, bool):
        raise BadInput("invalid_field", 'send {"short": true} or {"short": false}', "short")
    if await _demo_tenant() is None:
        return error_response(
            BadInput("demo_not_ready", "the demo tenant is being created", None, status=503),
            {"Retry-After": "1"},
        )
    tenant = await svc.store.write(lambda conn: set_demo_thresholds(conn, short))
    await svc.tenants.reload()
    if svc.registry is not None:
        await svc.registry.settings_changed(tenant.id, tenant.settings)
    return json_response({"success": True, **describe_thresholds(tenant.settings)})


@tracker_assets.get("/demo/<name>")
async def demo_asset(name: str) -> Response:
    """A file of the sample app (``tippen_rt/tracker/examples/<name>``)."""
    if not services().settings.demo:
        return _not_found("the sample app (start with --demo)")
    if not _ASSET_NAME.match(name) or name == DEMO_INDEX:
        return _not_found(name)
    asset = await load_asset(tracker_dir() / "examples" / name)
    if asset is None:
        return _not_found(name)
    return asset_response(asset, DEMO_CACHE_CONTROL)
