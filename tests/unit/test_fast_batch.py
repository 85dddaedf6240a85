"""The fast path of parse_batch builds exactly the Batch the validator builds, and
takes nothing the validator would refuse (so every error stays the validator's)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tippen_rt._fast_batch import NotFast, fast_parse_batch
from tippen_rt.events import (
    DEFAULT_LIMITS,
    TIERS,
    BadInput,
    Limits,
    parse_batch,
    validate_batch,
)

from ..http.test_ingest_generated import bodies, json_values

NOW = 1_750_000_000_000
SMALL = Limits(max_events=5, user_id_chars=8, route_chars=12, text_chars=6, data_bytes=40)

#: Strings near every rule: empty, blank, NUL, controls and bidi (refused in
#: identifiers only), long ones, non-BMP characters.
edge_texts = st.one_of(
    st.sampled_from(["", " ", "\t", "a\x00b", "x\u202ey", "z\u200b", "\U0001f600" * 3, "é"]),
    st.text(min_size=1, max_size=1).map(lambda c: c * 300),
    st.text(max_size=20),
)
good_texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1)


def mostly(good: st.SearchStrategy[Any], edge: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` nineteen times in twenty, else ``edge``: most examples take the
    fast path, and the rest probe where it must let go."""
    return st.integers(0, 19).flatmap(lambda n: edge if n == 0 else good)


texts = mostly(good_texts, edge_texts)
times = mostly(
    st.integers(NOW - 86_400_000, NOW + 86_400_000),
    st.one_of(
        st.integers(NOW - 2 * 86_400_000, NOW + 2 * 86_400_000),
        st.integers(-5, 5),
        st.floats(NOW - 10, NOW + 10),
        st.just(True),
    ),
)
REQUIRED = {
    "route": ["route"],
    "click": ["element"],
    "page_time": ["duration"],
    "error": ["message"],
    "custom": ["name"],
    "visibility": ["state"],
}
OPTIONAL = {
    "route": ["route"],
    "click": ["text", "route"],
    "form_submit": ["formId", "route"],
    "page_time": ["route"],
    "error": ["source", "stack", "route"],
    "custom": ["data", "route"],
    "heartbeat": ["input", "focused", "route"],
    "visibility": ["route"],
}
FIELDS = {
    "route": texts,
    "element": texts,
    "text": texts,
    "formId": texts,
    "duration": mostly(
        st.integers(0, 10**8), st.one_of(st.integers(-2, 10**12), st.floats(0, 10), st.just(True))
    ),
    "message": texts,
    "source": texts,
    "stack": texts,
    "name": texts,
    "data": json_values,
    "state": mostly(st.sampled_from(["visible", "hidden", "unload"]), st.sampled_from(["", "x"])),
    "input": mostly(
        st.integers(0, 100), st.one_of(st.integers(-1, 2_000_000), st.just(False), st.floats(0, 3))
    ),
    "focused": mostly(st.booleans(), st.sampled_from([0, 1])),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(mostly(st.sampled_from(list(OPTIONAL)), st.just("nope")))
    event: dict[str, Any] = {"type": kind, "timestamp": draw(times)}
    for key in REQUIRED.get(kind, []):
        if draw(st.integers(0, 19)):  # now and then missing
            event[key] = draw(FIELDS[key])
    extra = draw(mostly(st.just([]), st.lists(st.sampled_from(sorted(FIELDS)), max_size=1)))
    for key in [*draw(st.lists(st.sampled_from(OPTIONAL.get(kind, ["route"])))), *extra]:
        event[key] = draw(mostly(FIELDS[key], st.none()))
    return event


invite_answers = st.one_of(
    st.fixed_dictionaries(
        {"id": st.integers(-1, 2**63), "answer": st.sampled_from(["joined", "declined", "x"])}
    ),
    json_values,
)


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    ids = st.one_of(
        st.just("client_abc"),
        st.text(st.characters(codec="ascii", min_codepoint=33), min_size=1, max_size=40),
        texts,
    )
    doc: dict[str, Any] = {
        "apiKey": draw(ids),
        "userId": draw(ids),
        "subscriptionTier": draw(mostly(st.sampled_from(TIERS), st.just("gold"))),
        "events": draw(st.lists(events(), max_size=4)),
    }
    for key, values in (
        ("userEmail", ids),
        ("userName", ids),
        ("sentAt", times),
        ("batchId", ids),
        ("userHash", texts),
        ("inviteAnswer", invite_answers),
        ("extra", json_values),
    ):
        if draw(st.booleans()):
            doc[key] = draw(mostly(values, st.none()))
    return orjson.dumps(doc)


def same_as_validator(body: bytes, limits: Limits) -> bool:
    """Check the fast path against the validator on ``body``; True if it took it."""
    try:
        fast = fast_parse_batch(body, NOW, limits)
    except NotFast:
        return False
    # What it accepts, the validator accepts, with the very same result.
    assert fast == validate_batch(orjson.loads(body), NOW, limits)
    assert parse_batch(body, NOW, limits) == fast
    return True


@settings(max_examples=1500, deadline=None)
@given(body=batches(), small=st.booleans())
def test_the_fast_path_builds_what_the_validator_builds(body: bytes, small: bool) -> None:
    same_as_validator(body, SMALL if small else DEFAULT_LIMITS)


@settings(max_examples=300, deadline=None)
@given(body=bodies("client_abc"))
def test_garbage_never_passes_the_fast_path_alone(body: bytes) -> None:
    same_as_validator(body, DEFAULT_LIMITS)


def test_a_field_the_fast_path_does_not_know_reaches_the_validator() -> None:
    doc = {"apiKey": "client_abc", "userId": "u1", "subscriptionTier": "paid", "events": []}
    answer = {"id": 7, "answer": "joined"}
    for extra in ({"inviteAnswer": answer}, {"somethingNew": 1}):
        with pytest.raises(NotFast):
            fast_parse_batch(orjson.dumps({**doc, **extra}), NOW, DEFAULT_LIMITS)
    assert parse_batch(orjson.dumps({**doc, "inviteAnswer": answer}), NOW).invite_answer == (
        7,
        "joined",
    )
    event = {"type": "route", "route": "/", "timestamp": NOW, "later": True}
    with pytest.raises(NotFast):
        fast_parse_batch(orjson.dumps({**doc, "events": [event]}), NOW, DEFAULT_LIMITS)


def test_what_the_tracker_sends_takes_the_fast_path() -> None:
    ts = NOW - 1000
    doc = {
        "apiKey": "client_abc",
        "userId": "user-1",
        "userEmail": "ann@example.com",
        "userName": "Ann Lee",
        "subscriptionTier": "paid",
        "sentAt": NOW - 20,
        "batchId": "b-1",
        "events": [
            {"type": "route", "route": "/billing", "timestamp": ts},
            {"type": "click", "route": "/billing", "element": "button#pay", "text": "Pay"},
            {"type": "form_submit", "route": "/billing", "formId": "card"},
            {"type": "page_time", "route": "/billing", "duration": 1200},
            {"type": "error", "route": "/billing", "message": "boom", "stack": "at x"},
            {"type": "custom", "route": "/billing", "name": "upgrade", "data": {"plan": "pro"}},
            {"type": "heartbeat", "route": "/billing", "input": 3, "focused": True},
            {"type": "heartbeat", "route": "/billing"},
            {"type": "visibility", "route": "/billing", "state": "hidden"},
        ],
    }
    for event in doc["events"][1:]:  # type: ignore[attr-defined]
        event["timestamp"] = ts
    assert same_as_validator(orjson.dumps(doc), DEFAULT_LIMITS)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"userId": "a\u202eb"}, "invalid_field"),
        ({"events": [{"type": "click", "timestamp": NOW, "element": " "}]}, "invalid_field"),
        ({"events": [{"type": "scroll", "timestamp": NOW}]}, "unknown_event_type"),
        ({"events": [{"type": "route", "timestamp": NOW}] * 51}, "too_many_events"),
        ({"events": [{"type": "route", "route": "/", "timestamp": 1}]}, "timestamp_out_of_range"),
    ],
)
def test_refused_batches_get_the_validators_error(change: dict[str, Any], code: str) -> None:
    doc = {"apiKey": "client_abc", "userId": "u1", "subscriptionTier": "paid", "events": []}
    with pytest.raises(BadInput) as caught:
        parse_batch(orjson.dumps({**doc, **change}), NOW)
    assert caught.value.code == code


