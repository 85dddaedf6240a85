"""The Hub: live state fanned out to admin WebSockets, per tenant.

It hears every message of the actors' Feed (and of the alerts Notifier when
there is one) through plain synchronous callbacks, so it can never slow an
actor or the ingest path down.  For each tenant with dashboards open it
sends, on each subscriber's bounded queue:

- ``user``: a user's latest state, at most once per ``user_interval_s`` per
  user (the first change goes out at once; later ones within the interval
  are coalesced into one update sent when the interval is up);
- ``user_left``: the session ended (or the user's data was erased);
- ``trigger``: a support trigger fired or cleared, with its reason;
- ``alert``: an alert opened, was acknowledged or resolved (Notifier);
- ``call``: a video call's invitation to its user's page changed (sent,
  shown on the page, joined, declined, ignored, replaced: the CallBoard);
- ``settings``: the tenant's settings changed (``tippen-rt tenant set``), as
  ``GET /api/admin/settings`` answers them (a page reads that again with
  every snapshot, so one lost to a resync is not missed).

A subscriber whose queue is full is not waited for: it is marked to
*resync*, its stale backlog is thrown away, and it gets a fresh snapshot of
the tenant's live users as soon as it catches up (the same happens to every
subscriber when the registry had to drop changes).

Coalescing keeps deadlines as data: pending users sit in a heap by the time
their interval is up, and one task sleeps until the earliest of them.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import orjson
import trio

from ..actors import (
    Feed,
    FeedMessage,
    Key,
    Registry,
    TriggerCleared,
    TriggerFired,
    UserChanged,
    UserLeft,
)
from ._views import alert_json, user_json

log = logging.getLogger(__name__)

__all__ = ["AlertSource", "Hub", "Subscriber"]


class AlertSource(Protocol):
    """The part of the alerts Notifier the hub uses."""

    def subscribe(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback`` (synchronously, must not block) for every alert change."""


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


class Subscriber:
    """One dashboard connection's queue. Read it with :meth:`next`."""

    def __init__(self, tenant_id: int, capacity: int) -> None:
        self.tenant_id = tenant_id
        self._send, self._recv = trio.open_memory_channel[str](capacity)
        #: Set when a message did not fit: the backlog is stale, send a snapshot.
        self.resync = False
        self.resyncs = 0
        self.delivered = 0

    def offer(self, text: str) -> None:
        """Queue ``text`` without waiting; a full queue marks this subscriber to resync."""
        if self.resync:
            return  # the snapshot it will get covers this
        try:
            self._send.send_nowait(text)
        except trio.WouldBlock:
            self.resync = True
            self.resyncs += 1
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def force_resync(self) -> None:
        """Make the reader take a fresh snapshot next (waking it if it waits)."""
        if self.resync:
            return
        self.resync = True
        self.resyncs += 1
        with contextlib.suppress(
            trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError
        ):
            self._send.send_nowait("")  # a wake-up; the flag is what counts

    async def next(self) -> str | None:
        """The next message to send, or None: "send a fresh snapshot now".

        Raises ``trio.EndOfChannel`` when the hub has shut down.
        """
        text = await self._recv.receive()
        if self.resync:
            while True:  # drop the stale backlog
                try:
                    self._recv.receive_nowait()
                except trio.WouldBlock:
                    break
            self.resync = False
            return None
        self.delivered += 1
        return text

    def close(self) -> None:
        """No more messages (the hub is stopping)."""
        self._send.close()


