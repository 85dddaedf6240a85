"""Every support trigger and its boundaries, through the real registry and actors.

Virtual time (autojump clock): a 15-minute rule runs in milliseconds, and the
times asserted are exact.
"""

from __future__ import annotations

import pytest
import trio.testing
from trio.testing import MockClock

from tippen_rt.actors import Trigger
from tippen_rt.events import validate_batch
from tippen_rt.tenants import TenantSettings

from .conftest import T0, Live

STUCK, LOW, ERRORS, IDLE = (
    Trigger.STUCK_ON_PAGE,
    Trigger.LOW_ACTIVITY,
    Trigger.MULTIPLE_ERRORS,
    Trigger.LONG_INACTIVITY,
)
ROUTE = {"type": "route", "route": "/billing"}
CLICK = {"type": "click", "element": "button#pay"}
BEAT = {"type": "heartbeat"}
ERROR = {"type": "error", "message": "TypeError: boom"}


async def heartbeats(
    live: Live, user: str, until: float, every: float = 30, input: int = 0, **kw: object
) -> None:
    """The tracker's heartbeat up to ``until``, reporting ``input`` events each."""
    t = live.t()
    beat = {"type": "heartbeat", "input": input, "focused": input > 0}
    while t + every <= until:
        t += every
        await live.at(t)
        await live.send(user, beat, **kw)  # type: ignore[arg-type]


# ---- stuck on page ---------------------------------------------------------


