"""Triggers turned off, and triggers for some tiers only (``tippen-rt tenant set
--trigger NAME=off``, ``--trigger-tiers NAME=TIERS``), through the real
registry and actors on virtual time."""

from __future__ import annotations

import pytest
from trio.testing import MockClock

from tippen_rt.actors import Trigger, TriggerCleared
from tippen_rt.tenants import DEFAULT_TRIGGER_TIERS, TRIGGERS, TenantSettings

from .conftest import T0, Live
from .test_triggers import BEAT, ERROR, ROUTE, heartbeats

STUCK, LOW, ERRORS, IDLE = (
    Trigger.STUCK_ON_PAGE,
    Trigger.LOW_ACTIVITY,
    Trigger.MULTIPLE_ERRORS,
    Trigger.LONG_INACTIVITY,
)
ERRORS_OFF = TenantSettings(triggers_off=("multiple_errors",))


def switched_off(live: Live, user: str) -> list[tuple[Trigger, float]]:
    """(trigger, seconds since start) for every episode closed because its trigger
    no longer applies to the user."""
    return [
        (m.trigger, round(m.at - T0, 3))
        for m in live.feed.recent_triggers[live.tenant.id]
        if isinstance(m, TriggerCleared) and m.switched_off and m.state.user_id == user
    ]


def test_the_trigger_names_are_the_actors_triggers() -> None:
    assert tuple(t.value for t in Trigger) == TRIGGERS
    assert set(DEFAULT_TRIGGER_TIERS) == set(TRIGGERS)


async def test_a_trigger_turned_off_never_fires_and_the_others_still_do(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("eve", ROUTE, ERROR, ERROR, ERROR, ERROR, tier="paid", settings=ERRORS_OFF)
    await heartbeats(live, "eve", until=330, input=2, tier="paid", settings=ERRORS_OFF)
    assert live.fired("eve") == [(STUCK, 300.0)]


@pytest.mark.parametrize(("tier", "fires"), [("paid", False), ("enterprise", True)])
async def test_a_trigger_fires_only_for_the_tiers_it_is_set_for(
    live: Live, autojump_clock: MockClock, tier: str, fires: bool
) -> None:
    only = TenantSettings(trigger_tiers=(("stuck_on_page", ("enterprise",)),))
    await live.send("ann", ROUTE, tier=tier, settings=only)
    await heartbeats(live, "ann", until=600, input=4, tier=tier, settings=only)
    assert live.fired("ann") == ([(STUCK, 300.0)] if fires else [])


async def test_a_free_trial_trigger_can_cover_paid_users_too(
    live: Live, autojump_clock: MockClock
) -> None:
    wider = TenantSettings(trigger_tiers=(("low_activity", ("free_trial", "paid")),))
    await live.send("pat", ROUTE, tier="paid", settings=wider)
    await heartbeats(live, "pat", until=630, tier="paid", settings=wider)
    assert live.fired("pat") == [(LOW, 600.0)]
    # Long inactivity kept its default: free trials only.
    await heartbeats(live, "pat", until=1000, tier="paid", settings=wider)
    assert IDLE not in [t for t, _ in live.fired("pat")]


async def test_turning_a_trigger_off_closes_its_open_episode_at_once(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("eve", ROUTE, ERROR, ERROR, ERROR, ERROR, tier="paid")
    assert live.fired("eve") == [(ERRORS, 0.0)]
    await live.at(30)
    # No event from the user: the new settings alone end the episode.
    await live.registry.settings_changed(live.tenant.id, ERRORS_OFF)
    await live.at(30.001)
    assert switched_off(live, "eve") == [(ERRORS, 30.0)]
    assert live.cleared("eve") == [(ERRORS, 30.0)]
    assert live.left_triggers("eve") == []  # not "user left", not "recovered" either
    state = live.registry.state(1, "eve")
    assert state is not None
    assert state.active == () and not state.needs_support
    # More errors while it is off: nothing.
    await live.send("eve", ERROR, ERROR, ERROR, ERROR, tier="paid", settings=ERRORS_OFF)
    await live.at(60)
    assert live.fired("eve") == [(ERRORS, 0.0)]
    # Turned on again, a burst still in its window is a new episode at once.
    await live.registry.settings_changed(live.tenant.id, TenantSettings())
    await live.at(60.001)
    assert live.fired("eve") == [(ERRORS, 0.0), (ERRORS, 60.0)]


async def test_another_open_trigger_keeps_the_user_in_need_of_support(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await heartbeats(live, "ann", until=300, input=2, tier="paid")
    await live.send("ann", ERROR, ERROR, ERROR, ERROR, tier="paid")
    assert [t for t, _ in live.fired("ann")] == [STUCK, ERRORS]
    await live.registry.settings_changed(live.tenant.id, ERRORS_OFF)
    await live.at(301)
    assert switched_off(live, "ann") == [(ERRORS, 300.0)]
    state = live.registry.state(1, "ann")
    assert state is not None
    assert state.active_triggers == {STUCK} and state.needs_support


async def test_an_episode_closes_when_its_tiers_no_longer_cover_the_user(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("fay", ROUTE)
    await heartbeats(live, "fay", until=630)
    assert live.fired("fay") == [(LOW, 600.0)]
    # The tenant narrows long inactivity and low activity to nobody on free trial.
    paid_only = TenantSettings(
        trigger_tiers=(("low_activity", ("paid",)), ("long_inactivity", ("paid",)))
    )
    await live.send("fay", BEAT, settings=paid_only)
    assert switched_off(live, "fay") == [(LOW, 630.0)]
    await heartbeats(live, "fay", until=1500, settings=paid_only)
    assert live.fired("fay") == [(LOW, 600.0)]


@pytest.mark.parametrize("turned_off", [False, True])
async def test_new_settings_reach_a_user_who_only_waits_for_a_deadline(
    live: Live, autojump_clock: MockClock, turned_off: bool
) -> None:
    # Nothing will arrive from the user (a long presence timeout keeps them
    # there without heartbeats): only the deadline long inactivity set is
    # pending, and the new settings alone must cancel it.
    patient = TenantSettings(presence_timeout_s=3000, away_end_s=3000)
    await live.send("ida", ROUTE, settings=patient)
    await live.at(120)
    if turned_off:
        off = TenantSettings(
            presence_timeout_s=3000, away_end_s=3000, triggers_off=("long_inactivity",)
        )
        await live.registry.settings_changed(live.tenant.id, off)
    await live.at(1000)
    assert (IDLE in [t for t, _ in live.fired("ida")]) is not turned_off
