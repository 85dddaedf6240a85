"""The notifier against a Slack stand-in: lifecycle, rate limit, retries, restarts."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from trio.testing import MockClock

from tippen_rt.actors import Trigger
from tippen_rt.alerts import AlertOpened, AlertUpdated, DeliveryPolicy
from tippen_rt.clock import Clock
from tippen_rt.http import TenantDirectory
from tippen_rt.persist import EventStore, create_tenant, list_alerts, run_inline
from tippen_rt.tenants import TenantSettings

from .conftest import (
    FAST_CLIENT,
    T0,
    Actors,
    Env,
    bot_settings,
    configure,
    start_notifier,
    webhook_settings,
)
from .slack_server import CHANNEL_ID, SlackStandIn, dead_url


def header(body: dict[str, object]) -> str:
    blocks = body["blocks"]
    assert isinstance(blocks, list)
    return str(blocks[0]["text"]["text"])


async def test_a_trigger_becomes_one_webhook_message(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **webhook_settings(slack))
    alert = await env.fire("ann")
    assert alert.delivery_status == "pending"
    await env.settle()

    assert len(slack.posts) == 1
    body = slack.posts[0]
    assert "ann@example.com" in str(body["text"])
    assert header(body) == ":sos: User needs support: Stuck on a page"
    [alert] = await env.alerts("ann")
    assert alert.delivery_status == "sent"
    assert alert.attempts == 1
    assert alert.slack_ts is None  # webhooks give no handle on the message
    assert env.actors.sent == [(env.tenant.id, "ann", T0)]
    assert [type(m) for m in env.seen] == [AlertOpened, AlertUpdated]
    assert env.seen[-1].alert == alert


async def test_no_slack_configured_records_the_alert_as_disabled(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    alert = await env.fire("ann")
    await env.settle()
    assert alert.delivery_status == "disabled"
    assert slack.requests == []
    assert env.actors.sent == []


async def test_one_message_per_user_per_10_min_under_a_storm(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **webhook_settings(slack))
    users = ["ann", "bob"]
    triggers = list(Trigger)
    # Every 7 s for 31 min, each user fires a trigger and recovers from it.
    for step in range(0, 31 * 60 // 7 + 1):
        await trio.sleep_until(env.clock.to_trio(T0 + step * 7))
        for user in users:
            trigger = triggers[step % len(triggers)]
            await env.fire(user, trigger)
            await env.clear(user, trigger)
    await env.settle()

    # Slack got messages at 0, 10, 20 and 30 min for each user, and no others.
    assert len(slack.posts) == 4 * len(users)
    for user in users:
        alerts = await env.alerts(user)
        sent = sorted((a for a in alerts if a.delivery_status == "sent"), key=lambda a: a.id)
        opened = [round((a.opened_at / 1000 - T0) / 60, 2) for a in sent]
        assert opened == [0.0, 10.03, 20.07, 30.1]  # first 7 s step at or after each 10 min
        suppressed = [a for a in alerts if a.delivery_status == "suppressed"]
        assert len(suppressed) + len(sent) == len(alerts)
        # Each delivered alert counts the triggers held back while it was the latest.
        assert sum(a.suppressed_count for a in sent) == len(suppressed)
        assert all(a.status == "resolved" for a in alerts)
    assert [at for _, user, at in env.actors.sent if user == "ann"] == [
        a.opened_at / 1000
        for a in sorted(await env.alerts("ann"), key=lambda a: a.id)
        if a.delivery_status == "sent"
    ]


async def test_the_rate_limit_is_a_tenant_setting(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(
        env.store, env.directory, env.tenant, alert_rate_limit_s=60, **webhook_settings(slack)
    )
    for t in (0, 30, 59, 60, 90, 121):
        await trio.sleep_until(env.clock.to_trio(T0 + t))
        await env.fire("ann", Trigger.MULTIPLE_ERRORS)
    await env.settle()
    alerts = sorted(await env.alerts("ann"), key=lambda a: a.id)
    assert [a.delivery_status for a in alerts] == [
        "sent",
        "suppressed",
        "suppressed",
        "sent",
        "suppressed",
        "sent",
    ]
    # Firing again while an alert for the same trigger is open closes the old one.
    assert [a.resolution for a in alerts[:-1]] == ["superseded"] * 5
    assert len(slack.posts) == 3


async def test_a_429_is_retried_after_retry_after(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **webhook_settings(slack))
    # slack-sdk's RateLimitErrorRetryHandler takes the first 429 itself; the
    # second one comes back to the notifier, which retries later.
    slack.rate_limit_next(2, retry_after=0)
    await env.fire("ann")
    await env.settle()
    assert [r.status for r in slack.requests] == [429, 429, 200]
    assert len(slack.posts) == 1
    [alert] = await env.alerts("ann")
    assert (alert.delivery_status, alert.attempts, alert.last_error) == ("sent", 2, None)


async def test_server_errors_are_retried_with_backoff(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **webhook_settings(slack))
    slack.fail_next(3, status=500)
    attempts_at: list[float] = []
    env.notifier.subscribe(
        lambda m: attempts_at.append(round(env.t(), 3)) if isinstance(m, AlertUpdated) else None
    )
    await env.fire("ann")
    await env.settle()
    # Back-off 5, 10, 20 s (virtual) between the attempts, then it went through.
    assert attempts_at == [0.0, 5.0, 15.0, 35.0]
    [alert] = await env.alerts("ann")
    assert (alert.delivery_status, alert.attempts) == ("sent", 4)
    assert len(slack.posts) == 1


async def test_a_dead_slack_fails_the_alert_after_the_retry_window(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, slack_webhook_url=dead_url() + "/hook")
    await env.fire("ann")
    await env.settle()
    [alert] = await env.alerts("ann")
    assert alert.delivery_status == "failed"
    assert alert.last_error is not None and "cannot reach Slack" in alert.last_error
    assert alert.attempts > 3
    assert round(env.t()) == 15 * 60  # the last attempt is at the end of the window
    assert env.actors.sent == []
    # The failed alert did not use up the user's rate limit: Slack is back, the
    # next trigger goes out at once.
    await configure(env.store, env.directory, env.tenant, **webhook_settings(slack))
    again = await env.fire("ann", Trigger.MULTIPLE_ERRORS)
    await env.settle()
    assert again.delivery_status == "pending"
    assert len(slack.posts) == 1


async def test_triggers_held_back_while_a_message_was_pending_go_out_when_it_fails(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **webhook_settings(slack))
    slack.fail_next(1, status=503)  # ann's first message waits for a retry ...
    slack.fail_next(1, status=404, error="no_service")  # ... which Slack refuses for good
    first = await env.fire("ann")
    await trio.sleep_until(env.clock.to_trio(T0 + 2))
    held = await env.fire("ann", Trigger.MULTIPLE_ERRORS)
    await trio.sleep_until(env.clock.to_trio(T0 + 3))
    also_held = await env.fire("ann", Trigger.LONG_INACTIVITY)
    assert (held.delivery_status, also_held.delivery_status) == ("suppressed", "suppressed")
    await env.settle()

    by_id = {a.id: a for a in await env.alerts("ann")}
    assert by_id[first.id].delivery_status == "failed"
    # The failure freed the slot: the next trigger held back went out instead,
    # counting the one held back after it.
    released = by_id[held.id]
    assert (released.delivery_status, released.suppressed_count) == ("sent", 1)
    assert released.pending_since == int((T0 + 5) * 1000)
    assert by_id[also_held.id].delivery_status == "suppressed"
    [post] = slack.posts
    assert header(post) == ":sos: User needs support: Repeated errors"
    assert env.actors.sent == [(env.tenant.id, "ann", T0 + 2)]
    assert env.notifier.stats.released == 1


async def test_a_held_back_trigger_gets_its_own_retry_window_after_the_failure(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, slack_webhook_url=dead_url() + "/hook")
    first = await env.fire("ann")
    await trio.sleep_until(env.clock.to_trio(T0 + 60))
    held = await env.fire("ann", Trigger.MULTIPLE_ERRORS)
    # A recovered user needs nobody: what was held back for them stays so.
    recovered = await env.fire("ann", Trigger.LOW_ACTIVITY)
    await env.clear("ann", Trigger.LOW_ACTIVITY)
    # Slack stays down past the first message's window (15 min) ...
    await trio.sleep_until(env.clock.to_trio(T0 + 15 * 60 + 30))
    by_id = {a.id: a for a in await env.alerts("ann")}
    assert by_id[first.id].delivery_status == "failed"
    assert by_id[held.id].delivery_status == "pending"
    assert by_id[held.id].pending_since == int((T0 + 15 * 60) * 1000)
    # ... and comes back within the held-back trigger's own window.
    await configure(env.store, env.directory, env.tenant, **webhook_settings(slack))
    await env.settle()
    by_id = {a.id: a for a in await env.alerts("ann")}
    assert by_id[held.id].delivery_status == "sent"
    assert by_id[recovered.id].delivery_status == "suppressed"
    assert len(slack.posts) == 1


async def test_slack_refusing_the_message_fails_it_at_once(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(
        env.store, env.directory, env.tenant, slack_webhook_url=slack.url + "/services/wrong"
    )
    await env.fire("ann")
    await env.settle()
    [alert] = await env.alerts("ann")
    assert (alert.delivery_status, alert.attempts) == ("failed", 1)
    assert alert.last_error == "HTTP 404: no_service"
    assert env.t() == 0


async def test_a_claim_shows_on_the_slack_message_and_is_kept_for_response_times(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **bot_settings(slack))
    first = await env.fire("ann")
    await env.settle()
    await trio.sleep(42)
    [claimed] = await env.notifier.claim(env.tenant.id, "ann", "Ada Park", 3)
    assert env.actors.claimed == [(env.tenant.id, "ann", "Ada Park", 3)]
    await env.settle()
    assert (claimed.id, claimed.claimed_by, claimed.claimed_at) == (
        first.id,
        "Ada Park",
        claimed.first_claimed_at,
    )
    assert claimed.first_claimed_at == int((T0 + 42) * 1000)
    message = slack.messages[(CHANNEL_ID, str(claimed.slack_ts))]
    assert header(message) == ":raising_hand: Being helped: Stuck on a page"
    assert "*Ada Park* is on it" in str(message["blocks"])
    assert message["text"].startswith("Being helped by Ada Park: ")

    # A trigger that fires while the user is claimed is claimed from the start.
    later = await env.fire(
        "ann", Trigger.MULTIPLE_ERRORS, claimed_by="Ada Park", claimed_at=T0 + 42
    )
    assert (later.claimed_by, later.first_claimed_at) == ("Ada Park", later.opened_at)

    # Taken over, then released: the first claim stays.
    await trio.sleep(10)
    await env.notifier.claim(env.tenant.id, "ann", "Bo Chen", 4)
    released = await env.notifier.claim(env.tenant.id, "ann", None)
    await env.settle()
    assert {a.id for a in released} == {first.id, later.id}
    by_id = {a.id: a for a in await env.alerts("ann")}
    assert by_id[first.id].claimed_by is None
    assert (by_id[first.id].first_claimed_by, by_id[first.id].first_claimed_at) == (
        "Ada Park",
        int((T0 + 42) * 1000),
    )
    message = slack.messages[(CHANNEL_ID, str(claimed.slack_ts))]
    assert header(message) == ":sos: User needs support: Stuck on a page"


async def test_bot_mode_updates_the_message_on_resolve(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **bot_settings(slack))
    await env.fire("ann")
    await env.settle()
    [alert] = await env.alerts("ann")
    assert (alert.slack_channel, alert.slack_ts) == (CHANNEL_ID, "1750000000.000001")
    assert header(slack.messages[(CHANNEL_ID, alert.slack_ts)]) == (
        ":sos: User needs support: Stuck on a page"
    )

    await trio.sleep(90)
    await env.clear("ann")
    await env.settle()
    [alert] = await env.alerts("ann")
    assert alert.status == "resolved" and not alert.slack_needs_update
    assert len(slack.posts) == 1 and len(slack.updates) == 1
    message = slack.messages[(CHANNEL_ID, alert.slack_ts)]
    assert header(message) == ":white_check_mark: Resolved: Stuck on a page"
    assert "the user recovered" in str(message["blocks"])
    assert alert.resolution == "recovered"


async def test_bot_mode_shows_a_user_who_left_before_anyone_helped(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **bot_settings(slack))
    await env.fire("ann")
    await env.settle()
    await trio.sleep(120)
    await env.clear("ann", left=True)
    await env.settle()
    [alert] = await env.alerts("ann")
    assert (alert.status, alert.resolution) == ("resolved", "user_left")
    assert alert.reason == "on /billing for 5 min without moving on"
    assert len(slack.posts) == 1 and len(slack.updates) == 1
    message = slack.messages[(CHANNEL_ID, alert.slack_ts)]
    assert header(message) == ":door: User left: Stuck on a page"
    assert "before anyone helped" in str(message["blocks"])
    assert str(message["text"]).startswith("Resolved: ann@example.com")


async def test_bot_mode_updates_the_message_on_acknowledge(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **bot_settings(slack))
    first = await env.fire("ann")
    second = await env.fire("ann", Trigger.MULTIPLE_ERRORS)  # held back by the rate limit
    await env.settle()

    acked = await env.notifier.acknowledge(env.tenant.id, first.id, "alice@support")
    assert acked is not None and acked.status == "acknowledged"
    assert acked.acknowledged_by == "alice@support"
    await env.settle()
    assert env.actors.acknowledged == [(env.tenant.id, "ann", "alice@support")]
    # The user's other open alert is acknowledged with it.
    by_id = {a.id: a for a in await env.alerts("ann")}
    assert by_id[second.id].status == "acknowledged"
    assert by_id[second.id].delivery_status == "suppressed"
    message = slack.messages[(CHANNEL_ID, str(by_id[first.id].slack_ts))]
    assert header(message) == ":eyes: Acknowledged: Stuck on a page"
    assert "Acknowledged by *alice@support*" in str(message["blocks"])
    assert "+1 more trigger for this user held back by the rate limit" in str(message["blocks"])
    assert len(slack.posts) == 1 and len(slack.updates) == 1

    # Another tenant's id, or an unknown one: nothing.
    assert await env.notifier.acknowledge(env.tenant.id + 1, first.id, "eve") is None
    assert await env.notifier.acknowledge(env.tenant.id, 9999, "eve") is None


async def test_a_resolve_before_the_post_goes_out_is_in_the_first_message(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **bot_settings(slack))
    slack.fail_next(1, status=503)
    await env.fire("ann")
    await env.clear("ann")  # while the post waits for its retry
    await env.settle()
    assert len(slack.posts) == 1 and slack.updates == []
    assert header(slack.posts[0]) == ":white_check_mark: Resolved: Stuck on a page"
    [alert] = await env.alerts("ann")
    assert (alert.delivery_status, alert.slack_needs_update) == ("sent", False)


async def test_a_failing_update_is_retried(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(env.store, env.directory, env.tenant, **bot_settings(slack))
    await env.fire("ann")
    await env.settle()
    slack.fail_next(2, status=500, error="internal_error")
    await env.clear("ann")
    await env.settle()
    assert [r.status for r in slack.requests] == [200, 500, 500, 200]
    [alert] = await env.alerts("ann")
    assert not alert.slack_needs_update and alert.last_error is None
    assert header(slack.updates[-1]) == ":white_check_mark: Resolved: Stuck on a page"


async def test_a_bad_bot_token_fails_the_alert_with_slacks_error(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(
        env.store, env.directory, env.tenant, slack_bot_token="xoxb-wrong", slack_channel="#support"
    )
    await env.fire("ann")
    await env.settle()
    [alert] = await env.alerts("ann")
    assert (alert.delivery_status, alert.last_error) == ("failed", "invalid_auth")


async def test_alerts_beyond_the_queue_wait_in_sqlite_and_all_go_out_once(
    autojump_clock: MockClock,
    nursery: trio.Nursery,
    inline_store: EventStore,
    slack: SlackStandIn,
) -> None:
    store = inline_store
    settings = TenantSettings(slack_webhook_url=slack.webhook_url)
    tenant, _ = await store.write(lambda c: create_tenant(c, "acme", [], settings))
    directory = TenantDirectory(store)
    await directory.reload()
    clock = Clock.starting_at(T0)
    policy = DeliveryPolicy(delivery_tasks=1, queue_size=2, client=FAST_CLIENT)
    notifier = await start_notifier(
        nursery, store, directory, clock, slack, policy=policy, start=False
    )
    env = Env(store, clock, directory, tenant, Actors(), notifier, [])
    for i in range(7):  # nothing delivers yet: 2 queued, 5 only in SQLite
        await env.fire(f"user-{i}")
    assert notifier.stats.overflows == 5
    await nursery.start(notifier.run)
    await env.settle()
    assert sorted(str(p["text"]).split(":")[1].split()[0] for p in slack.posts) == sorted(
        f"user-{i}@example.com" for i in range(7)
    )
    assert {a.delivery_status for a in await env.alerts()} == {"sent"}


async def test_the_rate_limit_and_pending_alerts_survive_a_restart(
    autojump_clock: MockClock, tmp_path: Path, slack: SlackStandIn
) -> None:
    db = tmp_path / "restart.db"
    clock = Clock.starting_at(T0)
    settings = TenantSettings(slack_webhook_url=slack.webhook_url)

    async def run(body):  # type: ignore[no-untyped-def]
        """Run ``body(env)`` in a fresh process-like setup over the same file."""
        async with trio.open_nursery() as nursery:
            store = EventStore(db, offload=run_inline)
            await nursery.start(store.run)
            directory = TenantDirectory(store)
            await directory.reload()
            tenant = directory.all()[0] if directory.all() else None
            if tenant is None:
                tenant, _ = await store.write(lambda c: create_tenant(c, "acme", [], settings))
                await directory.reload()
            notifier = await start_notifier(nursery, store, directory, clock, slack)
            await body(Env(store, clock, directory, tenant, Actors(), notifier, []))
            await store.close()
            nursery.cancel_scope.cancel()

    async def first_life(env: Env) -> None:
        await env.fire("ann")
        await env.settle()
        slack.fail_next(1)  # bob's message waits for a retry when the process stops
        await env.fire("bob")

    async def second_life(env: Env) -> None:
        await env.settle()  # bob's pending alert is posted on start
        await trio.sleep_until(clock.to_trio(T0 + 5 * 60))
        held = await env.fire("ann", Trigger.MULTIPLE_ERRORS)
        await trio.sleep_until(clock.to_trio(T0 + 10 * 60))
        sent = await env.fire("ann", Trigger.LONG_INACTIVITY)
        await env.settle()
        assert held.delivery_status == "suppressed"
        assert sent.delivery_status == "pending"

    with trio.fail_after(3600):
        await run(first_life)
        await run(second_life)

    texts = [str(p["text"]) for p in slack.posts]
    assert len(texts) == 3
    assert "ann@example.com" in texts[0]
    assert "bob@example.com" in texts[1]
    assert "ann@example.com" in texts[2] and "Long inactivity" in texts[2]
    conn_store = EventStore(db, offload=run_inline)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn_store.run)
        alerts = await conn_store.read(lambda c: list_alerts(c, 1, limit=100))
        await conn_store.close()
    assert [(a.user_id, a.delivery_status) for a in sorted(alerts, key=lambda a: a.id)] == [
        ("ann", "sent"),
        ("bob", "sent"),
        ("ann", "suppressed"),
        ("ann", "sent"),
    ]


async def test_a_subscriber_that_raises_does_not_stop_the_notifier(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    def broken(message: object) -> None:
        raise RuntimeError("dashboard bug")

    env.notifier.subscribe(broken)
    await configure(env.store, env.directory, env.tenant, **webhook_settings(slack))
    await env.fire("ann")
    await env.settle()
    assert len(slack.posts) == 1


async def test_beyond_the_tenants_slack_budget_one_digest_replaces_many_messages(
    env: Env, slack: SlackStandIn, autojump_clock: MockClock
) -> None:
    await configure(
        env.store, env.directory, env.tenant, slack_max_per_minute=2, **webhook_settings(slack)
    )
    for i in range(6):  # six users need help at once (a bad deploy, or fake users)
        await env.fire(f"user-{i}")
    await env.settle()
    assert len(slack.posts) == 2  # the budget
    alerts = await env.alerts()
    assert len(alerts) == 6  # every alert recorded (and on the dashboard)
    held = [a for a in alerts if a.delivery_status == "suppressed"]
    assert len(held) == 4 and all("counted in a digest" in (a.last_error or "") for a in held)
    await trio.sleep(61)  # the minute has room again: one digest for the four
    await env.settle()
    assert len(slack.posts) == 3
    digest = slack.posts[-1]
    assert "4 more users need help" in str(digest["text"])
    assert env.notifier.stats.held_back == 4 and env.notifier.stats.digests == 1
    # And then single messages again.
    await env.fire("user-late")
    await env.settle()
    assert len(slack.posts) == 4
