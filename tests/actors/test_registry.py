"""Registry and actor lifecycle: spawning, sessions ending, backpressure, summaries."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from tippen_rt.actors import Feed, Registry, feed_channels
from tippen_rt.clock import Clock
from tippen_rt.events import validate_batch
from tippen_rt.persist import EventStore
from tippen_rt.tenants import TenantSettings

from .conftest import T0, TENANT, Live

ROUTE = {"type": "route", "route": "/home"}
CLICK = {"type": "click", "element": "a.nav"}


async def test_one_actor_per_user(live: Live, autojump_clock: MockClock) -> None:
    for user in ("a", "b", "a", "c", "b"):
        await live.send(user, CLICK)
    assert live.registry.live_count == 3
    assert live.registry.spawned == 3
    state = live.registry.state(1, "a")
    assert state is not None and state.total_events == 2


async def test_every_actor_step_counts_towards_a_young_collection(
    live: Live, autojump_clock: MockClock
) -> None:
    guard = live.registry.gc_guard
    guard.uninstall()  # only steps (and spawns) freeze now, not CPython's own collections
    guard.collect_every_steps = 3
    before = guard.freezes
    for _ in range(6):
        await live.send("a", CLICK)
    await trio.testing.wait_all_tasks_blocked()
    assert guard.freezes - before == 2


async def test_session_ends_five_minutes_after_the_user_went_away(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("ann", ROUTE, tier="paid")
    for t in range(30, 601, 30):
        await live.at(t)
        await live.send("ann", {"type": "heartbeat"}, tier="paid")
    # The browser vanished after 600 s: away at 690, gone 5 min later.
    await live.at(689.9)
    state = live.registry.state(1, "ann")
    assert state is not None and state.presence == "idle"
    await live.at(690)
    state = live.registry.state(1, "ann")
    assert state is not None and (state.presence, state.presence_since) == ("away", T0 + 600)
    await live.at(989.9)
    assert live.registry.live_count == 1
    await live.at(991)
    assert live.left() == [("ann", 990.0, "no heartbeat for 6 min")]
    assert live.registry.live_count == 0
    assert live.registry.state(1, "ann") is None


async def test_session_ends_after_thirty_quiet_minutes(
    live: Live, autojump_clock: MockClock
) -> None:
    patient = TenantSettings(presence_timeout_s=3600)
    await live.send("ann", ROUTE, tier="paid", settings=patient)
    await live.at(600)
    await live.send("ann", {"type": "heartbeat"}, tier="paid", settings=patient)
    await live.at(2399.9)
    assert live.registry.live_count == 1
    await live.at(2401)
    assert live.left() == [("ann", 2400.0, "session timed out")]


async def test_unload_ends_the_session_after_the_grace_period(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await live.at(100)
    await live.send("ann", {"type": "visibility", "state": "unload"}, tier="paid")
    await live.at(159.9)
    assert live.registry.live_count == 1
    await live.at(161)
    assert live.left() == [("ann", 160.0, "page closed")]


async def test_coming_back_within_the_grace_period_keeps_the_session(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await live.at(100)
    await live.send("ann", {"type": "visibility", "state": "unload"}, tier="paid")
    await live.at(110)  # a reload: the next page's first events
    await live.send("ann", ROUTE, tier="paid")
    await live.at(300)
    assert live.left() == []
    state = live.registry.state(1, "ann")
    assert state is not None and state.unloaded_at is None


async def test_a_user_who_returns_after_the_session_ended_gets_a_new_actor(
    live: Live, autojump_clock: MockClock
) -> None:
    await live.send("ann", ROUTE, tier="paid")
    await live.at(1900)
    assert live.registry.live_count == 0
    await live.send("ann", ROUTE, tier="paid")
    state = live.registry.state(1, "ann")
    assert state is not None
    assert state.session_started_at == T0 + 1900
    assert state.total_events == 1
    assert live.registry.spawned == 2


async def test_a_full_mailbox_makes_the_sender_wait(autojump_clock: MockClock) -> None:
    # Nobody consumes triggers: the actor blocks announcing one, so its
    # mailbox fills up, and deliver() must wait rather than queue forever.
    clock = Clock.starting_at(T0)
    (t_send, t_recv), (c_send, _c_recv) = feed_channels(capacity=0)
    async with trio.open_nursery() as nursery:
        registry = await nursery.start(
            Registry(clock, triggers_out=t_send, changes_out=c_send, mailbox_size=2).run
        )

        def batch(n: int):  # type: ignore[no-untyped-def]
            return validate_batch(
                {
                    "apiKey": "k",
                    "userId": "u",
                    "subscriptionTier": "paid",
                    "events": [{"type": "error", "message": f"e{n}", "timestamp": clock.now_ms()}]
                    * 4,
                },
                clock.now_ms(),
            )

        delivered = 0
        with trio.move_on_after(60):
            for n in range(10):
                await registry.deliver(TENANT, batch(n))
                delivered += 1
        # 1 taken by the actor (now stuck announcing) + 2 in its mailbox.
        assert delivered == 3
        assert registry.stats()["changes_dropped"] >= 1  # never blocked on changes
        t_recv.close()  # the consumer goes away: the actor is released
        nursery.cancel_scope.cancel()


async def test_summaries_are_written_coalesced(
    live_with_store: Live, inline_store: EventStore, autojump_clock: MockClock
) -> None:
    live = live_with_store
    assert live.summaries is not None
    for i in range(50):
        await live.send("ann", CLICK, {"type": "error", "message": f"e{i}"})
    await live.at(0.5)
    assert live.summaries.writes == 0  # still gathering
    await live.at(2)
    assert live.summaries.writes == 1 and live.summaries.rows == 1

    row = await inline_store.read(
        lambda c: c.execute(
            "SELECT user_id, total_events, total_errors, current_route, needs_support,"
            " support_reasons, session_open, last_error_at FROM user_activity_summary"
        ).fetchone()
    )
    assert row[:5] == ("ann", 100, 50, None, 1)
    assert "multiple_errors" in row[5]
    assert row[6] == 1
    assert row[7] == int(T0 * 1000)


async def test_summary_totals_add_up_across_sessions(
    live_with_store: Live, inline_store: EventStore, autojump_clock: MockClock
) -> None:
    live = live_with_store
    await live.send("ann", ROUTE, CLICK, tier="paid")
    await live.at(2000)  # session over, final summary written
    closed = await inline_store.read(
        lambda c: c.execute(
            "SELECT total_events, session_open, current_route FROM user_activity_summary"
        ).fetchone()
    )
    assert closed == (2, 0, "/home")
    await live.send("ann", ROUTE, tier="paid")
    await live.at(2010)
    total = await inline_store.read(
        lambda c: c.execute(
            "SELECT total_events, session_open FROM user_activity_summary"
        ).fetchone()
    )
    assert total == (3, 1)


async def test_summary_time_on_page_grows(
    live_with_store: Live, inline_store: EventStore, autojump_clock: MockClock
) -> None:
    live = live_with_store
    await live.send("ann", ROUTE, tier="paid")
    await live.at(30)
    await live.send("ann", {"type": "heartbeat"}, tier="paid")
    await live.at(35)
    ms = await inline_store.read(
        lambda c: c.execute("SELECT time_on_current_page FROM user_activity_summary").fetchone()[0]
    )
    assert ms == pytest.approx(31_000, abs=1)


async def test_drop_ends_an_actor_silently(live: Live, autojump_clock: MockClock) -> None:
    await live.send("ann", ROUTE, tier="paid")
    assert await live.registry.drop(1, "ann")
    await live.at(10)
    assert live.registry.live_count == 0
    assert live.registry.state(1, "ann") is None
    assert live.left() == []
    assert not await live.registry.drop(1, "ann")
    await live.send("ann", ROUTE, tier="paid")  # a later event starts afresh
    assert live.registry.live_count == 1


async def test_stopping_while_an_actor_waits_to_announce_does_not_hang(
    autojump_clock: MockClock,
) -> None:
    # The trigger consumer (Feed) is stuck; shutdown cancels it along with the
    # actors, and the actor blocked in its shielded announcement is released.
    clock = Clock.starting_at(T0)
    (t_send, t_recv), (c_send, c_recv) = feed_channels(capacity=0)
    stuck = trio.Event()

    async def never(message: object) -> None:
        stuck.set()
        await trio.sleep_forever()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            feed = await nursery.start(Feed(t_recv, c_recv).run)
            feed.subscribe_triggers(never)
            registry = await nursery.start(
                Registry(clock, triggers_out=t_send, changes_out=c_send).run
            )
            errors = [{"type": "error", "message": "x", "timestamp": clock.now_ms()}] * 4
            for user in ("a", "b"):
                await registry.deliver(
                    TENANT,
                    validate_batch(
                        {
                            "apiKey": "k",
                            "userId": user,
                            "subscriptionTier": "paid",
                            "events": errors,
                        },
                        clock.now_ms(),
                    ),
                )
            await stuck.wait()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()


async def test_live_users_are_counted_per_tenant(live: Live, autojump_clock: MockClock) -> None:
    for user in ("a", "b", "c"):
        await live.send(user, ROUTE, tier="paid")
    assert live.registry.live_count_of(1) == 3 and live.registry.live_count_of(2) == 0
    assert await live.registry.drop(1, "b")  # erased
    await live.send("a", {"type": "visibility", "state": "unload"}, tier="paid")
    await live.at(120)  # a's unload grace is over
    assert live.registry.live_by_tenant() == {1: 1}
    await live.send("a", ROUTE, tier="paid")  # a new session
    assert live.registry.live_by_tenant() == {1: 2}
    assert {live.registry.is_live(1, u) for u in ("a", "c")} == {True}
