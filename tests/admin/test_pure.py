"""Pure parts: session cookies, the login token bucket, the journey."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tippen_rt.http._journey import build_journey, journey_json
from tippen_rt.http._session import AdminSession, TokenBucket, read_session, sign_session

SECRET = b"s" * 32
SESSION = AdminSession(tenant_id=7, name="Sam <b>", expires_at=2_000_000_000, key_tag="tag")


def test_a_signed_session_reads_back() -> None:
    value = sign_session(SECRET, SESSION)
    assert read_session(SECRET, value, 1_900_000_000) == SESSION
    assert read_session(SECRET, value, 2_000_000_000) is None  # expired at that second
    assert read_session(b"other" * 8, value, 1_900_000_000) is None


@given(st.text(max_size=200))
def test_garbage_never_reads_as_a_session(value: str) -> None:
    assert read_session(SECRET, value, 0) is None


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=200))
def test_any_change_to_a_cookie_breaks_it(position: int, delta: int) -> None:
    value = sign_session(SECRET, SESSION)
    i = position % len(value)
    changed = value[:i] + chr((ord(value[i]) + 1 + delta) % 128) + value[i + 1 :]
    assert changed == value or read_session(SECRET, changed, 0) is None


def test_the_bucket_allows_a_burst_then_one_per_refill() -> None:
    bucket = TokenBucket(burst=3, refill_s=10.0)
    assert [bucket.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("a", 0.0) == 10.0
    assert bucket.take("a", 5.0) == 5.0
    assert bucket.take("a", 10.0) == 0.0
    assert bucket.take("b", 10.0) == 0.0  # per key


def test_the_bucket_forgets_idle_keys_when_full() -> None:
    bucket = TokenBucket(burst=1, refill_s=1.0, max_keys=100)
    for i in range(1000):
        bucket.take(f"k{i}", float(i))
    assert len(bucket) <= 101


def rows(*events: tuple[str, str | None, int, Any]) -> list[dict[str, Any]]:
    out = []
    for i, (kind, route, t, extra) in enumerate(events):
        out.append(
            {
                "id": i,
                "event_type": kind,
                "route": route,
                "timestamp": t,
                "duration_ms": extra if kind == "page_time" else None,
                "visibility": extra if kind == "visibility" else None,
            }
        )
    return out


def test_a_journey_of_an_offline_user() -> None:
    steps = build_journey(
        rows(
            ("route", "/a", 0, None),
            ("route", "/a", 1_000, None),  # the same route again: not a new step
            ("route", "/b", 5_000, None),
            ("visibility", None, 9_000, "unload"),
            ("route", "/c", 3_600_000, None),  # back an hour later
        ),
        end_ms=3_700_000,
        live_route=None,
        max_step_ms=1_800_000,
    )
    assert [(s.route, s.time_spent_ms, s.closed_page) for s in steps] == [
        ("/a", 5_000, False),
        ("/b", 4_000, True),
        ("/c", 100_000, False),
    ]


def test_a_long_gap_is_capped_at_a_session() -> None:
    steps = build_journey(
        rows(("route", "/a", 0, None), ("route", "/b", 86_400_000, None)),
        end_ms=86_400_000,
        live_route="/b",
        max_step_ms=1_800_000,
    )
    assert steps[0].time_spent_ms == 1_800_000
    assert steps[1].ongoing and steps[1].time_spent_ms == 0


def test_journey_json_totals_per_route() -> None:
    steps = build_journey(
        rows(
            ("route", "/a", 0, None),
            ("route", "/b", 1_000, None),
            ("route", "/a", 3_000, None),
        ),
        end_ms=10_000,
        live_route=None,
        max_step_ms=60_000,
    )
    body = journey_json(steps, max_steps=2)
    assert [s["route"] for s in body["steps"]] == ["/b", "/a"] and body["truncated"]
    assert body["routes"] == [
        {"route": "/a", "visits": 2, "totalMs": 8_000},
        {"route": "/b", "visits": 1, "totalMs": 2_000},
    ]
