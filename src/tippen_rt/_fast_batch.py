"""The fast path of :func:`tippen_rt.events.parse_batch`: msgspec's typed decoding.

Decoding straight into typed structs (with the length and range limits as
constraints) does in C most of what ``validate_batch`` does in Python for
every field of every event.  This path only ever *accepts*: whatever it does
not accept for certain (a wrong type, a float where an int is usual, a limit
passed, an unknown event type or field, anything unusual) raises :class:`NotFast`, and
the caller runs the full validator on the same body, so every error keeps
exactly the code, message and field that are documented.  What it accepts, it
turns into the very ``Batch`` the validator would build (proven by a
hypothesis equivalence test, ``tests/unit/test_fast_batch.py``).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

import msgspec
import orjson

from .events import (
    MAX_INPUT_COUNT,
    TIERS,
    UNSAFE_IN_IDS,
    VISIBILITY_STATES,
    Batch,
    Event,
    EventType,
    Limits,
    heartbeat_data,
)

__all__ = ["NotFast", "fast_parse_batch"]

#: Times in ms since the epoch, as the validator accepts them (up to year 10000).
_MS_LIMIT = 253_402_300_800_000


class NotFast(Exception):
    """The fast path does not take this body: validate it in full."""


@functools.cache
def _decoder(limits: Limits) -> msgspec.json.Decoder[Any]:
    """A typed JSON decoder for batches under ``limits`` (one per Limits)."""

    def text(n: int) -> Any:
        return Annotated[str, msgspec.Meta(max_length=n)]

    ms = Annotated[int, msgspec.Meta(ge=0, lt=_MS_LIMIT)]
    route = text(limits.route_chars)
    # Unknown fields are refused, not skipped: a field this path does not know
    # (``inviteAnswer``, or the next one the validator learns) must reach the
    # validator rather than vanish here.
    kw: dict[str, Any] = {
        "tag_field": "type",
        "frozen": True,
        "array_like": False,
        "forbid_unknown_fields": True,
    }

    def event(tag: str, fields: list[Any]) -> Any:
        base: list[Any] = [("timestamp", ms), *fields]
        if not any(name == "route" for name, *_ in fields):
            base.append(("route", route | None, None))
        return msgspec.defstruct(f"_{tag}", base, tag=tag, **kw)

    def field(name: str, tp: Any) -> tuple[str, Any, Any]:
        """An optional field: None when absent."""
        return (name, tp, None)

    events = (
        event("route", [("route", route)]),
        event(
            "click",
            [
                ("element", text(limits.element_chars)),
                field("text", text(limits.text_chars) | None),
            ],
        ),
        event("form_submit", [field("formId", text(limits.form_chars) | None)]),
        event(
            "page_time",
            [("duration", Annotated[int, msgspec.Meta(ge=0, le=limits.max_duration_ms)])],
        ),
        event(
            "error",
            [
                ("message", text(limits.message_chars)),
                field("source", text(limits.source_chars) | None),
                field("stack", text(limits.stack_chars) | None),
            ],
        ),
        event("custom", [("name", text(limits.name_chars)), field("data", Any)]),
        event(
            "heartbeat",
            [
                field("input", Annotated[int, msgspec.Meta(ge=0, le=MAX_INPUT_COUNT)] | None),
                field("focused", bool | None),
            ],
        ),
        event("visibility", [("state", Literal[VISIBILITY_STATES])]),
    )
    union: Any = events[0]
    for e in events[1:]:
        union = union | e
    batch = msgspec.defstruct(
        "_Batch",
        [
            ("apiKey", text(limits.api_key_chars)),
            ("userId", text(limits.user_id_chars)),
            ("subscriptionTier", Literal[TIERS]),
            (
                "events",
                Annotated[list[union], msgspec.Meta(max_length=limits.max_events)],
            ),
            field("userEmail", text(limits.email_chars) | None),
            field("userName", text(limits.user_name_chars) | None),
            field("sentAt", ms | None),
            field("batchId", text(limits.batch_id_chars) | None),
            field("userHash", text(256) | None),
        ],
        frozen=True,
        forbid_unknown_fields=True,
    )
    return msgspec.json.Decoder(batch)


def fast_parse_batch(body: bytes, now_ms: int, limits: Limits) -> Batch:
    """The batch in ``body``, as ``validate_batch`` would build it; :class:`NotFast`
    for anything this path does not take."""
    try:
        doc = _decoder(limits).decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise NotFast from None
    api_key, user_id, email, batch_id = doc.apiKey, doc.userId, doc.userEmail, doc.batchId
    name = doc.userName
    for ident in (api_key, user_id, email, name, batch_id):
        if ident is not None and (UNSAFE_IN_IDS.search(ident) or "\x00" in ident):
            raise NotFast
    if not api_key.strip() or not user_id.strip():
        raise NotFast
    if name is not None and not name.strip():
        name = None  # as the validator has it: a blank name is no name
    if doc.userHash is not None and "\x00" in doc.userHash:
        raise NotFast
    sent_at = doc.sentAt
    offset = 0 if sent_at is None else now_ms - sent_at
    skew = limits.max_clock_skew_ms
    events = tuple(_event(raw, offset, now_ms, skew, limits) for raw in doc.events)
    return Batch(
        api_key=api_key,
        user_id=user_id,
        user_email=email,
        user_name=name,
        tier=doc.subscriptionTier,
        events=events,
        received_at_ms=now_ms,
        sent_at_ms=sent_at,
        batch_id=batch_id,
        user_hash=doc.userHash,
    )


def _event(raw: Any, offset: int, now_ms: int, skew: int, limits: Limits) -> Event:
    client_ts = raw.timestamp
    ts = client_ts + offset
    if abs(ts - now_ms) > skew:
        raise NotFast
    route = raw.route
    if route is not None and "\x00" in route:
        raise NotFast
    tag = type(raw).__struct_config__.tag
    if tag == "route":
        return Event(EventType.ROUTE, ts, client_ts, route)
    if tag == "heartbeat":
        count, focused = raw.input, raw.focused
        if count is None and focused is None:
            return Event(EventType.HEARTBEAT, ts, client_ts, route)
        return Event(
            EventType.HEARTBEAT,
            ts,
            client_ts,
            route,
            data=heartbeat_data(count, focused),
            input_count=count,
            focused=focused,
        )
    if tag == "click":
        element, text = _required(raw.element), _optional(raw.text)
        return Event(EventType.CLICK, ts, client_ts, route, element, text)
    if tag == "form_submit":
        return Event(EventType.FORM_SUBMIT, ts, client_ts, route, None, None, _optional(raw.formId))
    if tag == "page_time":
        return Event(EventType.PAGE_TIME, ts, client_ts, route, duration_ms=raw.duration)
    if tag == "error":
        return Event(
            EventType.ERROR,
            ts,
            client_ts,
            route,
            message=_required(raw.message),
            source=_optional(raw.source),
            stack=_optional(raw.stack),
        )
    if tag == "custom":
        return Event(
            EventType.CUSTOM,
            ts,
            client_ts,
            route,
            name=_required(raw.name),
            data=_custom_data(raw.data, limits),
        )
    assert tag == "visibility"
    return Event(EventType.VISIBILITY, ts, client_ts, route, visibility=raw.state)


def _required(value: str) -> str:
    if "\x00" in value or not value.strip():
        raise NotFast
    return value


def _optional(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise NotFast
    return value


def _custom_data(value: Any, limits: Limits) -> str | None:
    if value is None:
        return None
    try:
        text = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        raise NotFast from None
    if len(text) > limits.data_bytes:
        raise NotFast
    return text.decode()
