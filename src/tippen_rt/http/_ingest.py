"""``POST /api/track/user-activity``: validate, store, acknowledge after COMMIT.

The order matters: a batch is parsed and validated completely, its tenant
and origin checked (a tenant may refuse requests without ``Origin``: only a
server sends those), then stored through the EventStore's group commit, and
only when the commit is done is it handed to the actors and acknowledged.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from typing import Any

import trio
from quart import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..events import BadInput, Batch, parse_batch
from ..persist import StoreBusy, StoreClosed, WriterLost, insert_batches
from ..tenants import Tenant, verify_user_hash
from ._client import client_address
from ._errors import error_response
from ._json import json_response
from ._rate_limit import retry_after_header
from ._services import AppServices, services

log = logging.getLogger(__name__)

ingest = Blueprint("ingest", __name__)

TRACK_PATH = "/api/track/user-activity"
ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain")
RETRY_AFTER_S = "1"


#: Set on the answers to a flagged user's batches: "ask for a call invitation
#: every this many ms" (docs/support.md, "The invitation channel").
POLL_HEADER = "X-Tippen-Poll"


def _cors_headers(origin: str) -> dict[str, str]:
    """What a response to a cross-origin POST needs for the page to read it.

    Retry-After is exposed so the tracker can honour it on 429 and 503, and
    X-Tippen-Poll so it knows to load the call invitation script.
    """
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": f"Retry-After, {POLL_HEADER}",
        "Vary": "Origin",
    }


def _preflight_headers(origin: str) -> dict[str, str]:
    """The answer to an allowed preflight: what may be sent, cached for 10 minutes."""
    return {
        **_cors_headers(origin),
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "600",
    }


@ingest.route(TRACK_PATH, methods=["OPTIONS"])
async def preflight() -> Response:
    """CORS preflight: allowed only for origins some tenant lists."""
    origin = request.headers.get("Origin")
    if origin and await services().tenants.origin_known(origin):
        return Response(b"", status=204, headers=_preflight_headers(origin))
    return error_response(
        BadInput("origin_not_allowed", "this origin may not send events", None, status=403)
    )


@ingest.post(TRACK_PATH)
async def track_user_activity() -> Response:
    """Store one batch of events and answer once it is committed."""
    svc = services()
    response = await _guarded(svc)
    svc.guards.responses[response.status_code] += 1
    return response


async def _guarded(svc: AppServices) -> Response:
    origin = request.headers.get("Origin")
    guards = svc.guards
    cors = _cors_headers(origin) if origin else {}
    wait_s = guards.per_address.take(client_address(svc.settings.proxies))
    if wait_s:
        guards.limited += 1
        return _too_many("too many requests from this address", wait_s, cors)
    if guards.inflight >= guards.max_inflight:
        guards.shed += 1
        return error_response(
            BadInput("overloaded", "server is busy; retry later", None, status=503),
            {"Retry-After": RETRY_AFTER_S, **cors},
        )
    guards.inflight += 1
    try:
        return await _track(svc, origin)
    finally:
        guards.inflight -= 1


#: Seconds a user refused by the live-user bound waits before the tracker retries.
USER_LIMIT_RETRY_S = "60"


def _too_many(message: str, wait_s: float, cors: dict[str, str]) -> Response:
    return error_response(
        BadInput("rate_limited", message, None, status=429),
        {"Retry-After": retry_after_header(wait_s), **cors},
    )


async def _track(svc: AppServices, origin: str | None) -> Response:
    tenant: Tenant | None = None
    try:
        if request.mimetype not in ACCEPTED_CONTENT_TYPES:
            raise BadInput(
                "unsupported_media_type",
                "send the batch as application/json or text/plain",
                None,
                status=415,
            )
        body = None
        try:
            with trio.move_on_after(svc.settings.body_timeout_s):
                body = await request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise BadInput(
                "body_too_large",
                f"request body is over {svc.settings.max_body_bytes} bytes",
                None,
                status=413,
            ) from None
        if body is None:
            raise BadInput(
                "body_timeout",
                f"request body did not arrive within {svc.settings.body_timeout_s:g} s",
                None,
                status=408,
            )
        assert isinstance(body, bytes)
        batch = parse_batch(body, svc.wall_ms(), svc.limits)
        tenant = await svc.tenants.by_api_key(batch.api_key)
        if tenant is None:
            raise BadInput("unknown_api_key", "unknown API key", "apiKey", status=401)
        wait_s = svc.guards.per_key.take(tenant.id)
        if wait_s:
            svc.guards.limited += 1
            return _too_many(
                "too many requests for this API key",
                wait_s,
                _cors_headers(origin) if origin else {},
            )
        if origin is None:
            if tenant.settings.require_origin:
                raise BadInput(
                    "origin_required",
                    "this API key takes events from web pages only (with an Origin header);"
                    " for a server that sends events, turn require_origin off for the tenant",
                    None,
                    status=403,
                )
        elif not tenant.allows_origin(origin):
            raise BadInput(
                "origin_not_allowed",
                f"origin {origin[:200]} is not allowed for this API key",
                None,
                status=403,
            )
        _check_identity(tenant, batch)
        if _is_poll(batch):
            # tippen-invite.js asking for an invitation (or answering one):
            # nothing to store, nothing for the actor; answered from memory.
            return await _poll(svc, tenant, batch, await _cors_for(origin, tenant))
        limit = tenant.settings.max_live_users
        registry = svc.registry
        if (
            limit
            and registry is not None
            and registry.live_count_of(tenant.id) >= limit
            and not registry.is_live(tenant.id, batch.user_id)
        ):
            svc.guards.users_refused += 1
            return error_response(
                BadInput(
                    "live_user_limit",
                    f"this API key already has {limit} live users (max_live_users);"
                    " new users are refused until some leave",
                    "userId",
                    status=429,
                ),
                {"Retry-After": USER_LIMIT_RETRY_S, **await _cors_for(origin, tenant)},
            )
        try:
            result = await svc.store.write_combined_nowait(
                insert_batches, (tenant.id, batch), rows=len(batch.events) or 1
            )
        except (StoreBusy, StoreClosed, WriterLost):
            return error_response(
                BadInput("overloaded", "server is busy; retry later", None, status=503),
                {"Retry-After": RETRY_AFTER_S, **await _cors_for(origin, tenant)},
            )
        except sqlite3.IntegrityError:
            # The tenant row is gone: removed (tippen-rt tenant remove) since the
            # directory last looked.  Look again, so its live users go too.
            await svc.tenants.reload()
            raise BadInput("unknown_api_key", "unknown API key", "apiKey", status=401) from None
        if not result.duplicate:
            svc.guards.events_stored += result.stored
            await svc.sink.deliver(tenant, batch)
    except BadInput as exc:
        # Errors are readable from any origin: they hold no data, and the
        # tracker must see a 4xx to drop a batch instead of retrying it.
        return error_response(exc, _cors_headers(origin) if origin else {})
    body_out = {"success": True, "stored": result.stored, "analyzed": True}
    if result.duplicate:
        body_out["duplicate"] = True
    headers = await _cors_for(origin, tenant)
    _flag_poll(svc, tenant, batch.user_id, headers)
    return json_response(body_out, 200, headers)


def _is_poll(batch: Batch) -> bool:
    """An empty batch without an id: the invitation script's question (maybe
    carrying an answer), never stored."""
    return not batch.events and batch.batch_id is None


def _flag_poll(svc: AppServices, tenant: Tenant, user_id: str, headers: dict[str, str]) -> bool:
    """Tell the page to ask for call invitations (``X-Tippen-Poll``) while its
    user is flagged: an open support episode, or an invitation waiting."""
    board = svc.calls
    if board is None or not tenant.settings.call_invitations:
        return False
    flagged = board.pending(tenant.id, user_id) is not None
    if not flagged and svc.registry is not None:
        state = svc.registry.state(tenant.id, user_id)
        flagged = state is not None and bool(state.active)
    if flagged:
        headers[POLL_HEADER] = str(int(svc.settings.invite_poll_s * 1000))
    return flagged


async def _poll(
    svc: AppServices, tenant: Tenant, batch: Batch, headers: dict[str, str]
) -> Response:
    body: dict[str, Any] = {"success": True, "stored": 0, "analyzed": False}
    board = svc.calls
    if board is not None and batch.invite_answer is not None:
        call_id, answer = batch.invite_answer
        answered = await board.answer(tenant.id, batch.user_id, call_id, answer)
        body["answered"] = answered is not None
    if _flag_poll(svc, tenant, batch.user_id, headers) and board is not None:
        waiting = board.pending(tenant.id, batch.user_id)
        if waiting is not None:
            waiting = await board.delivered(waiting)
            body["invite"] = waiting.for_page(svc.wall_ms())
    return json_response(body, 200, headers)


async def _cors_for(origin: str | None, tenant: Tenant | None) -> dict[str, str]:
    """CORS headers when ``origin`` may read this response, else none."""
    if origin is None:
        return {}
    if tenant is not None:
        allowed = tenant.allows_origin(origin)
    else:
        allowed = await services().tenants.origin_known(origin)
    return _cors_headers(origin) if allowed else {}


_USER_HASH = re.compile(r"[0-9a-fA-F]{64}")


def _check_identity(tenant: Tenant, batch: Batch) -> None:
    secret = tenant.identity_secret
    if not secret:
        return
    if batch.user_hash is None:
        if tenant.settings.require_user_hash:
            raise BadInput(
                "user_hash_required", "this tenant requires userHash", "userHash", status=401
            )
        return
    if _USER_HASH.fullmatch(batch.user_hash) is None:
        # Not a hash at all (another encoding, a placeholder): say what is expected,
        # rather than "does not match", which sends people looking for a wrong secret.
        raise BadInput(
            "invalid_field",
            "userHash must be the HMAC-SHA256 of userId as 64 hex digits",
            "userHash",
        )
    if not verify_user_hash(secret, batch.user_id, batch.user_hash):
        raise BadInput("bad_user_hash", "userHash does not match userId", "userHash", status=403)