EDGE_VALUES: list[Any] = [
    "",
    " ",
    "a\x00b",
    "x\u202ey",
    "z\u200b",
    "\U0001f600",
    "é" * 5000,
    1,
    1.5,
    True,
    None,
    [],
    {},
]
#: Each string and number of a batch, as (event type or None for the batch, key).
SLOTS = [
    (None, "apiKey"),
    (None, "userId"),
    (None, "userEmail"),
    (None, "userName"),
    (None, "batchId"),
    (None, "userHash"),
    (None, "sentAt"),
    ("route", "route"),
    ("route", "timestamp"),
    ("click", "element"),
    ("click", "text"),
    ("click", "route"),
    ("form_submit", "formId"),
    ("page_time", "duration"),
    ("error", "message"),
    ("error", "source"),
    ("error", "stack"),
    ("custom", "name"),
    ("custom", "data"),
    ("heartbeat", "input"),
    ("heartbeat", "focused"),
    ("visibility", "state"),
]
BASE_EVENTS = {
    "route": {"route": "/a"},
    "click": {"element": "b"},
    "form_submit": {},
    "page_time": {"duration": 5},
    "error": {"message": "m"},
    "custom": {"name": "n"},
    "heartbeat": {"input": 1, "focused": True},
    "visibility": {"state": "hidden"},
}


@pytest.mark.parametrize(("kind", "key"), SLOTS)
@pytest.mark.parametrize("value", EDGE_VALUES, ids=repr)
def test_every_field_at_its_edges(kind: str | None, key: str, value: Any) -> None:
    doc: dict[str, Any] = {"apiKey": "k", "userId": "u", "subscriptionTier": "paid"}
    event = {"type": kind or "route", "timestamp": NOW, **BASE_EVENTS[kind or "route"]}
    (doc if kind is None else event)[key] = value
    doc["events"] = [event]
    same_as_validator(orjson.dumps(doc), DEFAULT_LIMITS)
    same_as_validator(orjson.dumps(doc), SMALL)
