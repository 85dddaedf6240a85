"""The one consumer of what actors announce, fanning it out to the other parts.

It logs every trigger and keeps the last N messages per tenant in memory, so
tests and the health page can see them.  Other parts subscribe:

- :meth:`Feed.subscribe_triggers` with an async function, awaited for every
  trigger in order (the Notifier: a trigger must never be dropped, so a slow
  subscriber slows the feed, and through the bounded channel, the actor);
- :meth:`Feed.subscribe` with a plain function that must not block, called
  for every message (the Hub: it coalesces and may resync, so it never waits).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from ..events import log_safe
from ._messages import (
    ChangeMessage,
    TriggerCleared,
    TriggerFired,
    TriggerMessage,
    UserLeft,
)

log = logging.getLogger(__name__)

FeedMessage = TriggerMessage | ChangeMessage
T = TypeVar("T")


class Feed:
    """Drains a registry's trigger and change channels. Start with ``nursery.start``."""

    def __init__(
        self,
        triggers: trio.MemoryReceiveChannel[TriggerMessage],
        changes: trio.MemoryReceiveChannel[ChangeMessage],
        *,
        keep_per_tenant: int = 200,
    ) -> None:
        self._triggers = triggers
        self._changes = changes
        self._keep = keep_per_tenant
        self.recent_triggers: defaultdict[int, deque[TriggerMessage]] = defaultdict(
            lambda: deque(maxlen=self._keep)
        )
        self.recent_changes: defaultdict[int, deque[ChangeMessage]] = defaultdict(
            lambda: deque(maxlen=self._keep)
        )
        #: Triggers fired and cleared since start, by trigger (its value, "stuck_on_page").
        self.fired: Counter[str] = Counter()
        self.cleared: Counter[str] = Counter()
        self._subscribers: list[Callable[[FeedMessage], None]] = []
        self._trigger_subscribers: list[Callable[[TriggerMessage], Awaitable[None]]] = []

    def subscribe(self, callback: Callable[[FeedMessage], None]) -> None:
        """Call ``callback`` (synchronously, must not block) for every message."""
        self._subscribers.append(callback)

    def subscribe_triggers(self, handler: Callable[[TriggerMessage], Awaitable[None]]) -> None:
        """Await ``handler(message)`` for every trigger message, in order."""
        self._trigger_subscribers.append(handler)

    async def run(self, *, task_status: trio.TaskStatus[Feed] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume both channels until they close or this is cancelled.

        Closes them on the way out, so an actor waiting to announce a trigger
        to a Feed that has stopped is released instead of waiting forever.
        """
        with self._triggers, self._changes:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._drain_triggers)
                nursery.start_soon(self._drain_changes)
                task_status.started(self)

    async def _drain_triggers(self) -> None:
        async for first in self._triggers:
            # A memory channel yields after every receive; take whatever else
            # is queued too, so a burst is not handed over one per loop turn.
            for message in _with_queued(first, self._triggers):
                await self._on_trigger(message)

    async def _on_trigger(self, message: TriggerMessage) -> None:
        state = message.state
        if isinstance(message, TriggerFired):
            self.fired[message.trigger.value] += 1
            log.info(
                "support needed: tenant %s user %s: %s (%s)",
                state.tenant_id,
                log_safe(state.user_id),
                message.trigger.in_words,
                log_safe(message.reason),  # it quotes the route: free text
            )
        elif isinstance(message, TriggerCleared):
            self.cleared[message.trigger.value] += 1
            log.info(
                "%s: tenant %s user %s: %s",
                "user left" if message.user_left else "recovered",
                state.tenant_id,
                log_safe(state.user_id),
                message.trigger.in_words,
            )
        self.recent_triggers[state.tenant_id].append(message)
        for handler in self._trigger_subscribers:
            await handler(message)
        self._notify(message)

    async def _drain_changes(self) -> None:
        async for first in self._changes:
            for message in _with_queued(first, self._changes):
                self._on_change(message)

    def _on_change(self, message: ChangeMessage) -> None:
        if isinstance(message, UserLeft):
            log.debug("user left: %s/%s", message.state.tenant_id, message.state.user_id)
        self.recent_changes[message.state.tenant_id].append(message)
        self._notify(message)

    def _notify(self, message: FeedMessage) -> None:
        for callback in self._subscribers:
            callback(message)


def _with_queued(first: T, channel: trio.MemoryReceiveChannel[T]) -> list[T]:
    """``first`` and every message already waiting in ``channel``."""
    messages = [first]
    while True:
        try:
            messages.append(channel.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return messages