async def test_stuck_fires_after_five_minutes_of_input_on_one_page(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await heartbeats(live, "ann", until=299, input=4, tier="paid")
    await live.at(299.999)
    assert live.fired("ann") == []
    await heartbeats(live, "ann", until=330, input=4, tier="paid")
    assert live.fired("ann") == [(STUCK, 300.0)]


async def test_an_idle_visible_tab_is_idle_not_stuck(live: Live, autojump_clock: MockClock) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await heartbeats(live, "ann", until=1200, tier="paid")  # page open, nobody touching it
    assert live.fired("ann") == []
    state = live.registry.state(1, "ann")
    assert state is not None
    assert (state.presence, state.presence_since - T0) == ("idle", 60.0)


async def test_a_pause_in_input_restarts_the_stuck_clock(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await heartbeats(live, "ann", until=240, input=3, tier="paid")
    await heartbeats(live, "ann", until=360, tier="paid")  # reads for two minutes
    assert live.fired("ann") == []
    await heartbeats(live, "ann", until=720, input=3, tier="paid")  # trying again from 6:30
    assert live.fired("ann") == [(STUCK, 690.0)]


async def test_stuck_fires_once_per_episode_and_again_after_recovery(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await heartbeats(live, "ann", until=900, input=2, tier="paid")  # 15 min on one page
    assert live.fired("ann") == [(STUCK, 300.0)]
    state = live.registry.state(1, "ann")
    assert state is not None and state.needs_support
    # Moving on is recovery...
    await live.send("ann", {"type": "route", "route": "/settings"}, tier="paid")
    assert live.cleared("ann") == [(STUCK, 900.0)]
    state = live.registry.state(1, "ann")
    assert state is not None and not state.needs_support
    # ... and five more minutes on the next page is a new episode.
    await heartbeats(live, "ann", until=1260, input=2, tier="paid")
    assert live.fired("ann") == [(STUCK, 300.0), (STUCK, 1200.0)]


async def test_a_stuck_user_who_pauses_stays_stuck(live: Live, autojump_clock: MockClock) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await heartbeats(live, "ann", until=330, input=2, tier="paid")
    await heartbeats(live, "ann", until=900, tier="paid")  # stares at the screen
    assert live.fired("ann") == [(STUCK, 300.0)]
    assert live.cleared("ann") == []


async def test_stuck_needs_a_visible_page(live: Live, autojump_clock: MockClock) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await live.at(60)
    await live.send("ann", {"type": "visibility", "state": "hidden"}, tier="paid")
    await heartbeats(live, "ann", until=600, tier="paid")  # a background tab
    assert live.fired("ann") == []
    state = live.registry.state(1, "ann")
    assert state is not None and state.presence == "hidden"
    await live.send("ann", {"type": "visibility", "state": "visible"}, tier="paid")
    await heartbeats(live, "ann", until=929, input=1, tier="paid")
    assert live.fired("ann") == []  # visible again since 10:00, input since 10:30
    await heartbeats(live, "ann", until=960, input=1, tier="paid")
    assert live.fired("ann") == [(STUCK, 930.0)]


async def test_stuck_needs_the_user_to_be_there(live: Live, autojump_clock: MockClock) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await live.at(1200)  # no heartbeat at all: the browser is gone
    assert live.fired("ann") == []


async def test_an_episode_ends_as_user_left_when_heartbeats_stop(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await heartbeats(live, "ann", until=330, input=1, tier="paid")
    assert live.fired("ann") == [(STUCK, 300.0)]
    await live.at(600)
    # Last heartbeat at 330 s; the user is away 90 s later.
    assert live.cleared("ann") == [(STUCK, 420.0)]
    assert live.left_triggers("ann") == [(STUCK, 420.0)]
    state = live.registry.state(1, "ann")
    assert state is not None
    assert (state.presence, state.presence_since - T0) == ("away", 330.0)


# ---- low activity (free trial) ----------------------------------------------


async def test_low_activity_fires_when_the_session_is_ten_minutes_old(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("fay", ROUTE)
    await live.at(60)
    await live.send("fay", CLICK)  # 2 interactions in the first 10 min
    await heartbeats(live, "fay", until=599.999, input=1)
    assert LOW not in [t for t, _ in live.fired("fay")]
    await heartbeats(live, "fay", until=630, input=1)
    assert (LOW, 600.0) in live.fired("fay")


async def test_low_activity_boundary_is_the_third_interaction_leaving_the_window(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("fay", ROUTE)  # t=0
    for t in (60, 120, 180):
        await live.at(t)
        await live.send("fay", CLICK)
    # At 10:00 the clicks at 1, 2 and 3 min are inside the window: 3, not < 3.
    await heartbeats(live, "fay", until=659.999)
    assert LOW not in [t for t, _ in live.fired("fay")]
    # The click at 1:00 leaves the window at 11:00: two are left.
    await heartbeats(live, "fay", until=690)
    assert (LOW, 660.0) in live.fired("fay")


async def test_low_activity_clears_with_activity(live: Live, autojump_clock: MockClock) -> None:
    await live.send("fay", ROUTE)
    await heartbeats(live, "fay", until=700)
    await live.at(700)
    assert (LOW, 600.0) in live.fired("fay")
    for _ in range(3):
        await live.send("fay", CLICK)
    assert (LOW, 700.0) in live.cleared("fay")


@pytest.mark.parametrize("tier", ["paid", "enterprise"])
async def test_low_activity_and_inactivity_are_for_free_trials_only(
    live: Live, autojump_clock: MockClock, tier: str
) -> None:
    await live.send("pat", ROUTE, tier=tier)
    await live.at(1700)
    assert live.fired("pat") == []


# ---- multiple errors -----------------------------------------------------------


@pytest.mark.parametrize("tier", ["free_trial", "paid", "enterprise"])
async def test_the_fourth_error_within_five_minutes_fires_at_once(
    live: Live, autojump_clock: MockClock, tier: str
) -> None:
    await live.send("eve", ROUTE, tier=tier)
    for t in (10, 70, 130):
        await live.at(t)
        await live.send("eve", ERROR, tier=tier)
    assert ERRORS not in [t for t, _ in live.fired("eve")]  # 3 errors: not more than 3
    await live.at(200)
    await live.send("eve", ERROR, tier=tier)
    assert (ERRORS, 200.0) in live.fired("eve")
    # Episode ends when the oldest of the burst (t=10) leaves the window.
    await heartbeats(live, "eve", until=400, tier=tier)
    assert (ERRORS, 310.0) in live.cleared("eve")
    assert live.left_triggers("eve") == []


async def test_four_errors_spread_over_more_than_five_minutes_do_not_fire(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("eve", ROUTE, tier="paid")
    for t in (0, 100, 200, 300):
        await live.at(t)
        await live.send("eve", ERROR, tier="paid")
    assert live.fired("eve") == []


async def test_four_errors_in_one_batch_fire(live: Live, autojump_clock: MockClock) -> None:
    await live.send("eve", ROUTE, ERROR, ERROR, ERROR, ERROR, tier="paid")
    assert live.fired("eve") == [(ERRORS, 0.0)]


# ---- long inactivity (free trial) ---------------------------------------------


async def test_long_inactivity_fires_at_fifteen_minutes(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("ida", ROUTE)
    await live.at(120)
    await live.send("ida", CLICK)
    # Heartbeats keep the session open but are not activity.
    await heartbeats(live, "ida", until=1019.9)
    assert IDLE not in [t for t, _ in live.fired("ida")]
    await heartbeats(live, "ida", until=1050)
    assert (IDLE, 1020.0) in live.fired("ida")
    await live.send("ida", CLICK)
    assert (IDLE, 1050.0) in live.cleared("ida")


# ---- acknowledgement, thresholds, clock skew ------------------------------------


async def test_acknowledge_clears_needs_support_without_refiring(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("eve", ERROR, ERROR, ERROR, ERROR, tier="paid")
    assert await live.registry.acknowledge(1, "eve", by="sam")
    await live.send("eve", ERROR, tier="paid")  # same episode goes on
    state = live.registry.state(1, "eve")
    assert state is not None
    assert not state.needs_support and state.acknowledged_by == "sam"
    assert live.fired("eve") == [(ERRORS, 0.0)]


async def test_a_claim_lasts_until_the_last_open_episode_ends(
    live: Live, autojump_clock: MockClock
) -> None:
    # Nothing to help with yet: a claim is not kept.
    await live.send("eve", ROUTE, tier="paid")
    assert await live.registry.claim(1, "eve", "Ada", 7)
    await trio.testing.wait_all_tasks_blocked()
    assert live.registry.state(1, "eve").claimed_by is None  # type: ignore[union-attr]

    await live.send("eve", ERROR, ERROR, ERROR, ERROR, tier="paid")
    assert await live.registry.claim(1, "eve", "Ada", 7)
    await trio.testing.wait_all_tasks_blocked()
    state = live.registry.state(1, "eve")
    assert state is not None
    assert (state.claimed_by, state.claimed_by_agent, state.claimed_at) == ("Ada", 7, T0)
    assert state.claimed_by_someone_else("Bo", 8) and not state.claimed_by_someone_else("Ada", 7)
    assert state.needs_support  # claiming is not acknowledging
    # Released, then claimed again.
    assert await live.registry.claim(1, "eve", None)
    await trio.testing.wait_all_tasks_blocked()
    assert live.registry.state(1, "eve").claimed_by is None  # type: ignore[union-attr]
    assert await live.registry.claim(1, "eve", "Bo", 8)
    await trio.testing.wait_all_tasks_blocked()
    # The errors stop: the user recovered, and the claim ends with the episode.
    await heartbeats(live, "eve", until=300, tier="paid")
    await live.at(5 * 60 + 1)
    assert (ERRORS, 300.0) in live.cleared("eve")
    state = live.registry.state(1, "eve")
    assert state is not None and (state.claimed_by, state.claimed_at) == (None, None)


async def test_a_claim_ends_when_the_user_leaves(live: Live, autojump_clock: MockClock) -> None:
    await live.send("lea", ERROR, ERROR, ERROR, ERROR, tier="paid")
    await live.registry.claim(1, "lea", "Ada", 7)
    await live.at(90)  # no heartbeat: away, and the episode closes as "user left"
    assert live.left_triggers("lea") == [(ERRORS, 90.0)]
    state = live.registry.state(1, "lea")
    assert state is not None and state.claimed_by is None


async def test_thresholds_are_per_tenant(live: Live, autojump_clock: MockClock) -> None:
    quick = TenantSettings(stuck_on_page_s=60, error_burst_count=1)
    await live.send("ann", ROUTE, ERROR, tier="paid", settings=quick)
    assert live.fired("ann") == []
    await live.send("ann", ERROR, tier="paid", settings=quick)
    assert live.fired("ann") == [(ERRORS, 0.0)]
    await heartbeats(live, "ann", until=61, every=20, input=1, tier="paid", settings=quick)
    assert (STUCK, 60.0) in live.fired("ann")


async def test_sent_at_corrects_a_client_clock_one_hour_behind(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.at(100)
    hour_ms = 3_600_000
    client_now = live.clock.now_ms() - hour_ms
    batch = validate_batch(
        {
            "apiKey": "k",
            "userId": "sky",
            "subscriptionTier": "paid",
            "sentAt": client_now,
            "events": [{"type": "route", "route": "/x", "timestamp": client_now - 2000}],
        },
        live.clock.now_ms(),
    )
    await live.registry.deliver(live.tenant, batch)
    await live.at(101)
    state = live.registry.state(1, "sky")
    assert state is not None
    # The route was entered 2 s before the batch left the browser, in server time.
    assert state.route_entered_at - T0 == pytest.approx(98.0)
    assert state.clock_offset_ms == hour_ms


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "0 s"), (45, "45 s"), (119, "119 s"), (300, "5 min"), (3600, "1 h"), (3900, "1 h 5 min")],
)
def test_reasons_say_durations_in_words(seconds: float, words: str) -> None:
    from tippen_rt.actors._rules import in_words

    assert in_words(seconds) == words
