"""Response times: the first of claim, acknowledgement and call; the window's figures."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tippen_rt.alerts import GOAL_MS, response_figures
from tippen_rt.persist import Alert

T = 1_750_000_000_000
MIN = 60_000


def alert(id: int = 1, **changes: Any) -> Alert:
    base = Alert(
        id=id, tenant_id=1, user_id=f"u{id}", trigger="stuck_on_page", reason="why",
        user_email=None, tier="paid", route="/", time_on_page_ms=0, total_events=0,
        total_errors=0, last_active_at=T, opened_at=T, resolved_at=None, resolution=None,
        acknowledged_at=None, acknowledged_by=None, delivery_status="disabled", attempts=0,
        last_error=None, slack_channel=None, slack_ts=None, suppressed_count=0, revision=0,
        slack_needs_update=False, created_at=T, updated_at=T,
    )  # fmt: skip
    return replace(base, **changes)


def test_the_response_is_the_first_of_claim_acknowledgement_and_call() -> None:
    assert alert().response is None
    a = alert(
        first_claimed_at=T + 3 * MIN, first_claimed_by="Ada",
        acknowledged_at=T + 2 * MIN, acknowledged_by="Bo",
        first_call_at=T + 5 * MIN, first_call_by="Ada",
    )  # fmt: skip
    assert a.response == (2 * MIN, "Bo")
    data = a.to_mapping()
    assert (data["time_to_claim_ms"], data["time_to_acknowledge_ms"], data["time_to_call_ms"]) == (
        3 * MIN,
        2 * MIN,
        5 * MIN,
    )
    assert (data["time_to_response_ms"], data["responded_by"]) == (2 * MIN, "Bo")
    # Claimed before it opened (the user was being helped already): 0.
    assert alert(first_claimed_at=T, first_claimed_by="Ada").response == (0, "Ada")


def test_median_p90_and_the_goal_overall_and_per_agent() -> None:
    now = T + 60 * MIN
    answered = [
        alert(i, acknowledged_at=T + m * MIN, acknowledged_by="Ada" if i % 2 else "Bo")
        for i, m in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 30], start=1)
    ]
    missed_open = alert(20)  # open an hour, nobody answered
    missed_closed = alert(21, resolved_at=T + 12 * MIN, resolution="user_left")
    recovered_soon = alert(22, resolved_at=T + 2 * MIN, resolution="recovered")
    waiting = alert(23, opened_at=now - MIN)
    superseded = alert(24, resolved_at=T + MIN, resolution="superseded")
    overall, agents = response_figures(
        [*answered, missed_open, missed_closed, recovered_soon, waiting, superseded], now_ms=now
    )
    figures = overall.to_json()
    assert figures == {
        "alerts": 14,
        "answered": 10,
        "medianMs": int(5.5 * MIN),
        "p90Ms": 9 * MIN,  # nearest rank: the 9th of 10
        "withinGoal": 9,
        "missed": 2,
        "closedUnansweredWithinGoal": 1,
        "waiting": 1,
        "withinGoalShare": 0.75,
        "metGoal": False,
    }
    assert sorted(agents) == ["Ada", "Bo"]
    assert agents["Ada"].to_json()["answered"] == 5
    assert agents["Ada"].to_json()["medianMs"] == 5 * MIN  # 1, 3, 5, 7, 9
    assert agents["Bo"].to_json()["p90Ms"] == 30 * MIN


def test_nine_in_ten_within_the_goal_meets_it() -> None:
    quick = [alert(i, acknowledged_at=T + MIN, acknowledged_by="Ada") for i in range(9)]
    slow = alert(99, acknowledged_at=T + GOAL_MS + 1, acknowledged_by="Ada")
    overall, _ = response_figures([*quick, slow], now_ms=T + 3_600_000)
    assert overall.to_json()["metGoal"] is True
    overall, _ = response_figures([], now_ms=T)
    assert overall.to_json() == {
        "alerts": 0, "answered": 0, "medianMs": None, "p90Ms": None, "withinGoal": 0,
        "missed": 0, "closedUnansweredWithinGoal": 0, "waiting": 0, "withinGoalShare": None,
        "metGoal": None,
    }  # fmt: skip
