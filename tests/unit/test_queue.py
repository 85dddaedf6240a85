"""The needs-help queue's order: acknowledged last, then tier weight, severity, waiting time."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tippen_rt.actors import Trigger, UserState
from tippen_rt.alerts import QueueFilter, queue_key, ranked, severity_of, waiting_since
from tippen_rt.tenants import DEFAULT_TIER_WEIGHTS, TenantSettings

T0 = 1_750_000_000.0
DEFAULTS = TenantSettings()


def user(
    user_id: str,
    tier: str = "free_trial",
    *episodes: tuple[Trigger, float],
    needs_support: bool = True,
    **changes: Any,
) -> UserState:
    """A live user with open episodes ``(trigger, seconds ago)``."""
    return UserState(
        tenant_id=1,
        user_id=user_id,
        email=f"{user_id}@example.com",
        tier=tier,
        session_started_at=T0 - 3600,
        last_event_at=T0,
        active=tuple((t, T0 - ago, "why") for t, ago in episodes),
        needs_support=needs_support and bool(episodes),
    ).replace(**changes)


def order(states: list[UserState], settings: TenantSettings = DEFAULTS) -> list[str]:
    return [s.user_id for s in ranked(states, settings)]


ERRORS, STUCK = Trigger.MULTIPLE_ERRORS, Trigger.STUCK_ON_PAGE
LOW, IDLE = Trigger.LOW_ACTIVITY, Trigger.LONG_INACTIVITY


def test_tier_weight_comes_first_then_severity_then_waiting_time() -> None:
    states = [
        user("trial-errors-long", "free_trial", (ERRORS, 900)),
        user("paid-stuck", "paid", (STUCK, 60)),
        user("ent-low-new", "enterprise", (LOW, 10)),
        user("paid-errors", "paid", (ERRORS, 30)),
        user("paid-errors-longer", "paid", (ERRORS, 300)),
        user("ent-stuck", "enterprise", (STUCK, 5)),
    ]
    assert order(states) == [
        "ent-stuck",  # enterprise, severity 2
        "ent-low-new",  # enterprise, severity 1
        "paid-errors-longer",  # paid, severity 3, waited 5 min
        "paid-errors",  # paid, severity 3, waited 30 s
        "paid-stuck",  # paid, severity 2
        "trial-errors-long",  # free trial, whatever the severity or wait
    ]


def test_acknowledged_users_sink_below_those_nobody_has_seen() -> None:
    seen = user("ent-seen", "enterprise", (ERRORS, 900), needs_support=False)
    unseen = user("trial-unseen", "free_trial", (IDLE, 5))
    assert order([seen, unseen]) == ["trial-unseen", "ent-seen"]


def test_one_row_per_user_ranked_by_their_most_severe_and_oldest_episode() -> None:
    both = user("both", "paid", (IDLE, 20), (ERRORS, 5))
    assert (severity_of(both), waiting_since(both)) == (3, T0 - 20)
    stuck = user("stuck", "paid", (STUCK, 600))
    assert order([stuck, both]) == ["both", "stuck"]
    assert len(ranked([both, both.replace(user_id="other")], DEFAULTS)) == 2


def test_users_without_an_open_episode_are_not_in_the_queue() -> None:
    assert order([user("fine", "enterprise"), user("help", "free_trial", (LOW, 1))]) == ["help"]


def test_the_tenants_tier_weights_reorder_it() -> None:
    trials_first = DEFAULTS.with_tier_weights({"free_trial": 10})
    states = [user("ent", "enterprise", (STUCK, 5)), user("trial", "free_trial", (STUCK, 5))]
    assert order(states) == ["ent", "trial"]
    assert order(states, trials_first) == ["trial", "ent"]
    # Equal weights: severity decides.
    flat = DEFAULTS.with_tier_weights({"enterprise": 1, "paid": 1})
    states = [user("ent", "enterprise", (LOW, 500)), user("trial", "free_trial", (ERRORS, 1))]
    assert order(states, flat) == ["trial", "ent"]


def test_ties_are_broken_by_user_id_so_every_dashboard_agrees() -> None:
    same = [user(name, "paid", (STUCK, 60)) for name in ("c", "a", "b")]
    assert order(same) == ["a", "b", "c"]


def test_filters_keep_a_tier_a_trigger_or_the_unclaimed() -> None:
    states = [
        user("trial", "free_trial", (LOW, 5)),
        user("paid", "paid", (ERRORS, 5), (STUCK, 3)),
        user("claimed", "paid", (STUCK, 9), claimed_by="Ada", claimed_at=T0),
    ]
    keep = QueueFilter
    assert [s.user_id for s in ranked(states, DEFAULTS, keep(tier="paid"))] == ["paid", "claimed"]
    assert [s.user_id for s in ranked(states, DEFAULTS, keep(trigger=STUCK))] == [
        "paid",
        "claimed",
    ]
    assert [s.user_id for s in ranked(states, DEFAULTS, keep(unclaimed=True))] == [
        "paid",
        "trial",
    ]


def test_severities_and_default_weights_are_the_documented_ones() -> None:
    assert {t.value: t.severity for t in Trigger} == {
        "multiple_errors": 3,
        "stuck_on_page": 2,
        "low_activity": 1,
        "long_inactivity": 1,
    }
    assert dict(DEFAULT_TIER_WEIGHTS) == {"enterprise": 3, "paid": 2, "free_trial": 1}


@pytest.mark.parametrize("bad", ["gold=3", "paid", "paid=-1", "paid=1001", "paid=x"])
def test_bad_tier_weights_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        TenantSettings.tier_weight_changes([bad])


def test_tier_weights_are_stored_and_read_back() -> None:
    changed = DEFAULTS.with_tier_weights(
        TenantSettings.tier_weight_changes(["paid=5", "enterprise=default"])
    )
    assert changed.tier_weights == (("paid", 5),)
    assert changed.to_mapping()["tier_weights"] == {"paid": 5}
    assert TenantSettings.from_mapping(changed.to_mapping()) == changed
    assert changed.with_tier_weights({"paid": None}) == DEFAULTS


_tiers = st.sampled_from(["free_trial", "paid", "enterprise"])
_episodes = st.lists(
    st.tuples(st.sampled_from(list(Trigger)), st.floats(0, 10_000)), min_size=1, max_size=3
)


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=5), _tiers, _episodes, st.booleans()),
        max_size=12,
        unique_by=lambda u: u[0],
    )
)
def test_the_order_is_the_documented_key_whatever_the_users(
    raw: list[tuple[str, str, list[tuple[Trigger, float]], bool]],
) -> None:
    states = [user(uid, tier, *eps, needs_support=needs) for uid, tier, eps, needs in raw]
    result = ranked(states, DEFAULTS)
    keys = [
        (
            not s.needs_support,
            -DEFAULT_TIER_WEIGHTS[s.tier],
            -max(t.severity for t, _, _ in s.active),
            min(since for _, since, _ in s.active),
            s.user_id,
        )
        for s in result
    ]
    assert keys == sorted(keys)
    assert [queue_key(s, DEFAULTS) for s in result] == keys
    assert sorted(s.user_id for s in result) == sorted(uid for uid, *_ in raw)
