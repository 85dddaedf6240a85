"""Properties of the pure rules and presence, over generated event histories."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tippen_rt.actors import Presence, apply_batch, evaluate, new_state, presence_at
from tippen_rt.actors._state import UserState
from tippen_rt.events import Batch, validate_batch
from tippen_rt.tenants import TenantSettings

T0 = 1_750_000_000.0
TH = TenantSettings()
#: Short thresholds, so generated histories cross every boundary.
QUICK = TenantSettings(
    stuck_on_page_s=40,
    low_activity_window_s=50,
    inactivity_s=60,
    error_window_s=30,
    presence_timeout_s=20,
    idle_after_s=10,
    away_end_s=30,
    unload_grace_s=5,
    session_timeout_s=300,
)

events = st.one_of(
    st.fixed_dictionaries({"type": st.just("route"), "route": st.sampled_from(["/a", "/b"])}),
    st.fixed_dictionaries({"type": st.just("click"), "element": st.just("b")}),
    st.fixed_dictionaries({"type": st.just("error"), "message": st.just("x")}),
    st.fixed_dictionaries({"type": st.just("heartbeat")}),
    st.fixed_dictionaries(
        {
            "type": st.just("heartbeat"),
            "input": st.integers(0, 20),
            "focused": st.booleans(),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("visibility"), "state": st.sampled_from(["visible", "hidden", "unload"])}
    ),
)
#: (seconds since the previous batch, how late its events are, the events)
histories = st.lists(
    st.tuples(st.floats(0, 120), st.floats(0, 40), st.lists(events, min_size=1, max_size=5)),
    min_size=1,
    max_size=15,
)
thresholds = st.sampled_from([TH, QUICK])


def batch_at(t: float, evs: list[dict[str, object]], tier: str, late: float = 0) -> Batch:
    ms = int(t * 1000)
    return validate_batch(
        {
            "apiKey": "k",
            "userId": "u",
            "subscriptionTier": tier,
            "events": [{"timestamp": ms - int(late * 1000), **e} for e in evs],
        },
        ms,
    )


def run_history(
    history: list[tuple[float, float, list[dict[str, object]]]],
    tier: str,
    th: TenantSettings,
    check: object = None,
) -> tuple[UserState, float, list[object]]:
    """Drive a state through ``history`` as an actor would (evaluating at every
    deadline that passes between batches); return the state, the time and every step."""
    now = T0
    state = new_state(1, batch_at(now, history[0][2], tier), now)
    steps: list[object] = []
    for gap, late, evs in history:
        target = now + gap
        step = evaluate(state, now, th)
        while not step.session_over and step.next_at <= target:
            now = step.next_at
            state = step.state
            step = evaluate(state, now, th)
            steps.append((now, step))
        if step.session_over:
            return state, now, steps
        state = step.state
        now = target
        state = apply_batch(state, batch_at(now, evs, tier, late), now, th)
        step = evaluate(state, now, th)
        steps.append((now, step))
        if step.session_over:
            return state, now, steps
        state = step.state
    return state, now, steps


@settings(max_examples=300, deadline=None)
@given(
    history=histories,
    tier=st.sampled_from(["free_trial", "paid"]),
    th=thresholds,
    probe=st.floats(0, 1),
)
def test_next_deadline_is_in_the_future_and_nothing_changes_before_it(
    history: list[tuple[float, float, list[dict[str, object]]]],
    tier: str,
    th: TenantSettings,
    probe: float,
) -> None:
    state, now, _ = run_history(history, tier, th)
    step = evaluate(state, now, th)
    if step.session_over:
        return
    # No busy loop: the next wake-up is strictly later.
    assert step.next_at > now
    state = step.state
    # No missed change: nothing fires, ends or moves before the deadline.
    between = now + (step.next_at - now) * probe * 0.999
    later = evaluate(state, between, th)
    assert not later.session_over
    assert (later.fired, later.cleared, later.left) == ((), (), ())
    assert later.state.presence == state.presence


@settings(max_examples=300, deadline=None)
@given(history=histories, tier=st.sampled_from(["free_trial", "paid"]), th=thresholds)
def test_presence_is_always_a_state_and_nothing_fires_for_an_absent_user(
    history: list[tuple[float, float, list[dict[str, object]]]],
    tier: str,
    th: TenantSettings,
) -> None:
    _, _, steps = run_history(history, tier, th)
    for now, step in steps:  # type: ignore[misc]
        if step.session_over:
            assert step.fired == ()
            continue
        presence = Presence(step.state.presence)
        assert presence in (Presence.ACTIVE, Presence.IDLE, Presence.HIDDEN, Presence.AWAY)
        assert presence_at(step.state, now, th).presence is presence
        if presence is Presence.AWAY:
            assert step.fired == ()
        if presence is not Presence.ACTIVE:
            assert all(t.value != "stuck_on_page" for t, _ in step.fired)


@settings(max_examples=200, deadline=None)
@given(history=histories, tier=st.sampled_from(["free_trial", "paid"]), th=thresholds)
def test_every_episode_ends_once_the_page_falls_silent(
    history: list[tuple[float, float, list[dict[str, object]]]],
    tier: str,
    th: TenantSettings,
) -> None:
    state, now, _ = run_history(history, tier, th)
    opened = {t for t, _, _ in state.active}
    ended: set[object] = set()
    for _ in range(50):
        step = evaluate(state, now, th)
        ended |= set(step.cleared) | set(step.left)
        opened |= {t for t, _ in step.fired}
        if step.session_over:
            ended |= set(step.left)
            break
        state, now = step.state, step.next_at
    else:
        raise AssertionError("the session never ended without events")
    assert opened <= ended
