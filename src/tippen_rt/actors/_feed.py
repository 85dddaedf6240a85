"""The consumer of what actors announce, until alerts and the hub take over.

It logs every trigger and keeps the last N messages per tenant in memory, so
tests and the health page can see them.  Other parts subscribe with
:meth:`Feed.subscribe` and get every message after it is recorded.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable

import trio

from ._messages import (
    ChangeMessage,
    TriggerCleared,
    TriggerFired,
    TriggerMessage,
    UserLeft,
)

log = logging.getLogger(__name__)

FeedMessage = TriggerMessage | ChangeMessage


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
        self._subscribers: list[Callable[[FeedMessage], None]] = []

    def subscribe(self, callback: Callable[[FeedMessage], None]) -> None:
        """Call ``callback`` (synchronously, must not block) for every message."""
        self._subscribers.append(callback)

    async def run(self, *, task_status: trio.TaskStatus[Feed] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume both channels until they close or this is cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._drain_triggers)
            nursery.start_soon(self._drain_changes)
            task_status.started(self)

    async def _drain_triggers(self) -> None:
        async for message in self._triggers:
            state = message.state
            if isinstance(message, TriggerFired):
                log.info(
                    "support needed: tenant %s user %s: %s (%s)",
                    state.tenant_id,
                    state.user_id,
                    message.trigger.in_words,
                    message.reason,
                )
            elif isinstance(message, TriggerCleared):
                log.info(
                    "recovered: tenant %s user %s: %s",
                    state.tenant_id,
                    state.user_id,
                    message.trigger.in_words,
                )
            self.recent_triggers[state.tenant_id].append(message)
            self._notify(message)

    async def _drain_changes(self) -> None:
        async for message in self._changes:
            if isinstance(message, UserLeft):
                log.debug("user left: %s/%s", message.state.tenant_id, message.state.user_id)
            self.recent_changes[message.state.tenant_id].append(message)
            self._notify(message)

    def _notify(self, message: FeedMessage) -> None:
        for callback in self._subscribers:
            callback(message)
