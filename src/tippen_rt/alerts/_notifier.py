"""The Notifier: every trigger becomes a stored alert; some become Slack messages.

Intake (:meth:`Notifier.on_trigger`, awaited by the Feed for every trigger in
order) only writes SQLite and puts an alert id on a bounded queue with
``send_nowait``: it never waits for Slack.  If the queue is full the alert
stays ``pending`` in SQLite and is picked up when the queue has room again
(and, after a restart, at start-up): nothing is lost, nothing blocks an actor.

Delivery tasks take alert ids off the queue and bring Slack in line with the
stored alert: post it if it is pending, update the posted message (bot mode)
if it changed since.  The slack-sdk calls run in worker threads under the
notifier's own capacity limiter (never the default one, which SQLite needs).
A call that fails transiently is retried after a back-off that is a sleeping
task (a deadline, not a polling loop) until the retry window closes; then
the alert is marked failed.  At most one delivery task works on an alert at a
time, so an update never overtakes its post and no alert is posted twice.

On shutdown, a Slack call on the wire is shielded for a short grace period,
so that what Slack took is recorded as sent and not posted again at the next
start; anything still pending then goes out after the restart.

The rate limit (one Slack message per user per ``alert_rate_limit_s``) is
decided when the alert is recorded, in the same transaction, from the
``alert_rate_limits`` table: it holds across restarts.  A message that
finally fails frees its slot, and the next trigger it held back (still
unresolved) goes out in its place.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ..actors import TriggerCleared, TriggerFired, TriggerMessage
from ..calls import Invitation
from ..clock import Clock
from ..config import Settings
from ..persist import (
    PENDING,
    RECOVERED,
    SENT,
    SWITCHED_OFF,
    USER_LEFT,
    Alert,
    EventStore,
    NewAlert,
    StoreClosed,
    acknowledge_alert,
    alert_by_id,
    claim_alerts,
    give_up_update,
    mark_disabled,
    mark_failed,
    mark_held_back,
    mark_sent,
    mark_updated,
    open_alert,
    record_attempt_error,
    record_call,
    release_held_back,
    resolve_alerts,
    undelivered_alert_ids,
)
from ..tenants import Tenant, TenantSettings
from ._digest import SlackBudget, render_digest
from ._messages import AlertMessage, AlertOpened, AlertUpdated
from ._render import render_alert
from ._slack import (
    ClientOptions,
    Posted,
    SlackDefaults,
    SlackError,
    SlackTarget,
    post_message,
    slack_target,
    update_message,
)

log = logging.getLogger(__name__)

Offload = Callable[..., Awaitable[Any]]


class TenantLookup(Protocol):
    """Finds a tenant by id (the HTTP layer's TenantDirectory)."""

    async def by_id(self, tenant_id: int) -> Tenant | None:
        """The tenant with ``tenant_id``, or None."""


class ActorNotes(Protocol):
    """What the notifier tells the live actors (the Registry)."""

    async def acknowledge(self, tenant_id: int, user_id: str, by: str) -> bool:
        """An admin has seen the user."""

    async def alert_sent(self, tenant_id: int, user_id: str, at: float) -> bool:
        """A Slack alert for the user went out at ``at`` (epoch seconds)."""

    async def claim(self, tenant_id: int, user_id: str, by: str | None, agent_id: int = 0) -> bool:
        """``by`` is helping the user now (None: nobody)."""


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard and how long the notifier tries Slack."""

    #: Delivery tasks, and worker threads in Slack calls at once.
    delivery_tasks: int = 4
    #: Alert ids waiting for a delivery task; beyond it they wait in SQLite.
    queue_size: int = 256
    #: A failing alert is retried this long after it was opened, then marked failed.
    retry_window_s: float = 15 * 60.0
    #: Back-off after the first failure; doubles per attempt up to ``max_retry_s``.
    first_retry_s: float = 5.0
    max_retry_s: float = 120.0
    #: On shutdown, a Slack call on the wire gets this long to finish and be
    #: recorded, so a graceful restart does not post it again.
    shutdown_grace_s: float = 5.0
    client: ClientOptions = field(default_factory=ClientOptions)

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        """The policy with ``TIPPEN_SLACK_RETRY_WINDOW_S``, ``TIPPEN_SLACK_TIMEOUT_S``
        and, for calls on the wire at shutdown, ``TIPPEN_GRACEFUL_TIMEOUT_S``."""
        return cls(
            retry_window_s=settings.slack_retry_window_s,
            shutdown_grace_s=settings.graceful_timeout_s,
            client=ClientOptions.from_settings(settings),
        )

    def backoff_s(self, attempts: int, retry_after_s: float | None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        delay = min(self.max_retry_s, self.first_retry_s * 2.0 ** max(0, attempts - 1))
        return max(delay, retry_after_s or 0.0)


@dataclass(slots=True)
class NotifierStats:
    """Counters for health pages and tests."""

    recorded: int = 0
    suppressed: int = 0
    posted: int = 0
    updated: int = 0
    failed: int = 0
    retries: int = 0
    overflows: int = 0
    #: Alerts over a tenant's Slack budget, and the digests that counted them.
    held_back: int = 0
    digests: int = 0
    #: Triggers held back by the rate limit, posted after the message that held
    #: them back failed.
    released: int = 0


class Notifier:
    """Records alerts and delivers them to Slack. Start with ``nursery.start(notifier.run)``.

    Subscribe it to the Feed with ``feed.subscribe_triggers(notifier.on_trigger)``.
    """

    def __init__(
        self,
        store: EventStore,
        tenants: TenantLookup,
        actors: ActorNotes,
        clock: Clock,
        *,
        public_url: str = "",
        slack: SlackDefaults | None = None,
        policy: DeliveryPolicy | None = None,
        offload: Offload | None = None,
    ) -> None:
        """``offload`` runs blocking Slack calls; a worker thread by default.

        Tests on virtual time pass ``tippen_rt.persist.run_inline``, with the
        Slack stand-in serving from another thread.
        """
        self._store = store
        self._tenants = tenants
        self._actors = actors
        self._clock = clock
        #: The dashboard's URL, for links in messages (the demo sets it once it knows it).
        self.public_url = public_url
        self._slack = slack or SlackDefaults()
        self._policy = policy or DeliveryPolicy()
        self._limiter = trio.CapacityLimiter(self._policy.delivery_tasks)
        self._offload: Offload = offload or self._in_thread
        self._send, self._recv = trio.open_memory_channel[int](self._policy.queue_size)
        self._queued: set[int] = set()
        self._in_flight: set[int] = set()
        self._again: set[int] = set()
        self._retrying: set[int] = set()
        #: Alerts whose scheduled retry is due: they get their attempt even at
        #: the very end of the retry window.
        self._retry_due: set[int] = set()
        self._update_failing_since: dict[int, int] = {}
        self._overflowed = False
        self._settled: trio.Event | None = None
        self._subscribers: list[Callable[[AlertMessage], None]] = []
        self._nursery: trio.Nursery | None = None
        #: Shielded scopes of Slack calls in progress, and the grace deadline
        #: they get once shutdown begins.
        self._calls: set[trio.CancelScope] = set()
        self._grace_deadline = math.inf
        self.stats = NotifierStats()
        self._budget = SlackBudget()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: EventStore,
        tenants: TenantLookup,
        actors: ActorNotes,
        clock: Clock,
    ) -> Notifier:
        """The service's notifier: defaults, links and retry policy from ``settings``."""
        slack = SlackDefaults.from_settings(settings)
        if not settings.public_url and not settings.demo:  # the demo links to itself
            log.warning("TIPPEN_PUBLIC_URL is not set: Slack alerts will not link to the dashboard")
        if slack.webhook_url or (slack.bot_token and slack.channel):
            target = slack_target(TenantSettings(), slack)
            assert target is not None
            log.info("Slack alerts for tenants without their own target: %s", target.describe())
        return cls(
            store,
            tenants,
            actors,
            clock,
            public_url=settings.public_url,
            slack=slack,
            policy=DeliveryPolicy.from_settings(settings),
        )

    # ---- lifecycle -------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[Notifier] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver until cancelled; first queue what an earlier run left undelivered.

        Cancelled mid-call, an alert stays ``pending`` and the next start posts it.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._grant_grace_on_cancel)
            for _ in range(self._policy.delivery_tasks):
                nursery.start_soon(self._deliver)
            await self._refill()
            task_status.started(self)

    async def _grant_grace_on_cancel(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            # Shutdown: calls on the wire may finish (and be recorded) until then.
            self._grace_deadline = trio.current_time() + self._policy.shutdown_grace_s
            for scope in self._calls:
                scope.deadline = min(scope.deadline, self._grace_deadline)

    @contextlib.contextmanager
    def _slack_call(self) -> Iterator[trio.CancelScope]:
        """A shield for one Slack call and its bookkeeping, bounded once shutdown begins.

        Without it, a shutdown would abandon a call Slack may already have taken,
        the alert would stay pending, and the next start would post it twice.
        """
        with trio.CancelScope(shield=True, deadline=self._grace_deadline) as scope:
            self._calls.add(scope)
            try:
                yield scope
            finally:
                self._calls.discard(scope)
        if scope.cancelled_caught:
            log.warning("shutdown: a Slack call was abandoned; its alert stays for the next start")

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(
            fn, *args, abandon_on_cancel=True, limiter=self._limiter
        )

    # ---- public API ------------------------------------------------------

    def subscribe(self, callback: Callable[[AlertMessage], None]) -> None:
        """Call ``callback`` (synchronously; it must not block) on every alert change."""
        self._subscribers.append(callback)

    async def on_trigger(self, message: TriggerMessage) -> None:
        """Record a fired trigger as an alert, or resolve alerts of a cleared one.

        Waits for SQLite only, never for Slack.  Errors are logged, not raised:
        the Feed must go on.
        """
        try:
            if isinstance(message, TriggerFired):
                await self._fired(message)
            elif isinstance(message, TriggerCleared):
                await self._cleared(message)
        except StoreClosed:
            log.warning(
                "store closed: %s for %s/%s not recorded",
                type(message).__name__,
                message.state.tenant_id,
                message.state.user_id,
            )
        except Exception:
            log.exception("recording %s failed", type(message).__name__)

    async def acknowledge(self, tenant_id: int, alert_id: int, by: str) -> Alert | None:
        """An admin (``by``) has seen alert ``alert_id`` of ``tenant_id``.

        Acknowledges it and the user's other unresolved alerts, tells the user's
        actor (``needs_support`` clears), and in bot mode updates the Slack
        messages.  Returns the alert, or None if the tenant has no such alert.
        """
        now = self._clock.now_ms()
        alerts = await self._store.write(
            lambda c: acknowledge_alert(c, tenant_id, alert_id, by, now=now)
        )
        if alerts is None:
            return None
        for alert in alerts:
            self._changed(alert)
        await self._actors.acknowledge(tenant_id, alerts[0].user_id, by)
        return alerts[0]

    async def claim(
        self, tenant_id: int, user_id: str, by: str | None, agent_id: int = 0
    ) -> list[Alert]:
        """``by`` (agent ``agent_id``; 0: the admin token) is helping the user now
        ("I'm on it"), or nobody is (``by`` None: released).

        Marks the user's unresolved alerts (bot mode updates their Slack
        messages) and tells the user's actor, whose state every dashboard
        follows.  Returns the alerts that changed.
        """
        now = self._clock.now_ms()
        alerts = await self._store.write(lambda c: claim_alerts(c, tenant_id, user_id, by, now=now))
        for alert in alerts:
            self._changed(alert)
        await self._actors.claim(tenant_id, user_id, by, agent_id)
        return alerts

    async def call_changed(self, invitation: Invitation) -> None:
        """A video call was started with a user, or its invitation to their page
        changed (shown, joined, declined, ignored): the user's alerts say so (bot
        mode updates their Slack messages).  The CallBoard awaits this."""
        now = self._clock.now_ms()
        alerts = await self._store.write(
            lambda c: record_call(
                c,
                invitation.tenant_id,
                invitation.user_id,
                invitation.call_id,
                invitation.agent,
                invitation.alert_status,
                now=now,
            )
        )
        for alert in alerts:
            self._changed(alert)

    async def call_not_invited(self, tenant_id: int, user_id: str, call_id: int, by: str) -> None:
        """A video call started while the tenant has invitations off: the alerts
        of the user say so (the agent shares the link some other way)."""
        now = self._clock.now_ms()
        alerts = await self._store.write(
            lambda c: record_call(c, tenant_id, user_id, call_id, by, "not_invited", now=now)
        )
        for alert in alerts:
            self._changed(alert)

    async def wait_settled(self) -> None:
        """Return once nothing is queued, in flight, or waiting to be retried."""
        while not self._is_settled():
            if self._settled is None:
                self._settled = trio.Event()
            await self._settled.wait()

    @property
    def backlog(self) -> int:
        """Alerts queued, in flight or waiting to retry (in memory)."""
        return len(self._queued | self._in_flight | self._retrying)

    # ---- intake ----------------------------------------------------------

    async def _tenant(self, tenant_id: int) -> tuple[Tenant | None, TenantSettings]:
        tenant = await self._tenants.by_id(tenant_id)
        return tenant, (tenant.settings if tenant is not None else TenantSettings())

    async def _fired(self, message: TriggerFired) -> None:
        state = message.state
        tenant, settings = await self._tenant(state.tenant_id)
        if tenant is None:
            # Removed (tippen-rt tenant remove) while its user was live: the
            # actor is being dropped; nobody is to be paged about it.
            log.info("trigger for %s/%s ignored: no such tenant", state.tenant_id, state.user_id)
            return
        target = slack_target(settings, self._slack)
        new = NewAlert(
            tenant_id=state.tenant_id,
            user_id=state.user_id,
            trigger=message.trigger.value,
            reason=message.reason,
            user_email=state.email,
            user_name=state.name,
            tier=state.tier,
            route=state.current_route,
            time_on_page_ms=int(state.time_on_current_page(message.at) * 1000),
            total_events=state.total_events,
            total_errors=state.total_errors,
            last_active_at=int(state.last_event_at * 1000),
            opened_at=int(message.at * 1000),
            claimed_by=state.claimed_by,
            claimed_at=None if state.claimed_at is None else int(state.claimed_at * 1000),
        )
        hint = None if state.last_alert_sent_at is None else int(state.last_alert_sent_at * 1000)
        rate_limit_ms = int(settings.alert_rate_limit_s * 1000)
        now = self._clock.now_ms()
        opened = await self._store.write(
            lambda c: open_alert(
                c,
                new,
                slack_enabled=target is not None,
                rate_limit_ms=rate_limit_ms,
                last_sent_hint=hint,
                now=now,
            )
        )
        for old in opened.superseded:
            self._changed(old)
        alert = opened.alert
        self.stats.recorded += 1
        self._publish(AlertOpened(alert))
        if opened.covering is not None:
            self._publish(AlertUpdated(opened.covering))
        if alert.delivery_status == PENDING:
            log.info("alert #%d for %s/%s: to Slack", alert.id, alert.tenant_id, alert.user_id)
            self._want(alert.id)
        elif alert.suppressed:
            self.stats.suppressed += 1
            log.info(
                "alert #%d for %s/%s: held back by the rate limit",
                alert.id,
                alert.tenant_id,
                alert.user_id,
            )
        else:
            log.info(
                "alert #%d for %s/%s: no Slack configured (dashboard only)",
                alert.id,
                alert.tenant_id,
                alert.user_id,
            )

    async def _cleared(self, message: TriggerCleared) -> None:
        state = message.state
        at, now = int(message.at * 1000), self._clock.now_ms()
        resolution = RECOVERED
        if message.user_left:
            resolution = USER_LEFT
        elif message.switched_off:
            resolution = SWITCHED_OFF
        resolved = await self._store.write(
            lambda c: resolve_alerts(
                c,
                state.tenant_id,
                state.user_id,
                message.trigger.value,
                at=at,
                now=now,
                resolution=resolution,
            )
        )
        for alert in resolved:
            self._changed(alert)

    def _changed(self, alert: Alert) -> None:
        self._publish(AlertUpdated(alert))
        if alert.slack_needs_update:
            self._want(alert.id)

    def _publish(self, message: AlertMessage) -> None:
        for callback in self._subscribers:
            try:
                callback(message)
            except Exception:
                log.exception("alert subscriber %r failed", callback)

    # ---- the queue -------------------------------------------------------

    def _want(self, alert_id: int) -> None:
        """Make sure a delivery task looks at ``alert_id`` (soon, or after its retry)."""
        if alert_id in self._in_flight:
            self._again.add(alert_id)
        elif alert_id in self._queued or alert_id in self._retrying:
            return  # it will read the latest row when its turn comes
        else:
            try:
                self._send.send_nowait(alert_id)
            except trio.WouldBlock:
                # It waits in SQLite (pending / needs update) for room in the queue.
                self._overflowed = True
                self.stats.overflows += 1
                return
            self._queued.add(alert_id)

    async def _refill(self) -> None:
        """Queue alerts SQLite says still need Slack (after an overflow or a restart)."""
        self._overflowed = False
        busy = self._queued | self._in_flight | self._retrying
        room = self._policy.queue_size - len(self._queued)
        limit = room + len(busy)
        ids = await self._store.read(lambda c: undelivered_alert_ids(c, limit=limit))
        for alert_id in ids:
            if alert_id not in busy:
                self._want(alert_id)
        if len(ids) >= limit:
            self._overflowed = True  # there may be more: look again when there is room

    def _is_settled(self) -> bool:
        return not (self._queued or self._in_flight or self._retrying or self._overflowed)

    def _check_settled(self) -> None:
        if self._settled is not None and self._is_settled():
            self._settled.set()
            self._settled = None

    # ---- delivery --------------------------------------------------------

    async def _deliver(self) -> None:
        async for alert_id in self._recv:
            self._queued.discard(alert_id)
            self._in_flight.add(alert_id)
            try:
                await self._sync(alert_id)
            except StoreClosed:
                log.info("store closed: alert #%d stays for the next start", alert_id)
            except Exception:
                # A bug, not Slack: the alert stays in SQLite for the next refill.
                log.exception("delivering alert #%d failed", alert_id)
            finally:
                self._in_flight.discard(alert_id)
            if alert_id in self._again:
                self._again.discard(alert_id)
                self._want(alert_id)
            if self._overflowed and not self._queued:
                await self._refill()
            self._check_settled()

    async def _sync(self, alert_id: int) -> None:
        """Bring Slack in line with the stored alert: post it, then update it if it changed."""
        while True:
            alert = await self._store.read(lambda c: alert_by_id(c, alert_id))
            if alert is None:
                return  # erased meanwhile
            if alert.delivery_status == PENDING:
                done = await self._post(alert)
            elif alert.delivery_status == SENT and alert.slack_needs_update:
                done = await self._update(alert)
            else:
                return
            if not done:
                return

    async def _target(self, alert: Alert) -> tuple[Tenant | None, SlackTarget | None]:
        tenant, settings = await self._tenant(alert.tenant_id)
        return tenant, slack_target(settings, self._slack)

    async def _post(self, alert: Alert) -> bool:
        tenant, target = await self._target(alert)
        if target is None:
            now = self._clock.now_ms()
            disabled = await self._store.write(lambda c: mark_disabled(c, alert.id, now=now))
            if disabled is not None:
                self._publish(AlertUpdated(disabled))
            return False
        window_ms = int(self._policy.retry_window_s * 1000)
        retry = alert.id in self._retry_due
        self._retry_due.discard(alert.id)
        if not retry and self._clock.now_ms() >= alert.waiting_since + window_ms:
            # Left waiting (in SQLite, over a restart) past its window: too late.
            minutes = self._policy.retry_window_s / 60
            error = f"not delivered within {minutes:.0f} min"
            if alert.last_error:
                error += f"; last error: {alert.last_error}"
            await self._give_up(alert, error, counted=False)
            return False
        if tenant is not None and not await self._within_budget(tenant, alert):
            return False
        message = render_alert(alert, tenant, self.public_url)
        sent: Alert | None = None
        with self._slack_call() as call:
            try:
                posted: Posted = await self._offload(
                    post_message, target, message.text, message.blocks, self._policy.client
                )
            except SlackError as exc:
                await self._failed_attempt(alert, exc, posting=True)
                return False
            now = self._clock.now_ms()
            sent = await self._store.write(
                lambda c: mark_sent(
                    c,
                    alert.id,
                    channel=posted.channel,
                    ts=posted.ts,
                    revision=alert.revision,
                    now=now,
                )
            )
        if call.cancelled_caught:
            return False
        self.stats.posted += 1
        log.info("alert #%d posted to Slack (%s)", alert.id, target.mode)
        if sent is not None:
            self._publish(AlertUpdated(sent))
        await self._actors.alert_sent(alert.tenant_id, alert.user_id, alert.opened_at / 1000)
        return True

    async def _within_budget(self, tenant: Tenant, alert: Alert) -> bool:
        """Count ``alert``'s message in the tenant's budget, or hold it back for a digest."""
        limit = tenant.settings.slack_max_per_minute
        if self._budget.take(tenant.id, limit, trio.current_time()):
            return True
        now = self._clock.now_ms()
        reason = f"over the tenant's {limit} Slack messages a minute: counted in a digest"
        held = await self._store.write(lambda c: mark_held_back(c, alert.id, reason, now=now))
        self.stats.held_back += 1
        if held is not None:
            self._publish(AlertUpdated(held))
        if self._budget.hold(tenant.id) == 1 and self._nursery is not None:
            self._nursery.start_soon(self._post_digest, tenant.id)
        return False

    async def _post_digest(self, tenant_id: int) -> None:
        """Once the tenant's budget has room: one message for every alert held back."""
        await trio.sleep_until(self._budget.free_at(tenant_id))
        count = self._budget.take_held(tenant_id)
        tenant, settings = await self._tenant(tenant_id)
        target = slack_target(settings, self._slack)
        if not count or tenant is None or target is None:
            return
        self._budget.take(tenant_id, 0, trio.current_time())
        message = render_digest(count, tenant.name, self.public_url)
        with self._slack_call():
            try:
                await self._offload(
                    post_message, target, message.text, message.blocks, self._policy.client
                )
            except SlackError as exc:
                log.warning(
                    "digest of %d alerts for tenant %s not posted: %s", count, tenant_id, exc
                )
                return
        self.stats.digests += 1
        log.info("digest of %d held-back alerts posted for tenant %s", count, tenant_id)

    async def _update(self, alert: Alert) -> bool:
        tenant, target = await self._target(alert)
        now = self._clock.now_ms()
        if target is None or not target.can_update or alert.slack_ts is None:
            # Slack was switched off or to a webhook since: the message stays as posted.
            gave_up = await self._store.write(
                lambda c: give_up_update(
                    c, alert.id, "Slack target changed; message not updated", counted=False, now=now
                )
            )
            if gave_up is not None:
                self._publish(AlertUpdated(gave_up))
            return False
        message = render_alert(alert, tenant, self.public_url)
        updated: Alert | None = None
        with self._slack_call() as call:
            try:
                await self._offload(
                    update_message,
                    target,
                    alert.slack_channel or target.channel,
                    alert.slack_ts,
                    message.text,
                    message.blocks,
                    self._policy.client,
                )
            except SlackError as exc:
                await self._failed_attempt(alert, exc, posting=False)
                return False
            self._update_failing_since.pop(alert.id, None)
            now = self._clock.now_ms()
            updated = await self._store.write(
                lambda c: mark_updated(c, alert.id, revision=alert.revision, now=now)
            )
        if call.cancelled_caught:
            return False
        self.stats.updated += 1
        log.info("alert #%d: Slack message updated (%s)", alert.id, alert.status)
        if updated is not None:
            self._publish(AlertUpdated(updated))
        return True

    async def _failed_attempt(self, alert: Alert, exc: SlackError, *, posting: bool) -> None:
        now = self._clock.now_ms()
        error = str(exc)
        window_ms = int(self._policy.retry_window_s * 1000)
        if posting:
            started = alert.waiting_since
        else:
            started = self._update_failing_since.setdefault(alert.id, now)
        remaining_s = (started + window_ms - now) / 1000
        if not exc.transient or remaining_s <= 0:
            await self._give_up(alert, error, counted=True, posting=posting)
            return
        failed = await self._store.write(
            lambda c: record_attempt_error(c, alert.id, error, now=now)
        )
        attempts = failed.attempts if failed is not None else alert.attempts + 1
        delay = min(self._policy.backoff_s(attempts, exc.retry_after_s), remaining_s)
        log.warning(
            "alert #%d: Slack %s failed (%s); retry in %.0f s",
            alert.id,
            "post" if posting else "update",
            error,
            delay,
        )
        if failed is not None:
            self._publish(AlertUpdated(failed))
        self.stats.retries += 1
        self._retry_later(alert.id, delay)

    async def _give_up(
        self, alert: Alert, error: str, *, counted: bool, posting: bool = True
    ) -> None:
        now = self._clock.now_ms()
        released: Alert | None = None
        if posting:

            def job(c: Any) -> tuple[Alert | None, Alert | None]:
                failed = mark_failed(c, alert.id, error, counted=counted, now=now)
                return failed, None if failed is None else release_held_back(c, failed, now=now)

            result, released = await self._store.write(job)
            self.stats.failed += 1
            log.error("alert #%d: not delivered to Slack: %s", alert.id, error)
        else:
            self._update_failing_since.pop(alert.id, None)
            result = await self._store.write(
                lambda c: give_up_update(c, alert.id, error, counted=counted, now=now)
            )
            log.error("alert #%d: Slack message not updated: %s", alert.id, error)
        if result is not None:
            self._publish(AlertUpdated(result))
        if released is not None:
            # Held back by the rate limit while this one was pending: it goes now.
            log.info("alert #%d: held back by #%d, to Slack now", released.id, alert.id)
            self.stats.released += 1
            self._publish(AlertUpdated(released))
            self._want(released.id)

    def _retry_later(self, alert_id: int, delay_s: float) -> None:
        assert self._nursery is not None, "the notifier is not running"
        self._retrying.add(alert_id)
        self._nursery.start_soon(self._retry_after, alert_id, delay_s)

    async def _retry_after(self, alert_id: int, delay_s: float) -> None:
        await trio.sleep(delay_s)
        self._retrying.discard(alert_id)
        self._retry_due.add(alert_id)
        self._want(alert_id)
        self._check_settled()