class Hub:
    """Start with ``await nursery.start(hub.run)``; subscribe per connection."""

    def __init__(
        self,
        registry: Registry,
        feed: Feed,
        *,
        notifier: AlertSource | None = None,
        wall_ms: Callable[[], int],
        user_interval_s: float = 0.25,
        queue_messages: int = 512,
    ) -> None:
        self._registry = registry
        self._feed = feed
        self._notifier = notifier
        self._wall_ms = wall_ms
        self._interval = user_interval_s
        self._capacity = queue_messages
        self._subs: dict[int, set[Subscriber]] = {}
        #: trio time a user's last update went out
        self._last_sent: dict[Key, float] = {}
        self._pending: set[Key] = set()
        self._due: list[tuple[float, Key]] = []
        self._wake = trio.Event()
        self._dropped_seen = registry.changes_dropped
        self._closed = False
        self.sent_updates = 0
        self.coalesced = 0
        #: Resyncs of connections that have closed (the open ones count their own).
        self._closed_resyncs = 0

    # ---- lifecycle ---------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Hub] = trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe to the feed (and notifier), then send coalesced updates when due."""
        self._feed.subscribe(self.on_feed)
        if self._notifier is not None:
            self._notifier.subscribe(self.on_alert)
        task_status.started(self)
        try:
            while True:
                if not self._due:
                    await self._wake.wait()
                else:
                    with trio.move_on_at(self._due[0][0]):
                        await self._wake.wait()
                self._wake = trio.Event()
                self._flush_due(trio.current_time())
        finally:
            self.close()

    def close(self) -> None:
        """End every dashboard connection (the service is stopping); refuse new ones."""
        self._closed = True
        for subs in self._subs.values():
            for sub in subs:
                sub.close()

    def follow_alerts(self, notifier: AlertSource) -> None:
        """Also forward the Notifier's alert changes (when it starts after the hub)."""
        if self._notifier is None:
            self._notifier = notifier
            notifier.subscribe(self.on_alert)

    @contextmanager
    def subscribe(self, tenant_id: int) -> Iterator[Subscriber]:
        """A queue of this tenant's live messages, for as long as the block runs."""
        sub = Subscriber(tenant_id, self._capacity)
        if self._closed:
            sub.close()
        self._subs.setdefault(tenant_id, set()).add(sub)
        try:
            yield sub
        finally:
            self._closed_resyncs += sub.resyncs
            subs = self._subs.get(tenant_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[tenant_id]

    def subscriber_count(self, tenant_id: int | None = None) -> int:
        """Open dashboard connections, for one tenant or all."""
        if tenant_id is not None:
            return len(self._subs.get(tenant_id, ()))
        return sum(len(s) for s in self._subs.values())

    # ---- what a connection sends first (and after falling behind) ----------

    def live_users(self, tenant_id: int) -> list[dict[str, Any]]:
        """Every live user of a tenant, as JSON."""
        return [user_json(state) for state in self._registry.states(tenant_id)]

    def snapshot(
        self,
        tenant_id: int,
        alerts: list[dict[str, Any]] | None = None,
        calls: list[dict[str, Any]] | None = None,
    ) -> str:
        """The ``snapshot`` message: every live user (and the open alerts and the
        recent call invitations given)."""
        return _dumps(
            {
                "type": "snapshot",
                "serverTime": self._wall_ms(),
                "users": self.live_users(tenant_id),
                "alerts": alerts or [],
                "calls": calls or [],
            }
        )

    # ---- feed and notifier callbacks (synchronous, never block) ------------

    def on_feed(self, message: FeedMessage) -> None:
        """Take one message from the actors' Feed."""
        dropped = self._registry.changes_dropped
        if dropped != self._dropped_seen:
            # Changes were lost before they reached us: everyone resyncs.
            self._dropped_seen = dropped
            for subs in self._subs.values():
                for sub in subs:
                    sub.force_resync()
        state = message.state
        key = state.key
        if isinstance(message, UserChanged):
            self._user_changed(key)
        elif isinstance(message, TriggerFired):
            self._broadcast(
                state.tenant_id,
                {
                    "type": "trigger",
                    "event": "fired",
                    "userId": state.user_id,
                    "trigger": message.trigger.value,
                    "title": message.trigger.in_words,
                    "reason": message.reason,
                    "at": int(message.at * 1000),
                },
            )
            self._user_changed(key)
        elif isinstance(message, TriggerCleared):
            self._broadcast(
                state.tenant_id,
                {
                    "type": "trigger",
                    "event": "cleared",
                    "userId": state.user_id,
                    "trigger": message.trigger.value,
                    "title": message.trigger.in_words,
                    "userLeft": message.user_left,
                    "switchedOff": message.switched_off,
                    "at": int(message.at * 1000),
                },
            )
            self._user_changed(key)
        elif isinstance(message, UserLeft):
            self.user_gone(state.tenant_id, state.user_id, message.reason, message.at)

    def on_alert(self, message: Any) -> None:
        """Take one alert lifecycle message from the Notifier."""
        alert = getattr(message, "alert", None)
        if alert is None:
            return
        tenant_id = getattr(alert, "tenant_id", None)
        if not isinstance(tenant_id, int) or tenant_id not in self._subs:
            return
        self._broadcast(
            tenant_id, {"type": "alert", "event": alert_event(message), "alert": alert_json(alert)}
        )

    def call_changed(self, invitation: Any) -> None:
        """Take one change of a call invitation from the CallBoard."""
        self._broadcast(invitation.tenant_id, {"type": "call", "call": invitation.to_json()})

    def settings_changed(self, tenant_id: int, settings: dict[str, Any]) -> None:
        """Tell the tenant's dashboards its settings now (``settings_json``)."""
        self._broadcast(tenant_id, {"type": "settings", **settings})

    def user_gone(self, tenant_id: int, user_id: str, reason: str, at: float) -> None:
        """Tell dashboards the user is no longer live (left, or erased)."""
        key = (tenant_id, user_id)
        self._pending.discard(key)
        self._last_sent.pop(key, None)
        self._broadcast(
            tenant_id,
            {"type": "user_left", "userId": user_id, "reason": reason, "at": int(at * 1000)},
        )

    # ---- coalescing ------------------------------------------------------------

    def _user_changed(self, key: Key) -> None:
        if key[0] not in self._subs:
            self._last_sent.pop(key, None)
            return
        if key in self._pending:
            self.coalesced += 1
            return
        now = trio.current_time()
        due = self._last_sent.get(key, -float("inf")) + self._interval
        if now >= due:
            self._send_user(key, now)
            return
        self._pending.add(key)
        self.coalesced += 1
        if not self._due or due < self._due[0][0]:
            self._wake.set()
        heapq.heappush(self._due, (due, key))

    def _flush_due(self, now: float) -> None:
        while self._due and self._due[0][0] <= now:
            _, key = heapq.heappop(self._due)
            if key in self._pending:
                self._pending.discard(key)
                self._send_user(key, now)

    def _send_user(self, key: Key, now: float) -> None:
        tenant_id, user_id = key
        state = self._registry.state(tenant_id, user_id)
        if state is None:
            return  # left or erased since: the user_left message says so
        self._last_sent[key] = now
        self.sent_updates += 1
        self._broadcast(
            tenant_id,
            {
                "type": "user",
                "serverTime": self._wall_ms(),
                "user": user_json(state),
            },
        )

    def _broadcast(self, tenant_id: int, message: dict[str, Any]) -> None:
        subs = self._subs.get(tenant_id)
        if not subs:
            return
        text = _dumps(message)
        for sub in subs:
            sub.offer(text)

    def stats(self) -> dict[str, Any]:
        """Counters for health pages and benchmarks."""
        return {
            "subscribers": self.subscriber_count(),
            "sent_updates": self.sent_updates,
            "coalesced": self.coalesced,
            "pending": len(self._pending),
            # Since start, closed connections' too: it only ever grows.
            "resyncs": self._closed_resyncs
            + sum(s.resyncs for subs in self._subs.values() for s in subs),
        }


_WORDS = re.compile(r"(?<!^)(?=[A-Z])")


def alert_event(message: Any) -> str:
    """What happened to the alert: the message's ``event``/``kind``, or its class name.

    ``AlertOpened`` -> ``opened``; ``AlertAcknowledged`` -> ``acknowledged``.
    """
    for attr in ("event", "kind", "status"):
        value = getattr(message, attr, None)
        if isinstance(value, str):
            return value
        if value is not None and hasattr(value, "value"):
            return str(value.value)
    name = type(message).__name__
    if name.startswith("Alert") and len(name) > len("Alert"):
        name = name[len("Alert") :]
    return _WORDS.sub("_", name).lower()
