"""Event and batch types, and the strict validation of what trackers send.

Pure: no I/O, no clock of its own (the caller passes the server time), so it
tests without a server.  A batch is either wholly valid or rejected with a
:class:`BadInput` that names the problem; nothing of a rejected batch is kept.

The wire format (``POST /api/track/user-activity``)::

    {"apiKey": "client_...", "userId": "u1", "userEmail": "a@b.c",
     "userName": "Ann Lee",              # optional, shown as "Ann Lee (a@b.c)"
     "subscriptionTier": "free_trial" | "paid" | "enterprise",
     "sentAt": 1700000000000,            # optional, ms, for clock-skew correction
     "batchId": "b-...",                 # optional, makes retries idempotent
     "userHash": "hex hmac",             # optional, identity verification
     "inviteAnswer": {"id": 12, "answer": "joined" | "declined"},  # optional
     "events": [{"type": "route", "route": "/billing", "timestamp": 1700...}, ...]}
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeGuard

import orjson

__all__ = [
    "INTERACTION_TYPES",
    "INVITE_ANSWERS",
    "TIERS",
    "UNSAFE_IN_IDS",
    "BadInput",
    "Batch",
    "Event",
    "EventType",
    "Limits",
    "heartbeat_data",
    "log_safe",
    "parse_batch",
    "read_heartbeat_data",
    "validate_batch",
]


class EventType(enum.StrEnum):
    ROUTE = "route"
    CLICK = "click"
    FORM_SUBMIT = "form_submit"
    PAGE_TIME = "page_time"
    ERROR = "error"
    CUSTOM = "custom"
    HEARTBEAT = "heartbeat"
    VISIBILITY = "visibility"


#: Events that show the user doing something (DESIGN.md, "Support triggers").
INTERACTION_TYPES = frozenset(
    {EventType.ROUTE, EventType.CLICK, EventType.FORM_SUBMIT, EventType.CUSTOM}
)
_EVENT_TYPES = {t.value: t for t in EventType}
TIERS = ("free_trial", "paid", "enterprise")
VISIBILITY_STATES = ("visible", "hidden", "unload")


class BadInput(Exception):
    """A request that cannot be accepted; becomes a 4xx JSON error."""

    def __init__(self, code: str, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status = status

    def to_json(self) -> dict[str, Any]:
        """The error body: ``{"success": false, "error": {code, message, field}}``."""
        return {
            "success": False,
            "error": {"code": self.code, "message": self.message, "field": self.field},
        }


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits for one batch; the defaults are the documented ones."""

    max_events: int = 50
    max_clock_skew_ms: int = 24 * 3600 * 1000
    user_id_chars: int = 256
    email_chars: int = 320
    user_name_chars: int = 256
    api_key_chars: int = 128
    batch_id_chars: int = 128
    route_chars: int = 2048
    element_chars: int = 512
    text_chars: int = 256
    form_chars: int = 256
    name_chars: int = 256
    message_chars: int = 4096
    source_chars: int = 2048
    stack_chars: int = 8192
    data_bytes: int = 8192
    max_duration_ms: int = 7 * 24 * 3600 * 1000


DEFAULT_LIMITS = Limits()


class Event(NamedTuple):
    """One validated event. ``timestamp`` is skew-corrected server-frame ms.

    A named tuple rather than a frozen dataclass: ingest builds 50 of these
    per request, and a tuple is built several times faster.
    """

    type: EventType
    timestamp: int
    client_timestamp: int
    route: str | None = None
    element: str | None = None
    text: str | None = None
    form_id: str | None = None
    duration_ms: int | None = None
    message: str | None = None
    source: str | None = None
    stack: str | None = None
    name: str | None = None
    data: str | None = None  # JSON text of custom data
    visibility: str | None = None
    #: Heartbeats: real input events (pointer, keyboard, wheel, touch) since
    #: the previous heartbeat, and whether the page had focus; None if not said.
    input_count: int | None = None
    focused: bool | None = None

    @property
    def is_interaction(self) -> bool:
        """True for events that count as user activity."""
        return self.type in INTERACTION_TYPES


@dataclass(frozen=True, slots=True)
class Batch:
    """A validated batch from one user."""

    api_key: str
    user_id: str
    user_email: str | None
    tier: str
    events: tuple[Event, ...]
    received_at_ms: int
    sent_at_ms: int | None = None
    batch_id: str | None = None
    user_hash: str | None = None
    #: The user's display name (``userName``), shown as "Name (email)".
    user_name: str | None = None
    #: The page's answer to a video call invitation: (call id, ``joined`` or
    #: ``declined``), sent by ``tippen-invite.js``.
    invite_answer: tuple[int, str] | None = None

    @property
    def clock_offset_ms(self) -> int:
        """Server time minus client time, as measured by ``sentAt``."""
        return 0 if self.sent_at_ms is None else self.received_at_ms - self.sent_at_ms


