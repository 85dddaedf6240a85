"""Validation of batches: every rule in DESIGN.md "Bad input"."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tippen_rt.events import BadInput, EventType, Limits, parse_batch, validate_batch

NOW = 1_700_000_000_000


def batch(events: list[dict[str, object]], **top: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "apiKey": "client_x",
        "userId": "u1",
        "userEmail": "u1@example.com",
        "subscriptionTier": "paid",
        "events": events,
    }
    doc.update(top)
    return doc


def ev(type_: str, **fields: object) -> dict[str, object]:
    return {"type": type_, "timestamp": NOW, **fields}


def rejects(doc: object, code: str, field: str | None = None, status: int = 400) -> BadInput:
    with pytest.raises(BadInput) as info:
        validate_batch(doc, NOW)
    assert info.value.code == code, info.value.message
    if field is not None:
        assert info.value.field == field
    assert info.value.status == status
    return info.value


def test_every_event_type_is_accepted_with_its_fields() -> None:
    doc = batch(
        [
            ev("route", route="/billing"),
            ev("click", element="button#pay", text="Pay now", route="/billing"),
            ev("form_submit", formId="signup", route="/signup"),
            ev("page_time", route="/billing", duration=12_345),
            ev("error", message="TypeError: x is undefined", source="app.js:10:5", stack="at f"),
            ev("custom", name="export_clicked", data={"format": "csv", "rows": [1, 2]}),
            ev("heartbeat", route="/billing"),
            ev("visibility", state="hidden"),
        ]
    )
    parsed = validate_batch(doc, NOW)
    assert [e.type for e in parsed.events] == list(EventType)
    route, click, form, page, error, custom, beat, vis = parsed.events
    assert route.route == "/billing" and route.is_interaction
    assert (click.element, click.text) == ("button#pay", "Pay now")
    assert form.form_id == "signup"
    assert page.duration_ms == 12_345 and not page.is_interaction
    assert (error.message, error.source, error.stack) == (
        "TypeError: x is undefined",
        "app.js:10:5",
        "at f",
    )
    assert custom.name == "export_clicked" and custom.is_interaction
    assert orjson.loads(custom.data or "") == {"format": "csv", "rows": [1, 2]}
    assert beat.type is EventType.HEARTBEAT and not beat.is_interaction
    assert vis.visibility == "hidden"
    assert parsed.tier == "paid" and parsed.user_email == "u1@example.com"


def test_sent_at_corrects_client_clock_skew() -> None:
    # The client's clock is 10 minutes behind: it says it sent at NOW - 10 min.
    skew = 10 * 60 * 1000
    doc = batch([ev("click", element="a", timestamp=NOW - skew - 500)], sentAt=NOW - skew)
    parsed = validate_batch(doc, NOW)
    assert parsed.clock_offset_ms == skew
    (event,) = parsed.events
    assert event.timestamp == NOW - 500
    assert event.client_timestamp == NOW - skew - 500


def test_no_sent_at_means_no_correction() -> None:
    parsed = validate_batch(batch([ev("click", element="a", timestamp=NOW - 7)]), NOW)
    assert parsed.events[0].timestamp == NOW - 7


@pytest.mark.parametrize(
    ("doc", "code", "field"),
    [
        ([], "invalid_batch", None),
        ("text", "invalid_batch", None),
        (batch([], apiKey=None), "missing_field", "apiKey"),
        (batch([], apiKey=5), "invalid_field", "apiKey"),
        (batch([], userId=""), "invalid_field", "userId"),
        (batch([], userId="   "), "invalid_field", "userId"),
        (batch([], userId=["u"]), "invalid_field", "userId"),
        (batch([], userEmail=3), "invalid_field", "userEmail"),
        (batch([], subscriptionTier="gold"), "invalid_field", "subscriptionTier"),
        (batch([], subscriptionTier=None), "invalid_field", "subscriptionTier"),
        (batch([], sentAt="yesterday"), "invalid_field", "sentAt"),
        (batch([], sentAt=-1), "invalid_field", "sentAt"),
        ({**batch([]), "events": {"type": "click"}}, "invalid_field", "events"),
        (batch([1]), "invalid_event", "events[0]"),
        (batch([ev("scroll")]), "unknown_event_type", "events[0].type"),
        (batch([{"timestamp": NOW}]), "unknown_event_type", "events[0].type"),
        (batch([ev("route")]), "missing_field", "events[0].route"),
        (batch([ev("route", route=7)]), "invalid_field", "events[0].route"),
        (batch([ev("click")]), "missing_field", "events[0].element"),
        (batch([ev("error")]), "missing_field", "events[0].message"),
        (batch([ev("custom")]), "missing_field", "events[0].name"),
        (batch([ev("page_time", duration=-5)]), "invalid_field", "events[0].duration"),
        (batch([ev("page_time", duration="5")]), "invalid_field", "events[0].duration"),
        (batch([ev("page_time", duration=True)]), "invalid_field", "events[0].duration"),
        (batch([ev("visibility", state="gone")]), "invalid_field", "events[0].state"),
        (
            batch([ev("click", element="a", timestamp="now")]),
            "invalid_field",
            "events[0].timestamp",
        ),
        (batch([ev("click", element="a", timestamp=None)]), "invalid_field", "events[0].timestamp"),
        (batch([ev("click", element="a", timestamp=float("nan"))]), "invalid_field", None),
        (batch([ev("click", element="a\x00b")]), "invalid_field", "events[0].element"),
    ],
)
def test_malformed_batches_name_the_problem(doc: object, code: str, field: str | None) -> None:
    error = rejects(doc, code, field)
    assert error.message
    assert error.to_json()["success"] is False


@pytest.mark.parametrize(
    ("field", "size"),
    [("route", 2048), ("element", 512), ("message", 4096), ("name", 256)],
)
def test_strings_over_their_limits_are_rejected(field: str, size: int) -> None:
    base = {
        "route": ev("route", route=""),
        "element": ev("click", element=""),
        "message": ev("error", message=""),
        "name": ev("custom", name=""),
    }[field]
    ok = {**base, field: "x" * size}
    validate_batch(batch([ok]), NOW)
    too_long = {**base, field: "x" * (size + 1)}
    rejects(batch([too_long]), "field_too_long", f"events[0].{field}")


def test_custom_data_is_limited_by_serialized_size() -> None:
    validate_batch(batch([ev("custom", name="n", data={"k": "x" * 8000})]), NOW)
    rejects(
        batch([ev("custom", name="n", data={"k": "x" * 8200})]),
        "field_too_long",
        "events[0].data",
    )


def test_more_than_50_events_is_rejected() -> None:
    events = [ev("click", element="a")] * 50
    assert len(validate_batch(batch(events), NOW).events) == 50
    rejects(batch([*events, ev("click", element="a")]), "too_many_events", "events", 413)


def test_timestamps_more_than_a_day_off_are_rejected() -> None:
    day = 24 * 3600 * 1000
    validate_batch(batch([ev("click", element="a", timestamp=NOW - day)]), NOW)
    validate_batch(batch([ev("click", element="a", timestamp=NOW + day)]), NOW)
    rejects(
        batch([ev("click", element="a", timestamp=NOW - day - 1)]),
        "timestamp_out_of_range",
        "events[0].timestamp",
    )
    rejects(batch([ev("click", element="a", timestamp=NOW + day + 1)]), "timestamp_out_of_range")


def test_one_bad_event_rejects_the_whole_batch() -> None:
    rejects(batch([ev("click", element="ok"), ev("click", element=1)]), "invalid_field")


def test_invalid_json_is_named() -> None:
    with pytest.raises(BadInput) as info:
        parse_batch(b'{"apiKey": ', NOW)
    assert info.value.code == "invalid_json"


def test_lone_surrogates_are_invalid_json() -> None:
    with pytest.raises(BadInput) as info:
        parse_batch(b'{"apiKey": "\\ud800"}', NOW)
    assert info.value.code == "invalid_json"


def test_limits_are_configurable() -> None:
    limits = Limits(max_events=2)
    events = [ev("click", element="a")] * 3
    with pytest.raises(BadInput):
        validate_batch(batch(events), NOW, limits)


def test_a_heartbeat_says_how_much_input_and_whether_focused() -> None:
    b = validate_batch(
        batch([ev("heartbeat", input=7, focused=True), ev("heartbeat"), ev("heartbeat", input=0)]),
        NOW,
    )
    counted, bare, none = b.events
    assert (counted.input_count, counted.focused) == (7, True)
    assert counted.data is not None and orjson.loads(counted.data) == {"input": 7, "focused": True}
    assert (bare.input_count, bare.focused, bare.data) == (None, None, None)
    assert (none.input_count, none.focused) == (0, None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"input": -1}, "events[0].input"),
        ({"input": 1.5}, "events[0].input"),
        ({"input": "3"}, "events[0].input"),
        ({"input": True}, "events[0].input"),
        ({"input": 1_000_001}, "events[0].input"),
        ({"focused": "yes"}, "events[0].focused"),
        ({"focused": 1}, "events[0].focused"),
    ],
)
def test_bad_heartbeat_fields_are_named(fields: dict[str, object], field: str) -> None:
    rejects(batch([ev("heartbeat", **fields)]), "invalid_field", field)


def test_stored_heartbeat_data_reads_back() -> None:
    from tippen_rt.events import heartbeat_data, read_heartbeat_data

    for count, focused in [(3, True), (0, False), (None, True), (5, None)]:
        assert read_heartbeat_data(heartbeat_data(count, focused)) == (count, focused)
    for junk in ["", "[1]", '{"input": "x", "focused": 2}', "nonsense"]:
        assert read_heartbeat_data(junk) == (None, None)


# ---- identifiers: no control, bidi or invisible characters ------------------------

#: What an identifier may not hold: C0 and C1 controls (newline and tab too), DEL,
#: the line and paragraph separators, bidi controls and zero-width characters.
UNSAFE_IN_IDS = (
    [chr(c) for c in range(0x00, 0x20)]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + ["\u2028", "\u2029"]
    + ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e"]
    + ["\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c"]
    + ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
)
IDENTIFIERS = ("apiKey", "userId", "userEmail", "userName", "batchId")
FREE_TEXT = [
    ("route", "route"),
    ("click", "element"),
    ("click", "text"),
    ("form_submit", "formId"),
    ("error", "message"),
    ("error", "source"),
    ("error", "stack"),
    ("custom", "name"),
]
EVENT_FIELD = {"formId": "form_id"}
REQUIRED = {"route": {"route": "/"}, "click": {"element": "a"}, "error": {"message": "m"}}
REQUIRED["custom"] = {"name": "n"}


def free_text_event(kind: str, field: str, text: str) -> dict[str, object]:
    """An event of ``kind`` with ``text`` in ``field`` (required fields never blank)."""
    if field in ("element", "message", "name") and not text.strip():
        text = "x" + text
    return ev(kind, **{**REQUIRED.get(kind, {}), field: text})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("userId", "ann\nINFO forged log line"),
        ("userId", "ann\tx"),
        ("userId", "\u202emoc.elpmaxe@nna"),
        ("userEmail", "ann@example.com\u200b"),
        ("userEmail", "ann@exam\u2066ple.com"),
        ("batchId", "b-1\r\n"),
        ("apiKey", "client_\ufeffx"),
        ("userId", "u\x85"),
        ("userName", "Ann\u200d Lee"),
        ("userName", "\u202eeeL nnA"),
    ],
)
def test_identifiers_refuse_control_bidi_and_invisible_characters(field: str, value: str) -> None:
    error = rejects(batch([], **{field: value}), "invalid_field", field)
    assert field in error.message


def test_identifiers_keep_any_other_unicode() -> None:
    doc = batch(
        [],
        userId="Zoë 李 ✓ 😀 עִברִית",
        userEmail="zoë@bücher.example",
        batchId="b é",
        userName="Zoë O\u2019Brien-李",
    )
    parsed = validate_batch(doc, NOW)
    assert (parsed.user_id, parsed.user_email, parsed.batch_id, parsed.user_name) == (
        "Zoë 李 ✓ 😀 עִברִית",
        "zoë@bücher.example",
        "b é",
        "Zoë O\u2019Brien-李",
    )


def test_the_display_name_is_optional_and_limited_like_an_identifier() -> None:
    assert validate_batch(batch([]), NOW).user_name is None
    assert validate_batch(batch([], userName="  "), NOW).user_name is None
    assert validate_batch(batch([], userName="x" * 256), NOW).user_name == "x" * 256
    rejects(batch([], userName="x" * 257), "field_too_long", "userName")
    rejects(batch([], userName=42), "invalid_field", "userName")


def test_free_text_keeps_newlines_bidi_and_zero_width_characters() -> None:
    odd = "line 1\nline 2\t\u202eevil\u200b\u2066x\u2069"
    events = [free_text_event(kind, f, odd) for kind, f in FREE_TEXT]
    parsed = validate_batch(batch(events), NOW)
    for (_, f), event in zip(FREE_TEXT, parsed.events, strict=True):
        assert getattr(event, EVENT_FIELD.get(f, f)) == odd


_id_text = st.text(
    alphabet=st.characters(blacklist_characters=UNSAFE_IN_IDS, blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
).filter(str.strip)


@given(
    field=st.sampled_from(IDENTIFIERS),
    before=_id_text,
    bad=st.sampled_from(UNSAFE_IN_IDS),
    after=st.text(max_size=10).filter(lambda s: "\x00" not in s),
)
@settings(max_examples=300, deadline=None)
def test_any_identifier_with_an_unsafe_character_is_refused_naming_it(
    field: str, before: str, bad: str, after: str
) -> None:
    with pytest.raises(BadInput) as info:
        validate_batch(batch([], **{field: before + bad + after}), NOW)
    assert info.value.field == field
    assert info.value.status == 400


@given(
    user_id=_id_text,
    email=_id_text,
    batch_id=_id_text,
    texts=st.lists(st.text(max_size=60).filter(lambda s: "\x00" not in s), min_size=8, max_size=8),
)
@settings(max_examples=200, deadline=None)
def test_everything_else_is_stored_untouched(
    user_id: str, email: str, batch_id: str, texts: list[str]
) -> None:
    events = [
        free_text_event(kind, f, text) for (kind, f), text in zip(FREE_TEXT, texts, strict=True)
    ]
    parsed = validate_batch(batch(events, userId=user_id, userEmail=email, batchId=batch_id), NOW)
    assert (parsed.user_id, parsed.user_email, parsed.batch_id) == (user_id, email, batch_id)
    for raw, event, (_, f) in zip(events, parsed.events, FREE_TEXT, strict=True):
        assert getattr(event, EVENT_FIELD.get(f, f)) == raw[f]
