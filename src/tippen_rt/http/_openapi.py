"""``GET /openapi.json``: the ingest and admin APIs as an OpenAPI 3.1 document.

Built, not written: the batch and event schemas come from the constants the
validator itself uses (``events.Limits``, ``EventType``, ``TIERS``,
``VISIBILITY_STATES``, ``UNSAFE_IN_IDS``, ``MAX_INPUT_COUNT``) and from this
service's settings (events per batch, body size), so a limit changed in
``events.py`` or by ``TIPPEN_MAX_EVENTS_PER_BATCH`` changes the document too.
:data:`ERROR_CODES` lists every error code a response can carry; a test
checks it against every ``BadInput`` the source raises, and another that
every route of the app is in the document.

Dashboard pages, static files and the WebSocket are in it too (as what they
are: HTML, files, an upgrade), so the document is the whole HTTP surface.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, current_app

from .. import __version__
from ..actors import Trigger
from ..config import Settings
from ..events import (
    INVITE_ANSWERS,
    MAX_INPUT_COUNT,
    MAX_TIMESTAMP_MS,
    TIERS,
    UNSAFE_IN_IDS,
    VISIBILITY_STATES,
    EventType,
    Limits,
)
from ._admin_api import DEFAULT_PAGE, MAX_BULK_USERS, MAX_PAGE, MAX_USER_ID_CHARS
from ._auth import SESSION_COOKIE
from ._ingest import TRACK_PATH
from ._json import json_response
from ._services import services

__all__ = ["ERROR_CODES", "OPENAPI_PATH", "build_openapi", "openapi"]

openapi = Blueprint("openapi", __name__)

OPENAPI_PATH = "/openapi.json"

#: Every ``error.code`` a response can carry, and when.  Besides these,
#: ``http_<status>`` for an HTTP error no handler names (``http_400`` for a
#: body the form parser refuses, or a plain GET of the WebSocket).
ERROR_CODES: dict[str, str] = {
    # the batch (events.py)
    "invalid_json": "the body is not JSON (or, for the admin API, not a JSON object)",
    "invalid_batch": "the batch is not a JSON object",
    "invalid_event": "an entry of events is not an object",
    "unknown_event_type": "an event's type is none of the event types",
    "missing_field": "a required field is missing (field names it)",
    "invalid_field": "a field has the wrong type, form or range (field names it)",
    "field_too_long": "a string is over its limit, or custom data over its size as JSON",
    "timestamp_out_of_range": "an event's time is further from server time than the skew limit",
    "too_many_events": "more events than a batch may hold (413)",
    # the ingest endpoint
    "unsupported_media_type": "the body is not application/json (or text/plain for ingest)",
    "body_too_large": "the body is over the size limit (413)",
    "body_timeout": "the body did not arrive in time (408)",
    "unknown_api_key": "no tenant has this API key, or it has been rotated out (401)",
    "origin_not_allowed": "the Origin may not send (ingest) or is not this site (admin, 403)",
    "origin_required": "no Origin header, and the tenant takes events from web pages only (403)",
    "user_hash_required": "the tenant requires identity verification and userHash is missing",
    "bad_user_hash": "userHash is not the HMAC of userId with the tenant's secret (403)",
    "rate_limited": "too many requests from this address or API key, or login attempts (429)",
    "live_user_limit": "a new user of a tenant already at max_live_users (429)",
    "overloaded": "too many requests in flight, or the SQLite writer's queue is full (503)",
    # admin, pages, operators
    "bad_token": "the admin or agent token given at login is wrong (401)",
    "not_logged_in": "no valid admin session cookie (401)",
    "not_found": "no such user, alert, file or endpoint (404)",
    "method_not_allowed": "the endpoint does not take this method (405)",
    "bad_video_call_template": "the tenant's video call template makes no http(s) link (409)",
    "claimed": "another agent has claimed the user; the body's claim says who (409)",
    "nothing_to_claim": "the user has no open support need to claim (409)",
    "unavailable": "live updates are off in this process (503)",
    "operator_token_required": "/metrics without the operator token, or none is set (401)",
    "demo_not_ready": "the demo tenant is being created (503)",
    "internal_error": "a bug: the request failed inside the service (500)",
    # the protocol edge (http/_protocol.py)
    "bad_request": "a malformed HTTP request (400)",
    "ambiguous_body_length": "both Content-Length and Transfer-Encoding (400; connection closed)",
    "headers_too_large": "request line and headers over TIPPEN_MAX_HEADER_BYTES (431)",
    "unsupported_transfer_encoding": "a Transfer-Encoding other than chunked (501)",
    "http2_not_enabled": "an HTTP/2 preface while TIPPEN_HTTP2 is off (505)",
}

JSON = "application/json"
HTML = "text/html"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _identifier_pattern(*, required: bool) -> str:
    """What identifiers may hold: none of the characters UNSAFE_IN_IDS refuses
    (and, when required, not only whitespace)."""
    inner = UNSAFE_IN_IDS.pattern
    assert inner.startswith("[") and inner.endswith("]")
    unsafe = inner[1:-1]
    if required:
        return f"^[^{unsafe}]*[^\\s{unsafe}][^{unsafe}]*$"
    return f"^[^{unsafe}]*$"


def _text(max_chars: int, *, required: bool = True) -> Schema:
    """A string field as ``events._req_str``/``_opt_str`` check it."""
    schema: Schema = {"type": "string", "maxLength": max_chars}
    if required:
        # Not empty, not only whitespace; no NUL anywhere.
        schema |= {"minLength": 1, "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"}
        return schema
    schema["pattern"] = "^[^\\u0000]*$"
    return _nullable(schema)


def _ms(description: str) -> Schema:
    return {
        "type": "number",
        "minimum": 0,
        "exclusiveMaximum": MAX_TIMESTAMP_MS,
        "description": description,
    }


def _event_schemas(limits: Limits) -> dict[str, Schema]:
    """One schema per event type, the fields each takes besides type and timestamp."""
    fields: dict[EventType, tuple[dict[str, Schema], list[str], str]] = {
        EventType.ROUTE: ({"route": _text(limits.route_chars)}, ["route"], "The page changed."),
        EventType.CLICK: (
            {
                "element": _text(limits.element_chars) | {"description": "a short selector"},
                "text": _text(limits.text_chars, required=False),
            },
            ["element"],
            "A click on an element.",
        ),
        EventType.FORM_SUBMIT: (
            {"formId": _text(limits.form_chars, required=False)},
            [],
            "A form was submitted (never its values).",
        ),
        EventType.PAGE_TIME: (
            {
                "duration": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": limits.max_duration_ms,
                    "description": "time spent on the route, ms",
                }
            },
            ["duration"],
            "Time spent on a page.",
        ),
        EventType.ERROR: (
            {
                "message": _text(limits.message_chars),
                "source": _text(limits.source_chars, required=False),
                "stack": _text(limits.stack_chars, required=False),
            },
            ["message"],
            "A JavaScript error in the page.",
        ),
        EventType.CUSTOM: (
            {
                "name": _text(limits.name_chars),
                "data": {
                    "description": f"any JSON, at most {limits.data_bytes} bytes as JSON"
                    " (integers within 64 bits, nesting under 255 levels)"
                },
            },
            ["name"],
            "An event the app sends with tippen.track(name, data).",
        ),
        EventType.HEARTBEAT: (
            {
                "input": _nullable(
                    {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": MAX_INPUT_COUNT,
                        "description": "input events since the last heartbeat (a count)",
                    }
                ),
                "focused": _nullable({"type": "boolean", "description": "the page has focus"}),
            },
            [],
            "The page is still open (sent while visible).",
        ),
        EventType.VISIBILITY: (
            {"state": {"enum": list(VISIBILITY_STATES)}},
            ["state"],
            "The tab became visible or hidden, or the page is being closed.",
        ),
    }
    out: dict[str, Schema] = {}
    for etype in EventType:
        own, required, description = fields[etype]
        properties: dict[str, Schema] = {
            "type": {"const": etype.value},
            "timestamp": _ms(
                "when it happened, client clock, ms since the epoch; within the skew limit"
                " of server time once corrected by sentAt"
            ),
            "route": _text(limits.route_chars, required=False),
            **own,
        }
        out[_event_name(etype)] = {
            "type": "object",
            "description": description,
            "properties": properties,
            "required": ["type", "timestamp", *required],
        }
    return out


def _event_name(etype: EventType) -> str:
    return "".join(part.title() for part in etype.value.split("_")) + "Event"


def _batch_schema(limits: Limits, max_body_bytes: int) -> Schema:
    def identifier(max_chars: int, description: str, *, required: bool = True) -> Schema:
        schema: Schema = {
            "type": "string",
            "maxLength": max_chars,
            "pattern": _identifier_pattern(required=required),
            "description": description + "; no control, bidi or zero-width characters",
        }
        if required:
            return schema | {"minLength": 1}
        return _nullable(schema)

    return {
        "type": "object",
        "description": f"One user's batch, at most {max_body_bytes} bytes of JSON.",
        "properties": {
            "apiKey": identifier(limits.api_key_chars, "the tenant's public API key"),
            "userId": identifier(limits.user_id_chars, "the signed-in user's id in your app"),
            "userEmail": identifier(limits.email_chars, "their email", required=False),
            "userName": identifier(
                limits.user_name_chars, "their name, as support staff see it", required=False
            ),
            "subscriptionTier": {"enum": list(TIERS)},
            "sentAt": _nullable(_ms("when the batch left the browser (client clock)")),
            "batchId": identifier(
                limits.batch_id_chars,
                "makes retries idempotent: a batch id seen before is not stored again",
                required=False,
            ),
            "userHash": _nullable(
                {
                    "type": "string",
                    "maxLength": 256,
                    "description": "HMAC-SHA256 of userId with the tenant's identity secret,"
                    " 64 hex digits (identity verification)",
                }
            ),
            "inviteAnswer": _nullable(
                {
                    "type": "object",
                    "description": "the page's answer to a video call invitation"
                    " (tippen-invite.js, in an empty batch without batchId)",
                    "properties": {
                        "id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                        "answer": {"enum": list(INVITE_ANSWERS)},
                    },
                    "required": ["id", "answer"],
                }
            ),
            "events": {
                "type": "array",
                "maxItems": limits.max_events,
                "items": {
                    "oneOf": [_ref(_event_name(t)) for t in EventType],
                    "discriminator": {
                        "propertyName": "type",
                        "mapping": {
                            t.value: f"#/components/schemas/{_event_name(t)}" for t in EventType
                        },
                    },
                },
            },
        },
        "required": ["apiKey", "userId", "subscriptionTier", "events"],
    }


def _error_schema() -> Schema:
    return {
        "type": "object",
        "properties": {
            "success": {"const": False},
            "error": {
                "type": "object",
                "properties": {
                    "code": {
                        "anyOf": [
                            {"enum": sorted(ERROR_CODES)},
                            {"type": "string", "pattern": "^http_[0-9]{3}$"},
                        ],
                        "description": "; ".join(f"{k}: {v}" for k, v in ERROR_CODES.items()),
                    },
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"], "description": "the field at fault"},
                },
                "required": ["code", "message", "field"],
            },
        },
        "required": ["success", "error"],
    }


def _admin_schemas() -> dict[str, Schema]:
    ms = {"type": ["integer", "null"]}
    trigger = {
        "type": "object",
        "properties": {
            "trigger": {"type": "string"},
            "title": {"type": "string"},
            "since": ms,
            "reason": {"type": ["string", "null"]},
        },
        "required": ["trigger", "title"],
    }
    user = {
        "type": "object",
        "description": "A live user (live: true) or a stored summary (live: false).",
        "properties": {
            "userId": {"type": "string"},
            "email": {"type": ["string", "null"]},
            "tier": {"enum": list(TIERS)},
            "live": {"type": "boolean"},
            "presence": {"enum": ["active", "idle", "hidden", "away", "gone"]},
            "presenceSince": ms,
            "currentRoute": {"type": ["string", "null"]},
            "lastEventAt": ms,
            "totalEvents": {"type": "integer"},
            "totalErrors": {"type": "integer"},
            "needsSupport": {"type": "boolean"},
            "triggers": {"type": "array", "items": trigger},
        },
        "required": ["userId", "tier", "live", "presence", "needsSupport", "triggers"],
    }
    stored_event = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "type": {"enum": [t.value for t in EventType]},
            "timestamp": {"type": "integer"},
            "clientTimestamp": {"type": "integer"},
            "receivedAt": {"type": "integer"},
            "route": {"type": ["string", "null"]},
        },
        "required": ["id", "type", "timestamp", "clientTimestamp", "receivedAt", "route"],
    }
    alert = {
        "type": "object",
        "properties": {
            "id": {"type": ["integer", "null"]},
            "userId": {"type": "string"},
            "trigger": {"type": "string"},
            "status": {"enum": ["open", "acknowledged", "resolved"]},
        },
        "required": ["id", "userId", "trigger", "status"],
    }
    call = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "userId": {"type": "string"},
            "startedBy": {"type": "string"},
            "url": {"type": "string"},
            "startedAt": {"type": "integer"},
        },
        "required": ["id", "userId", "startedBy", "url", "startedAt"],
    }
    page = {
        "type": "object",
        "properties": {
            "events": {"type": "array", "items": _ref("StoredEvent")},
            "nextBefore": {
                "type": ["integer", "null"],
                "description": "pass as before for the next page; null: no more",
            },
        },
        "required": ["events", "nextBefore"],
    }
    return {
        "User": user,
        "StoredEvent": stored_event,
        "Alert": alert,
        "VideoCall": call,
        "EventPage": page,
    }


def _json_body(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str, *, retry_after: bool = False) -> Schema:
    response = _json_body(_ref("Error"), description)
    if retry_after:
        response["headers"] = {
            "Retry-After": {
                "required": True,
                "description": "seconds to wait before trying again",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        }
    return response


def _html(description: str) -> Schema:
    return {"description": description, "content": {HTML: {"schema": {"type": "string"}}}}


def _redirect(description: str) -> Schema:
    return {
        "description": description,
        "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
    }


def _query(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


USER_ID_QUERY = _query(
    "id",
    {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID_CHARS},
    "the user's id (in the query: ids may hold /)",
    required=True,
)
LIMIT_QUERY = _query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
    "page size",
)
BEFORE_QUERY = _query(
    "before", {"type": "integer", "minimum": 1}, "the nextBefore of the previous page"
)
ADMIN: list[dict[str, list[str]]] = [{"adminSession": []}]
USER_ID_BODY: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID_CHARS}


def _admin_op(
    summary: str,
    ok: Schema,
    *,
    params: list[Schema] | None = None,
    body: bool = False,
    not_found: bool = True,
    extra: dict[str, Schema] | None = None,
    body_schema: Schema | None = None,
) -> Schema:
    responses: dict[str, Schema] = {
        "200": _json_body(ok, "done"),
        "400": _error("invalid_field or invalid_json: a parameter or the body is wrong"),
        "401": _error("not_logged_in"),
    }
    if not_found:
        responses["404"] = _error("not_found: no such user (or alert) of this tenant")
    if body:
        responses["403"] = _error("origin_not_allowed: a write from another site")
        responses["415"] = _error("unsupported_media_type: send application/json")
    responses |= extra or {}
    op: Schema = {
        "summary": summary,
        "tags": ["admin"],
        "security": ADMIN,
        "parameters": params or [],
        "responses": responses,
    }
    if body:
        schema = body_schema or _obj({"userId": USER_ID_BODY})
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
    return op


def _csv_op(summary: str, params: list[Schema]) -> Schema:
    op = _admin_op(summary, {}, params=params, not_found=False)
    op["responses"]["200"] = {
        "description": "streamed, with a header row (Content-Disposition: attachment)",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    return op


def _obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def _ingest_paths(limits: Limits, max_body_bytes: int) -> dict[str, Schema]:
    batch_content = {
        JSON: {"schema": _ref("Batch")},
        "text/plain": {
            "schema": {
                "type": "string",
                "contentMediaType": JSON,
                "contentSchema": _ref("Batch"),
                "description": "the same JSON, as navigator.sendBeacon sends it",
            }
        },
    }
    track = {
        "summary": "Store one batch of events; answered only after the rows are committed",
        "tags": ["ingest"],
        "parameters": [
            {
                "name": "Origin",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "the page's origin, which must be allowed for the tenant"
                " (required unless the tenant's require_origin is off)",
            }
        ],
        "requestBody": {"required": True, "content": batch_content},
        "responses": {
            "200": _json_body(
                {
                    "type": "object",
                    "properties": {
                        "success": {"const": True},
                        "stored": {"type": "integer", "minimum": 0},
                        "analyzed": {
                            "type": "boolean",
                            "description": "false for an empty batch without batchId: the"
                            " invitation script's question, never stored",
                        },
                        "duplicate": {
                            "const": True,
                            "description": "the batchId was seen before; nothing stored again",
                        },
                        "answered": {
                            "type": "boolean",
                            "description": "inviteAnswer was taken (false: that invitation"
                            " is no longer waiting)",
                        },
                        "invite": {
                            "type": "object",
                            "description": "a video call invitation waiting for this user",
                            "properties": {
                                "id": {"type": "integer"},
                                "agent": {"type": "string"},
                                "url": {"type": "string"},
                                "expiresAt": {"type": "integer"},
                                "expiresInMs": {"type": "integer", "minimum": 0},
                            },
                            "required": ["id", "agent", "url", "expiresAt", "expiresInMs"],
                        },
                    },
                    "required": ["success", "stored", "analyzed"],
                },
                "committed",
            )
            | {
                "headers": {
                    "X-Tippen-Poll": {
                        "required": False,
                        "description": "the user is flagged: ask for call invitations"
                        " (an empty batch) every this many ms",
                        "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    }
                }
            },
            "400": _error("the batch is invalid: nothing of it is stored"),
            "401": _error("unknown_api_key, or user_hash_required"),
            "403": _error("origin_not_allowed, origin_required or bad_user_hash"),
            "408": _error("body_timeout"),
            "413": _error(
                f"body_too_large (over {max_body_bytes} bytes) or too_many_events"
                f" (over {limits.max_events})"
            ),
            "415": _error("unsupported_media_type"),
            "429": _error("rate_limited or live_user_limit", retry_after=True),
            "503": _error("overloaded", retry_after=True),
        },
    }
    preflight = {
        "summary": "CORS preflight: allowed only for origins some tenant lists",
        "tags": ["ingest"],
        "responses": {
            "204": {"description": "allowed; the Access-Control-Allow-* headers say what"},
            "403": _error("origin_not_allowed"),
        },
    }
    return {TRACK_PATH: {"post": track, "options": preflight}}


def _admin_paths() -> dict[str, Schema]:
    user_list = _obj(
        {
            "serverTime": {"type": "integer"},
            "users": {"type": "array", "items": _ref("User")},
            "truncated": {"type": "boolean"},
        }
    )
    one_user = _obj(
        {
            "serverTime": {"type": "integer"},
            "userId": {"type": "string"},
            "live": _nullable(_ref("User")),
            "summary": _nullable(_ref("User")),
            "videoCalls": {"type": "array", "items": _ref("VideoCall")},
        }
    )
    journey = _obj(
        {"serverTime": {"type": "integer"}, "live": {"type": "boolean"}},
    )
    acknowledged = _obj({"success": {"const": True}, "userId": {"type": "string"}, "by": {}})
    erased = _obj(
        {
            "success": {"const": True},
            "userId": {"type": "string"},
            "wasLive": {"type": "boolean"},
            "erased": {"type": "object"},
        }
    )
    alerts = _obj(
        {
            "source": {"enum": ["stored", "live"]},
            "alerts": {"type": "array", "items": _ref("Alert")},
            "nextBefore": {"type": ["integer", "null"]},
        }
    )
    return {
        "/api/admin/me": {
            "get": _admin_op(
                "Who is logged in, for which tenant, until when",
                _obj(
                    {
                        "tenant": _obj({"id": {"type": "integer"}, "name": {"type": "string"}}),
                        "name": {"type": "string"},
                        "expiresAt": {"type": "integer"},
                    }
                ),
                not_found=False,
            )
        },
        "/api/admin/users": {
            "get": _admin_op(
                "Live and recent users, needing support first",
                user_list,
                not_found=False,
                params=[
                    _query("scope", {"enum": ["live", "recent"]}, "live only, or with stored"),
                    _query("tier", {"enum": list(TIERS)}, "one tier only"),
                    _query("needsSupport", {"type": "boolean"}, "needing support or not"),
                    _query(
                        "activeWithinMin",
                        {"type": "integer", "minimum": 1, "maximum": 60 * 24 * 366},
                        "active within this many minutes",
                    ),
                    _query("q", {"type": "string"}, "part of the user id or email"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 200},
                        "most users",
                    ),
                ],
            )
        },
        "/api/admin/user": {
            "get": _admin_op(
                "One user: live state, stored summary, video calls",
                one_user,
                params=[USER_ID_QUERY],
            ),
            "delete": _admin_op(
                "Erase everything stored about the user (as POST /api/admin/user/erase)",
                erased,
                params=[USER_ID_QUERY],
                not_found=False,
                extra={"403": _error("origin_not_allowed: a write from another site")},
            ),
        },
        "/api/admin/user/events": {
            "get": _admin_op(
                "The user's events, newest first, in pages",
                _ref("EventPage"),
                not_found=False,
                params=[
                    USER_ID_QUERY,
                    BEFORE_QUERY,
                    LIMIT_QUERY,
                    _query(
                        "type",
                        {"type": "string"},
                        "event types, comma-separated: " + ", ".join(t.value for t in EventType),
                    ),
                ],
            )
        },
        "/api/admin/user/errors": {
            "get": _admin_op(
                "The user's errors, newest first, in pages",
                _ref("EventPage"),
                not_found=False,
                params=[USER_ID_QUERY, BEFORE_QUERY, LIMIT_QUERY],
            )
        },
        "/api/admin/user/journey": {
            "get": _admin_op(
                "The user's route journey: each stay on a page, and totals per route",
                journey,
                not_found=False,
                params=[USER_ID_QUERY],
            )
        },
        "/api/admin/user/acknowledge": {
            "post": _admin_op(
                "The admin has seen the user's need: it clears, and so do their alerts",
                acknowledged,
                body=True,
            )
        },
        "/api/admin/user/video-call": {
            "post": _admin_op(
                "Start a video call: the link from the tenant's template, recorded",
                _obj({"success": {"const": True}, "call": _ref("VideoCall")}),
                body=True,
                extra={"409": _error("bad_video_call_template")},
            )
        },
        "/api/admin/user/video-calls": {
            "get": _admin_op(
                "Video calls started with the user, newest first",
                _obj({"calls": {"type": "array", "items": _ref("VideoCall")}}),
                not_found=False,
                params=[USER_ID_QUERY],
            )
        },
        "/api/admin/user/erase": {
            "post": _admin_op(
                "Erase everything stored about the user", erased, body=True, not_found=False
            )
        },
        "/api/admin/alerts": {
            "get": _admin_op(
                "Alerts, newest first",
                alerts,
                not_found=False,
                params=[
                    _query("status", {"enum": ["open", "acknowledged", "resolved"]}, "one status"),
                    _query(
                        "userId",
                        {"type": "string", "maxLength": MAX_USER_ID_CHARS},
                        "one user's alerts",
                    ),
                    BEFORE_QUERY,
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
                        "page size",
                    ),
                ],
            )
        },
        "/api/admin/alerts/{alert_id}/acknowledge": {
            "post": _admin_op(
                "Acknowledge one alert (and the user's other unresolved ones)",
                _obj({"success": {"const": True}, "alert": _ref("Alert")}),
                params=[
                    {
                        "name": "alert_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    }
                ],
                extra={"403": _error("origin_not_allowed: a write from another site")},
            )
        },
        "/api/admin/users/acknowledge": {
            "post": _admin_op(
                "Acknowledge several users at once (the queue's bulk acknowledge)",
                _obj(
                    {
                        "success": {"const": True},
                        "acknowledged": {"type": "array", "items": {"type": "string"}},
                        "notFound": {"type": "array", "items": {"type": "string"}},
                        "by": {"type": "string"},
                    }
                ),
                body=True,
                not_found=False,
                body_schema=_obj(
                    {
                        "userIds": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BULK_USERS,
                            "items": USER_ID_BODY,
                        }
                    }
                ),
            )
        },
        "/api/admin/user/claim": {
            "post": _admin_op(
                '"I\'m on it": the logged-in agent claims the user',
                _obj(
                    {
                        "success": {"const": True},
                        "userId": {"type": "string"},
                        "claimedBy": {"type": "string"},
                        "takenOverFrom": {"type": ["string", "null"]},
                    }
                ),
                body=True,
                body_schema=_obj(
                    {"userId": USER_ID_BODY, "force": {"type": "boolean"}}, ["userId"]
                ),
                extra={"409": _error("claimed (someone else is on it) or nothing_to_claim")},
            )
        },
        "/api/admin/user/unclaim": {
            "post": _admin_op(
                "Release the claim on the user",
                _obj(
                    {
                        "success": {"const": True},
                        "userId": {"type": "string"},
                        "was": {"type": ["string", "null"]},
                    }
                ),
                body=True,
            )
        },
        "/api/admin/queue": {
            "get": _admin_op(
                "The needs-help queue: one row per flagged live user, first to help first",
                _obj(
                    {
                        "serverTime": {"type": "integer"},
                        "total": {"type": "integer"},
                        "offset": {"type": "integer"},
                        "users": {"type": "array", "items": _ref("User")},
                    }
                ),
                not_found=False,
                params=[
                    _query("tier", {"enum": list(TIERS)}, "one tier only"),
                    _query("trigger", {"enum": [t.value for t in Trigger]}, "one trigger only"),
                    _query("unclaimed", {"type": "boolean"}, "only users nobody has claimed"),
                    LIMIT_QUERY,
                    _query("offset", {"type": "integer", "minimum": 0}, "rows to skip"),
                ],
            )
        },
        "/api/admin/stats/response": {
            "get": _admin_op(
                "Time to first response against the 10-minute goal, today and last 7 days",
                _obj(
                    {
                        "serverTime": {"type": "integer"},
                        "goalMs": {"type": "integer"},
                        "today": {"type": "object"},
                        "last7Days": {"type": "object"},
                    }
                ),
                not_found=False,
                params=[
                    _query(
                        "tzOffsetMin",
                        {"type": "integer", "minimum": -24 * 60, "maximum": 24 * 60},
                        "minutes behind UTC (JavaScript's getTimezoneOffset()), for today",
                    )
                ],
            )
        },
        "/api/admin/export/alerts.csv": {
            "get": _csv_op(
                "Every alert of the tenant as CSV, oldest first, with response times",
                [
                    _query("from", {"type": "integer", "minimum": 0}, "opened at or after (ms)"),
                    _query("to", {"type": "integer", "minimum": 0}, "opened before (ms)"),
                ],
            )
        },
        "/api/admin/export/users.csv": {
            "get": _csv_op("Every stored user of the tenant as CSV, by user id", [])
        },
        "/api/admin/settings": {
            "get": _admin_op(
                "The tenant's settings, secrets masked",
                {
                    "type": "object",
                    "properties": {
                        "tenant": {"type": "string"},
                        "triggers": {"type": "array", "items": {"type": "object"}},
                        "origins": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["tenant", "triggers", "origins"],
                },
                not_found=False,
            )
        },
        "/api/admin/stats": {
            "get": _admin_op(
                "Figures for the summary cards",
                {
                    "type": "object",
                    "properties": {
                        "serverTime": {"type": "integer"},
                        "eventsLastHour": {"type": "integer"},
                        "errorsLastHour": {"type": "integer"},
                        "live": {"type": "integer"},
                        "needSupport": {"type": "integer"},
                    },
                    "required": ["serverTime", "eventsLastHour", "errorsLastHour", "live"],
                },
                not_found=False,
            )
        },
    }


def _login_paths() -> dict[str, Schema]:
    login_fields = {
        "token": {"type": "string", "maxLength": 256},
        "name": {"type": "string", "description": "the admin's name, as others see it"},
    }
    return {
        "/login": {
            "get": {
                "summary": "The login form",
                "tags": ["dashboard"],
                "parameters": [_query("next", {"type": "string"}, "where to go after login")],
                "responses": {
                    "200": _html("the form"),
                    "303": _redirect("already logged in: on to next"),
                },
            },
            "post": {
                "summary": "Log in with an admin or agent token; sets the session cookie",
                "tags": ["dashboard"],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": {"type": "object", "properties": login_fields}},
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {**login_fields, "next": {"type": "string"}},
                            }
                        },
                    },
                },
                "responses": {
                    "200": _json_body(
                        _obj({"success": {"const": True}, "tenant": {"type": "string"}}),
                        "logged in (JSON body); the cookie is set",
                    ),
                    "303": _redirect("logged in (form); the cookie is set"),
                    "400": _error("http_400: a body the form parser refuses"),
                    "401": {
                        "description": "bad_token (JSON), or the form again with a message",
                        "content": {
                            JSON: {"schema": _ref("Error")},
                            HTML: {"schema": {"type": "string"}},
                        },
                    },
                    "403": _error("origin_not_allowed"),
                    "413": _error("body_too_large"),
                    "429": _error("rate_limited: too many attempts", retry_after=True),
                },
            },
        },
        "/logout": {
            "post": {
                "summary": "End the session: refused from now on, open dashboards close",
                "tags": ["dashboard"],
                "responses": {
                    "200": _json_body(_obj({"success": {"const": True}}), "JSON request"),
                    "303": _redirect("to the login page"),
                    "403": _error("origin_not_allowed"),
                },
            }
        },
    }


def _page_paths() -> dict[str, Schema]:
    to_login = _redirect("not logged in: to /login?next=...")
    file_ok = {
        "description": "the file (gzipped if accepted; 304 if the ETag matches)",
        "content": {"application/javascript": {"schema": {"type": "string"}}},
    }
    not_found = _error("not_found")
    demo_off = _error("not_found: the service runs without --demo")
    return {
        "/": {
            "get": {
                "summary": "The front door: on to the dashboard",
                "tags": ["dashboard"],
                "responses": {"303": _redirect("to /user-activity")},
            }
        },
        "/user-activity": {
            "get": {
                "summary": "The dashboard: live users, alerts, summary cards",
                "tags": ["dashboard"],
                "security": ADMIN,
                "responses": {"200": _html("the page"), "303": to_login},
            }
        },
        "/user-activity/{user_id}": {
            "get": {
                "summary": "One user's page: timeline, journey, errors, video call",
                "tags": ["dashboard"],
                "security": ADMIN,
                "parameters": [
                    {
                        "name": "user_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": _html("the page"), "303": to_login},
            }
        },
        "/static/admin/{name}": {
            "get": {
                "summary": "The dashboard's JavaScript and CSS",
                "tags": ["dashboard"],
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "the file",
                        "content": {
                            "application/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                            "image/svg+xml": {"schema": {"type": "string"}},
                        },
                    },
                    "304": {"description": "not modified"},
                    "404": not_found,
                },
            }
        },
        "/ws/admin": {
            "get": {
                "summary": "The dashboard's WebSocket: a snapshot, then live changes",
                "description": "A WebSocket (Upgrade: websocket) from this site's own pages"
                " (Origin checked), with the session cookie.",
                "tags": ["dashboard"],
                "security": ADMIN,
                "responses": {
                    "101": {"description": "upgraded"},
                    "400": _error("http_400: not a WebSocket request"),
                    "401": _error("not_logged_in"),
                    "403": _error("origin_not_allowed"),
                    "503": _error("unavailable"),
                },
            }
        },
        "/tippen-app-tracker.js": {
            "get": {
                "summary": "The tracker script, for any origin to embed",
                "tags": ["ingest"],
                "responses": {"200": file_ok, "304": {"description": "not modified"}},
            }
        },
        "/tippen-invite.js": {
            "get": {
                "summary": "The call invitation script the tracker loads while its user is flagged",
                "tags": ["ingest"],
                "responses": {"200": file_ok, "304": {"description": "not modified"}},
            }
        },
        "/demo/app": {
            "get": {
                "summary": "The sample app (serve --demo only)",
                "tags": ["demo"],
                "responses": {"200": _html("the app"), "404": demo_off, "503": _error("demo")},
            }
        },
        "/demo/app/{_route}": {
            "get": {
                "summary": "The sample app at one of its routes (serve --demo only)",
                "tags": ["demo"],
                "parameters": [
                    {"name": "_route", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": _html("the app"), "404": demo_off, "503": _error("demo")},
            }
        },
        "/demo/{name}": {
            "get": {
                "summary": "A file of the sample app (serve --demo only)",
                "tags": ["demo"],
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "the file",
                        "content": {
                            "application/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                        },
                    },
                    "304": {"description": "not modified"},
                    "404": demo_off,
                },
            }
        },
        "/demo/thresholds": {
            "post": {
                "summary": "The sample app's switch between short and default thresholds",
                "tags": ["demo"],
                "requestBody": {
                    "content": {JSON: {"schema": _obj({"short": {"type": "boolean"}})}}
                },
                "responses": {
                    "200": _json_body({"type": "object"}, "switched"),
                    "400": _error("invalid_field"),
                    "403": _error("origin_not_allowed"),
                    "404": demo_off,
                    "503": _error("demo_not_ready"),
                },
            }
        },
    }


def _operator_paths() -> dict[str, Schema]:
    return {
        "/healthz": {
            "get": {
                "summary": "Alive: the event loop answers",
                "tags": ["operator"],
                "responses": {
                    "200": _json_body(
                        _obj({"ok": {"const": True}, "store": {"type": "object"}}), "alive"
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Ready: recovered, the store and snapshot backend work",
                "description": "With the operator token the body adds checks (live users,"
                " recovery, backends).",
                "tags": ["operator"],
                "responses": {
                    code: _json_body(
                        {
                            "type": "object",
                            "properties": {
                                "ready": {"type": "boolean"},
                                "reason": {"type": "string"},
                                "checks": {"type": "object"},
                            },
                            "required": ["ready", "reason"],
                        },
                        what,
                    )
                    for code, what in (("200", "ready"), ("503", "not ready; reason says why"))
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (operator token only)",
                "tags": ["operator"],
                "security": [{"operatorToken": []}],
                "responses": {
                    "200": {
                        "description": "Prometheus text format (OpenMetrics if asked for)",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    },
                    "401": _error("operator_token_required"),
                },
            }
        },
        OPENAPI_PATH: {
            "get": {
                "summary": "This document",
                "tags": ["operator"],
                "responses": {"200": _json_body({"type": "object"}, "OpenAPI 3.1")},
            }
        },
    }


def build_openapi(settings: Settings, limits: Limits) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a service with these settings and batch limits."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tippen-rt",
            "version": __version__,
            "description": "Events from the tracker (ingest), the admin API behind the"
            " dashboard, the dashboard's pages, and the operator endpoints. Errors are"
            ' always {"success": false, "error": {"code", "message", "field"}}.',
        },
        "tags": [
            {"name": "ingest", "description": "what the tracker (or your server) sends"},
            {"name": "admin", "description": "the logged-in admin's tenant only"},
            {"name": "dashboard", "description": "pages, login, the WebSocket"},
            {"name": "operator", "description": "health, readiness, metrics"},
            {"name": "demo", "description": "the sample app of serve --demo"},
        ],
        "paths": {
            **_ingest_paths(limits, settings.max_body_bytes),
            **_login_paths(),
            **_admin_paths(),
            **_page_paths(),
            **_operator_paths(),
        },
        "components": {
            "schemas": {
                "Batch": _batch_schema(limits, settings.max_body_bytes),
                **_event_schemas(limits),
                "Error": _error_schema(),
                **_admin_schemas(),
            },
            "securitySchemes": {
                "adminSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "set by POST /login",
                },
                "operatorToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "TIPPEN_OPERATOR_TOKEN",
                },
            },
        },
    }


@openapi.get(OPENAPI_PATH)
async def openapi_document() -> Response:
    """This service's OpenAPI document (public: it holds no data and no secret)."""
    doc = current_app.extensions.get("tippen_openapi")
    if doc is None:
        svc = services()
        doc = current_app.extensions["tippen_openapi"] = build_openapi(svc.settings, svc.limits)
    return json_response(doc, 200, {"Cache-Control": "no-cache"})