def parse_batch(body: bytes, now_ms: int, limits: Limits = DEFAULT_LIMITS) -> Batch:
    """Decode JSON ``body`` and validate it (see :func:`validate_batch`).

    Most bodies take the fast path (``_fast_batch``: typed decoding, the same
    result); anything it does not take is validated here in full, so errors
    are always this module's.
    """
    try:
        return _fast_batch.fast_parse_batch(body, now_ms, limits)
    except _fast_batch.NotFast:
        pass
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadInput("invalid_json", f"body is not valid JSON: {exc}") from None
    return validate_batch(doc, now_ms, limits)


def validate_batch(doc: Any, now_ms: int, limits: Limits = DEFAULT_LIMITS) -> Batch:
    """Check every field of a decoded batch; raise :class:`BadInput` on the first problem."""
    if not isinstance(doc, dict):
        raise BadInput("invalid_batch", "batch must be a JSON object")
    api_key = _req_id(doc, "apiKey", limits.api_key_chars)
    user_id = _req_id(doc, "userId", limits.user_id_chars)
    email = _opt_id(doc, "userEmail", limits.email_chars)
    name = _opt_id(doc, "userName", limits.user_name_chars)
    if name is not None and not name.strip():
        name = None  # a blank name is no name: "(email)" would read as a mistake
    tier = doc.get("subscriptionTier")
    if tier not in TIERS:
        raise BadInput(
            "invalid_field",
            f"subscriptionTier must be one of {', '.join(TIERS)}",
            "subscriptionTier",
        )
    sent_at = _opt_ms(doc, "sentAt")
    batch_id = _opt_id(doc, "batchId", limits.batch_id_chars)
    user_hash = _opt_str(doc, "userHash", 256)
    invite_answer = _invite_answer(doc.get("inviteAnswer"))
    raw_events = doc.get("events")
    if not isinstance(raw_events, list):
        raise BadInput("invalid_field", "events must be an array", "events")
    if len(raw_events) > limits.max_events:
        raise BadInput(
            "too_many_events",
            f"a batch holds at most {limits.max_events} events, got {len(raw_events)}",
            "events",
            status=413,
        )
    offset = 0 if sent_at is None else now_ms - sent_at
    events = tuple(_event(raw, i, offset, now_ms, limits) for i, raw in enumerate(raw_events))
    return Batch(
        api_key=api_key,
        user_id=user_id,
        user_email=email,
        tier=tier,
        events=events,
        received_at_ms=now_ms,
        sent_at_ms=sent_at,
        batch_id=batch_id,
        user_hash=user_hash,
        user_name=name,
        invite_answer=invite_answer,
    )


#: What a page may answer a call invitation.
INVITE_ANSWERS = ("joined", "declined")


def _invite_answer(raw: Any) -> tuple[int, str] | None:
    if raw is None:
        return None
    call_id = raw.get("id") if isinstance(raw, dict) else None
    answer = raw.get("answer") if isinstance(raw, dict) else None
    if type(call_id) is not int or not 0 < call_id < 2**63 or answer not in INVITE_ANSWERS:
        raise BadInput(
            "invalid_field",
            'inviteAnswer must be {"id": call id, "answer": "joined" or "declined"}',
            "inviteAnswer",
        )
    return call_id, answer


