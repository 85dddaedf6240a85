"""Properties of the pure rules, over generated event histories."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tippen_rt.actors import RULES, apply_batch, evaluate, new_state
from tippen_rt.events import validate_batch
from tippen_rt.tenants import TenantSettings

T0 = 1_750_000_000.0
TH = TenantSettings()

events = st.one_of(
    st.fixed_dictionaries({"type": st.just("route"), "route": st.sampled_from(["/a", "/b"])}),
    st.fixed_dictionaries({"type": st.just("click"), "element": st.just("b")}),
    st.fixed_dictionaries({"type": st.just("error"), "message": st.just("x")}),
    st.fixed_dictionaries({"type": st.just("heartbeat")}),
    st.fixed_dictionaries(
        {"type": st.just("visibility"), "state": st.sampled_from(["visible", "hidden", "unload"])}
    ),
)
histories = st.lists(
    st.tuples(st.floats(0, 600), st.lists(events, min_size=1, max_size=5)),
    min_size=1,
    max_size=12,
)


def batch_at(t: float, evs: list[dict[str, object]], tier: str):  # type: ignore[no-untyped-def]
    ms = int(t * 1000)
    return validate_batch(
        {
            "apiKey": "k",
            "userId": "u",
            "subscriptionTier": tier,
            "events": [{"timestamp": ms, **e} for e in evs],
        },
        ms,
    )


@settings(max_examples=300, deadline=None)
@given(history=histories, tier=st.sampled_from(["free_trial", "paid"]), probe=st.floats(0, 1))
def test_next_deadline_is_in_the_future_and_nothing_changes_before_it(
    history: list[tuple[float, list[dict[str, object]]]], tier: str, probe: float
) -> None:
    now = T0
    first = batch_at(now, history[0][1], tier)
    state = new_state(1, first, now)
    for gap, evs in history:
        now += gap
        state = apply_batch(state, batch_at(now, evs, tier), now, TH)
        step = evaluate(state, now, TH)
        if step.session_over:
            return
        # No busy loop: the next wake-up is strictly later.
        assert step.next_at > now
        state = step.state
        # No missed change: every verdict holds until the deadline.
        between = now + (step.next_at - now) * probe * 0.999
        for rule in RULES.values():
            assert rule(state, between, TH).firing == rule(state, now, TH).firing
