"""The Registry: one actor per live user, found by (tenant id, user id).

It owns the nursery the actors run in and the map from key to mailbox.  The
first batch of a user spawns their actor; a full mailbox makes the sender
wait (backpressure) instead of growing memory.  It also keeps the latest
state each actor published, so the dashboard, summaries and snapshots can
read live state without asking (and without touching) the actors.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from typing import Any

import trio

from ..clock import Clock
from ..events import Batch
from ..tenants import Tenant, TenantSettings
from ._actor import run_user_actor
from ._dirty import DirtySet
from ._gc import GcGuard
from ._messages import (
    Acknowledge,
    AlertSent,
    BatchArrived,
    ChangeMessage,
    Claim,
    MailboxMessage,
    SettingsChanged,
    TriggerCleared,
    TriggerFired,
    TriggerMessage,
    UserChanged,
    UserLeft,
)
from ._rules import Step
from ._state import UserState, new_state

log = logging.getLogger(__name__)

Key = tuple[int, str]


class Registry:
    """Live users and their actors. Start with ``await nursery.start(registry.run)``."""

    def __init__(
        self,
        clock: Clock,
        *,
        triggers_out: trio.MemorySendChannel[TriggerMessage],
        changes_out: trio.MemorySendChannel[ChangeMessage],
        mailbox_size: int = 16,
        gc_guard: GcGuard | None = None,
    ) -> None:
        self.clock = clock
        self._triggers_out = triggers_out
        self._changes_out = changes_out
        self._mailbox_size = mailbox_size
        self._mailboxes: dict[Key, trio.MemorySendChannel[MailboxMessage]] = {}
        #: The receiving end each live actor holds: tells a current actor from
        #: a dropped one that has not noticed yet.
        self._receivers: dict[Key, trio.MemoryReceiveChannel[MailboxMessage]] = {}
        self._latest: dict[Key, UserState] = {}
        #: Live actors per tenant id (the per-tenant bound is checked against it).
        self._per_tenant: dict[int, int] = {}
        self._dirty: list[DirtySet[Key]] = []
        #: Final states of ended actors, with how many watchers have yet to read them.
        self._ended_states: dict[Key, tuple[UserState, int]] = {}
        self._nursery: trio.Nursery | None = None
        #: Actors start in a copy of this (the registry's own) context, not in
        #: the context of the request that spawned them: trio copies the
        #: spawner's context into a new task, and a request's holds Quart's
        #: request context, which would keep that request, its connection and
        #: its headers alive for as long as the user's session.
        self._spawn_context = contextvars.copy_context()
        self._gc = gc_guard or GcGuard()
        self.changes_dropped = 0
        self.spawned = 0
        self.ended_count = 0

    async def run(
        self, *, task_status: trio.TaskStatus[Registry] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Host the actors until cancelled (which cancels every actor)."""
        self._gc.install()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._spawn_context = contextvars.copy_context()
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._gc.uninstall()

    # ---- into actors -----------------------------------------------------

    async def deliver(self, tenant: Tenant, batch: Batch) -> None:
        """Send a committed batch to its user's actor, spawning it if needed."""
        message = BatchArrived(batch, tenant.settings)
        key = (tenant.id, batch.user_id)
        while True:
            mailbox = self._mailboxes.get(key)
            if mailbox is None:
                state = new_state(tenant.id, batch, self.clock.now())
                mailbox = self._spawn(state, tenant.settings)
            try:
                await mailbox.send(message)
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # The actor ended between lookup and send: a new session starts.
                if self._mailboxes.get(key) is mailbox:
                    self._forget_mailbox(key)
                    self._receivers.pop(key, None)

    async def acknowledge(self, tenant_id: int, user_id: str, by: str) -> bool:
        """Tell a live user's actor that an admin has seen them; False if not live."""
        return await self._send_if_live((tenant_id, user_id), Acknowledge(by))

    async def claim(self, tenant_id: int, user_id: str, by: str | None, agent_id: int = 0) -> bool:
        """Tell a live user's actor who is helping them (None: nobody any more)."""
        return await self._send_if_live((tenant_id, user_id), Claim(by, agent_id))

    async def alert_sent(self, tenant_id: int, user_id: str, at: float) -> bool:
        """Record in the actor that a Slack alert went out at ``at``."""
        return await self._send_if_live((tenant_id, user_id), AlertSent(at))

    async def settings_changed(self, tenant_id: int, settings: TenantSettings) -> None:
        """Give every live actor of a tenant its new settings; each runs its rules with
        them at once (a trigger turned off closes its open episodes)."""
        for key in [k for k in self._mailboxes if k[0] == tenant_id]:
            await self._send_if_live(key, SettingsChanged(settings))

    async def _send_if_live(self, key: Key, message: MailboxMessage) -> bool:
        mailbox = self._mailboxes.get(key)
        if mailbox is None:
            return False
        try:
            await mailbox.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def drop(self, tenant_id: int, user_id: str) -> bool:
        """End a live user's actor without a summary or goodbye (their data is erased).

        Returns False if the user was not live.
        """
        mailbox = self._unlink((tenant_id, user_id))
        if mailbox is None:
            return False
        await mailbox.aclose()
        return True

    def drop_tenant(self, tenant_id: int) -> list[str]:
        """End every live actor of a tenant without a summary or goodbye (the
        tenant was removed with its data); return the user ids.

        Their keys are marked changed: with no state left, the snapshotter
        deletes their snapshots in its next round.
        """
        live = [key for key in self._mailboxes if key[0] == tenant_id]
        ended = [key for key in self._ended_states if key[0] == tenant_id]
        for key in [*live, *ended]:
            mailbox = self._unlink(key)
            if mailbox is not None:
                mailbox.close()
            for dirty in self._dirty:
                dirty.add(key)
        return [user_id for _, user_id in live]

    def _unlink(self, key: Key) -> trio.MemorySendChannel[MailboxMessage] | None:
        """Forget ``key``'s actor and states; its mailbox (None if not live)."""
        mailbox = self._forget_mailbox(key)
        self._receivers.pop(key, None)
        self._latest.pop(key, None)
        self._ended_states.pop(key, None)
        return mailbox

    def restore(self, state: UserState, settings: TenantSettings) -> None:
        """Recreate the actor for a state saved before a restart.

        ``state.observed_from`` must be the restart (recovery sets it): absence
        is judged from then on, since nothing could reach us while we were down.
        """
        if state.key in self._mailboxes:
            raise ValueError(f"user {state.key} is already live")
        self._spawn(state, settings)

    def _spawn(
        self, state: UserState, settings: TenantSettings
    ) -> trio.MemorySendChannel[MailboxMessage]:
        if self._nursery is None:
            raise RuntimeError("the registry is not running")
        send, receive = trio.open_memory_channel[MailboxMessage](self._mailbox_size)
        if state.key not in self._mailboxes:
            self._per_tenant[state.tenant_id] = self._per_tenant.get(state.tenant_id, 0) + 1
        self._mailboxes[state.key] = send
        self._receivers[state.key] = receive
        self._latest[state.key] = state
        self._ended_states.pop(state.key, None)
        self._spawn_context.run(
            self._nursery.start_soon, run_user_actor, state, settings, receive, self
        )
        self.spawned += 1
        self._gc.spawned(len(self._mailboxes))
        return send

    # ---- out of actors (the ActorHost side) ------------------------------

    def publish(
        self,
        mailbox: trio.MemoryReceiveChannel[MailboxMessage],
        state: UserState,
        changed: bool,
        now: float,
        *,
        final: bool = False,
    ) -> bool:
        """Called by an actor after every step: record its state, announce a change.

        Returns False if the actor is no longer the live one for its user (it
        was dropped): it must not announce anything then.
        """
        key = state.key
        if self._receivers.get(key) is not mailbox:
            return False
        self._gc.stepped()
        if not final:
            self._latest[key] = state
        if changed:
            for dirty in self._dirty:
                dirty.add(key)
            self._send_change(UserChanged(state, now))
        return True

    async def announce(self, step: Step, now: float) -> None:
        """Called by an actor (shielded) when triggers fired or cleared.

        Waits while the consumer is busy (backpressure); returns at once if it
        is gone (the Feed closes its channels when it stops).
        """
        state = step.state
        messages: list[TriggerMessage] = [
            TriggerFired(state, trigger, reason, now) for trigger, reason in step.fired
        ]
        messages += [TriggerCleared(state, trigger, now) for trigger in step.cleared]
        messages += [TriggerCleared(state, trigger, now, user_left=True) for trigger in step.left]
        messages += [
            TriggerCleared(state, trigger, now, switched_off=True) for trigger in step.switched_off
        ]
        try:
            for message in messages:
                await self._triggers_out.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.warning("trigger consumer gone; %d messages not announced", len(messages))

    def ended(
        self,
        mailbox: trio.MemoryReceiveChannel[MailboxMessage],
        state: UserState,
        now: float,
        reason: str,
    ) -> None:
        """Called by an actor as its last act: forget it."""
        key = state.key
        if self._receivers.get(key) is not mailbox:
            return
        del self._receivers[key]
        self._forget_mailbox(key)
        self._latest.pop(key, None)
        if self._dirty:
            self._ended_states[key] = (state, len(self._dirty))
        for dirty in self._dirty:
            dirty.add(key)
        self.ended_count += 1
        self._gc.ended(len(self._mailboxes))
        self._send_change(UserLeft(state, now, reason))
        log.debug("user %s/%s left: %s", state.tenant_id, state.user_id, reason)

    def _forget_mailbox(self, key: Key) -> trio.MemorySendChannel[MailboxMessage] | None:
        mailbox = self._mailboxes.pop(key, None)
        if mailbox is not None:
            left = self._per_tenant[key[0]] - 1
            if left:
                self._per_tenant[key[0]] = left
            else:
                del self._per_tenant[key[0]]
        return mailbox

    def _send_change(self, message: ChangeMessage) -> None:
        try:
            self._changes_out.send_nowait(message)
        except trio.WouldBlock:
            # The consumer lags; it resyncs from ``states()``.  Never block an actor.
            self.changes_dropped += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    # ---- reading live state ----------------------------------------------

    def state(self, tenant_id: int, user_id: str) -> UserState | None:
        """The latest state of a live user, or None."""
        return self._latest.get((tenant_id, user_id))

    def states(self, tenant_id: int | None = None) -> Iterator[UserState]:
        """Latest states of live users, of one tenant or all."""
        states = list(self._latest.values())
        if tenant_id is None:
            return iter(states)
        return (s for s in states if s.tenant_id == tenant_id)

    def state_for_flush(self, key: Key) -> tuple[UserState | None, bool]:
        """(state, live) for a key a watcher took: the live state, or an ended actor's last.

        Each watcher reads an ended actor's final state once; after the last
        watcher has, the registry forgets it.
        """
        state = self._latest.get(key)
        if state is not None:
            return state, True
        entry = self._ended_states.get(key)
        if entry is None:
            return None, False
        final, readers = entry
        if readers <= 1:
            del self._ended_states[key]
        else:
            self._ended_states[key] = (final, readers - 1)
        return final, False

    def watch(self) -> DirtySet[Key]:
        """A new set that collects the keys of users whose state changes."""
        dirty: DirtySet[Key] = DirtySet()
        self._dirty.append(dirty)
        return dirty

    @property
    def gc_guard(self) -> GcGuard:
        """The GC policy of this registry's actors."""
        return self._gc

    @property
    def live_count(self) -> int:
        """Number of live actors."""
        return len(self._mailboxes)

    def is_live(self, tenant_id: int, user_id: str) -> bool:
        """True if the user has a live actor."""
        return (tenant_id, user_id) in self._mailboxes

    def live_count_of(self, tenant_id: int) -> int:
        """Number of live actors of one tenant."""
        return self._per_tenant.get(tenant_id, 0)

    def live_by_tenant(self) -> dict[int, int]:
        """Live actors per tenant id."""
        return dict(self._per_tenant)

    def stats(self) -> dict[str, Any]:
        """Counters for health pages and benchmarks."""
        return {
            "live": len(self._mailboxes),
            "spawned": self.spawned,
            "ended": self.ended_count,
            "changes_dropped": self.changes_dropped,
            "gc_freezes": self._gc.freezes,
        }


def feed_channels(
    capacity: int = 10_000,
) -> tuple[
    tuple[trio.MemorySendChannel[TriggerMessage], trio.MemoryReceiveChannel[TriggerMessage]],
    tuple[trio.MemorySendChannel[ChangeMessage], trio.MemoryReceiveChannel[ChangeMessage]],
]:
    """The two outbound channels of a registry: triggers, and state changes."""
    return (
        trio.open_memory_channel[TriggerMessage](capacity),
        trio.open_memory_channel[ChangeMessage](capacity),
    )