def _event(raw: Any, i: int, offset: int, now_ms: int, limits: Limits) -> Event:
    if not isinstance(raw, dict):
        raise BadInput("invalid_event", f"events[{i}] must be an object", f"events[{i}]")
    type_name = raw.get("type")
    etype = _EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if etype is None:
        known = ", ".join(t.value for t in EventType)
        raise BadInput(
            "unknown_event_type",
            f"{_path(i, 'type')} {str(type_name)[:40]!r} is not one of {known}",
            _path(i, "type"),
        )
    client_ts = _req_ms(raw, "timestamp", i)
    ts = client_ts + offset
    if abs(ts - now_ms) > limits.max_clock_skew_ms:
        raise BadInput(
            "timestamp_out_of_range",
            f"{_path(i, 'timestamp')} is more than {limits.max_clock_skew_ms // 3_600_000} h "
            "away from server time",
            _path(i, "timestamp"),
        )
    route = _opt_str(raw, "route", limits.route_chars, i)
    if etype is EventType.ROUTE:
        if route is None:
            raise BadInput("missing_field", f"{_path(i, 'route')} is required", _path(i, "route"))
        return Event(etype, ts, client_ts, route)
    if etype is EventType.HEARTBEAT:
        return _heartbeat(raw, i, ts, client_ts, route)
    if etype is EventType.CLICK:
        element = _req_str(raw, "element", limits.element_chars, i)
        text = _opt_str(raw, "text", limits.text_chars, i)
        return Event(etype, ts, client_ts, route, element, text)
    # Every other type returns here, positionally: building the tuple is most
    # of what validation costs per event.
    if etype is EventType.FORM_SUBMIT:
        form_id = _opt_str(raw, "formId", limits.form_chars, i)
        return Event(etype, ts, client_ts, route, None, None, form_id)
    if etype is EventType.PAGE_TIME:
        duration = raw.get("duration")
        if not _is_number(duration) or duration < 0 or duration > limits.max_duration_ms:
            raise BadInput(
                "invalid_field",
                f"{_path(i, 'duration')} must be a number of ms from 0 to {limits.max_duration_ms}",
                _path(i, "duration"),
            )
        return Event(etype, ts, client_ts, route, duration_ms=int(duration))
    if etype is EventType.ERROR:
        message = _req_str(raw, "message", limits.message_chars, i)
        source = _opt_str(raw, "source", limits.source_chars, i)
        stack = _opt_str(raw, "stack", limits.stack_chars, i)
        return Event(etype, ts, client_ts, route, message=message, source=source, stack=stack)
    if etype is EventType.CUSTOM:
        name = _req_str(raw, "name", limits.name_chars, i)
        return Event(etype, ts, client_ts, route, name=name, data=_custom_data(raw, i, limits))
    assert etype is EventType.VISIBILITY
    state = raw.get("state")
    if state not in VISIBILITY_STATES:
        raise BadInput(
            "invalid_field",
            f"{_path(i, 'state')} must be one of {', '.join(VISIBILITY_STATES)}",
            _path(i, "state"),
        )
    return Event(etype, ts, client_ts, route, visibility=state)


#: Most input events one heartbeat may report (a count, never content).
MAX_INPUT_COUNT = 1_000_000


def _heartbeat(raw: Mapping[str, Any], i: int, ts: int, client_ts: int, route: str | None) -> Event:
    count = raw.get("input")
    focused = raw.get("focused")
    if count is None and focused is None:
        return Event(EventType.HEARTBEAT, ts, client_ts, route)
    if count is not None and (type(count) is not int or not 0 <= count <= MAX_INPUT_COUNT):
        raise BadInput(
            "invalid_field",
            f"{_path(i, 'input')} must be a whole number from 0 to {MAX_INPUT_COUNT}",
            _path(i, "input"),
        )
    if focused is not None and not isinstance(focused, bool):
        raise BadInput(
            "invalid_field", f"{_path(i, 'focused')} must be true or false", _path(i, "focused")
        )
    return Event(
        EventType.HEARTBEAT,
        ts,
        client_ts,
        route,
        data=heartbeat_data(count, focused),
        input_count=count,
        focused=focused,
    )


def heartbeat_data(count: int | None, focused: bool | None) -> str:
    """What a heartbeat stores in ``event_data``: ``{"input": n, "focused": b}`` (JSON)."""
    doc: dict[str, Any] = {}
    if count is not None:
        doc["input"] = count
    if focused is not None:
        doc["focused"] = focused
    return orjson.dumps(doc).decode()


def read_heartbeat_data(data: str) -> tuple[int | None, bool | None]:
    """``(input count, focused)`` back from a stored heartbeat's ``event_data``."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    count, focused = doc.get("input"), doc.get("focused")
    return (
        count if type(count) is int else None,
        focused if isinstance(focused, bool) else None,
    )


def _custom_data(raw: Mapping[str, Any], i: int, limits: Limits) -> str | None:
    if "data" not in raw or raw["data"] is None:
        return None
    try:
        text = orjson.dumps(raw["data"])
    except (TypeError, orjson.JSONEncodeError):
        # orjson refuses integers beyond 64 bits and nesting deeper than 254.
        raise BadInput(
            "invalid_field", f"{_path(i, 'data')} cannot be stored as JSON", _path(i, "data")
        ) from None
    if len(text) > limits.data_bytes:
        raise BadInput(
            "field_too_long",
            f"{_path(i, 'data')} is {len(text)} bytes as JSON; the limit is {limits.data_bytes}",
            _path(i, "data"),
        )
    return text.decode()


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _path(where: int | None, key: str) -> str:
    """The field's name in error messages: ``events[3].route``, or ``userId``."""
    return key if where is None else f"events[{where}].{key}"


#: What identifiers (apiKey, userId, userEmail, userName, batchId) may not hold, because
#: they are shown and logged as who someone is: C0 and C1 controls (newline and
#: tab too) and DEL, the line and paragraph separators, bidi controls (U+061C,
#: U+200E/F, U+202A-E, U+2066-9) and zero-width characters (U+200B-D, U+2060,
#: U+FEFF).  ``ann@example.com\u200b`` or ``\u202emoc.elpmaxe@nna`` would look
#: like someone else.  Free text (messages, stacks, routes, element text) may
#: hold them: it is escaped where logged (:func:`log_safe`) and shown isolated.
#: One search per identifier, a handful per batch: never per event field.
UNSAFE_IN_IDS = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)


def _req_id(doc: Mapping[str, Any], key: str, max_chars: int) -> str:
    value = _req_str(doc, key, max_chars)
    if UNSAFE_IN_IDS.search(value) is not None:
        raise _unsafe_id(key, value)
    return value


def _opt_id(doc: Mapping[str, Any], key: str, max_chars: int) -> str | None:
    value = _opt_str(doc, key, max_chars)
    if value is not None and UNSAFE_IN_IDS.search(value) is not None:
        raise _unsafe_id(key, value)
    return value


def _unsafe_id(key: str, value: str) -> BadInput:
    found = UNSAFE_IN_IDS.search(value)
    assert found is not None
    return BadInput(
        "invalid_field",
        f"{key} must not contain control, bidi or zero-width characters"
        f" (U+{ord(found.group()):04X} at position {found.start()})",
        key,
    )


def log_safe(text: str, max_chars: int = 300) -> str:
    """``text`` for a log line: the characters identifiers may not hold written as
    escapes (a newline as ``\\n``, U+202E as ``\\u202e``), so user-supplied text
    can neither start a forged line nor reorder one; clipped to ``max_chars``."""
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    if UNSAFE_IN_IDS.search(text) is None:
        return text
    return UNSAFE_IN_IDS.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def _req_str(doc: Mapping[str, Any], key: str, max_chars: int, where: int | None = None) -> str:
    value = doc.get(key)
    if value is None:
        raise BadInput("missing_field", f"{_path(where, key)} is required", _path(where, key))
    text = _check_str(value, key, max_chars, where)
    if not text.strip():
        raise BadInput("invalid_field", f"{_path(where, key)} must not be empty", _path(where, key))
    return text


def _opt_str(
    doc: Mapping[str, Any], key: str, max_chars: int, where: int | None = None
) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    return _check_str(value, key, max_chars, where)


def _check_str(value: Any, key: str, max_chars: int, where: int | None) -> str:
    if type(value) is str and len(value) <= max_chars and "\x00" not in value:
        return value  # the common case, checked in one go
    if not isinstance(value, str):
        raise BadInput("invalid_field", f"{_path(where, key)} must be a string", _path(where, key))
    if len(value) > max_chars:
        raise BadInput(
            "field_too_long",
            f"{_path(where, key)} is {len(value)} characters; the limit is {max_chars}",
            _path(where, key),
        )
    if "\x00" in value:
        raise BadInput(
            "invalid_field", f"{_path(where, key)} must not contain NUL", _path(where, key)
        )
    return value


_MS_LIMIT = 253_402_300_800_000  # year 10000 in ms since the epoch
#: Times (timestamp, sentAt) are below this: year 10000 in ms since the epoch.
MAX_TIMESTAMP_MS = _MS_LIMIT


def _opt_ms(doc: Mapping[str, Any], key: str) -> int | None:
    if doc.get(key) is None:
        return None
    return _req_ms(doc, key, None)


def _req_ms(doc: Mapping[str, Any], key: str, where: int | None) -> int:
    value = doc.get(key)
    if type(value) is int and 0 <= value < _MS_LIMIT:
        return value  # the common case: no float or bool checks needed
    # 0 .. year 9999 in ms; anything else is not a time.
    if not _is_number(value) or not 0 <= value < _MS_LIMIT:
        raise BadInput(
            "invalid_field",
            f"{_path(where, key)} must be a time in milliseconds since the epoch",
            _path(where, key),
        )
    return int(value)


# At the end: the fast path is built from this module's types and limits.
from . import _fast_batch  # noqa: E402
