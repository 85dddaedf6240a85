"""The UserActor: one trio task that alone owns one user's live state.

It waits for the next message under ``trio.move_on_at(next_deadline)``.  A
message changes the state and the deadline is recomputed; a deadline that
passes runs the rules that own it.  Nothing wakes it up to look around.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import trio

from ..clock import Clock
from ..tenants import TenantSettings
from ._messages import (
    Acknowledge,
    AlertSent,
    BatchArrived,
    Claim,
    MailboxMessage,
    SettingsChanged,
)
from ._presence import Presence
from ._rules import Step, end_reason, evaluate
from ._state import UserState, apply_batch


class ActorHost(Protocol):
    """What an actor needs from its registry."""

    clock: Clock

    def publish(
        self,
        mailbox: trio.MemoryReceiveChannel[MailboxMessage],
        state: UserState,
        changed: bool,
        now: float,
        *,
        final: bool = False,
    ) -> bool:
        """Record the state (announce it if ``changed``); False if this actor was dropped."""

    async def announce(self, step: Step, now: float) -> None:
        """Announce the triggers that fired or cleared in ``step``."""

    def ended(
        self,
        mailbox: trio.MemoryReceiveChannel[MailboxMessage],
        state: UserState,
        now: float,
        reason: str,
    ) -> None:
        """Forget this actor; it returns right after."""


async def run_user_actor(
    state: UserState,
    settings: TenantSettings,
    mailbox: trio.MemoryReceiveChannel[MailboxMessage],
    host: ActorHost,
) -> None:
    """Own ``state`` until the user's session ends.

    The first round runs the rules without a message: a restored actor whose
    trigger came due while the process was down fires at once, and one whose
    session timed out meanwhile ends properly.

    One cancel scope serves every message until its deadline passes: moving
    ``scope.deadline`` costs nothing when the deadline stays the same (most
    messages, heartbeats say), whereas a new scope per message would leave a
    stale entry in trio's deadline heap each time, and trio's periodic
    clean-up of 100k stale entries stalls the loop.
    """
    clock = host.clock
    message: MailboxMessage | None = None
    now = clock.now()
    with mailbox:
        while True:
            with trio.CancelScope() as scope:
                while True:
                    if message is not None:
                        new_state, settings = _apply(state, settings, message, now)
                    else:
                        new_state = state
                    step = evaluate(new_state, now, settings)
                    if step.session_over:
                        await _end(host, mailbox, new_state, settings, step, now)
                        return
                    changed = step.state is not state
                    state = step.state
                    if not host.publish(mailbox, state, changed, now):
                        return  # dropped meanwhile
                    if step.fired or step.cleared or step.left or step.switched_off:
                        with trio.CancelScope(shield=True):
                            await host.announce(step, now)
                    deadline = clock.to_trio(step.next_at)
                    scope.deadline = deadline
                    message = None
                    try:
                        message = await mailbox.receive()
                    except trio.EndOfChannel:
                        return  # the registry dropped this user (erased): no goodbye
                    now = clock.now()
            # The scope was cancelled: by the deadline we set, or by an earlier
            # one that passed while a trigger was being announced.
            message = None
            if trio.current_time() >= deadline:
                # Float rounding between the two clocks may leave the wall clock
                # a hair short of the deadline: we are at it by definition.
                now = max(clock.now(), step.next_at)
                # Something that arrived at the same instant wins over ending.
                with contextlib.suppress(trio.WouldBlock):
                    message = mailbox.receive_nowait()
            else:
                now = clock.now()


async def _end(
    host: ActorHost,
    mailbox: trio.MemoryReceiveChannel[MailboxMessage],
    state: UserState,
    settings: TenantSettings,
    step: Step,
    now: float,
) -> None:
    final = state.replace(
        active=(), needs_support=False, presence=Presence.GONE.value, presence_since=now
    )
    if not host.publish(mailbox, final, True, now, final=True):
        return
    if step.left:
        with trio.CancelScope(shield=True):
            await host.announce(Step(final, (), (), now, True, step.left), now)
    host.ended(mailbox, final, now, end_reason(state, now, settings))


def _apply(
    state: UserState, settings: TenantSettings, message: MailboxMessage, now: float
) -> tuple[UserState, TenantSettings]:
    if isinstance(message, BatchArrived):
        settings = message.settings
        return apply_batch(state, message.batch, now, settings), settings
    if isinstance(message, Acknowledge):
        return (
            state.replace(needs_support=False, acknowledged_at=now, acknowledged_by=message.by),
            settings,
        )
    if isinstance(message, Claim):
        if message.by is None:
            claim: dict[str, object] = {
                "claimed_by": None,
                "claimed_by_agent": 0,
                "claimed_at": None,
            }
        elif state.active:
            claim = {
                "claimed_by": message.by,
                "claimed_by_agent": message.agent_id,
                "claimed_at": now,
            }
        else:
            return state, settings  # nothing to help with: no claim to keep
        return state.replace(**claim), settings
    if isinstance(message, AlertSent):
        return state.replace(last_alert_sent_at=message.at), settings
    if isinstance(message, SettingsChanged):
        return state, message.settings
    raise TypeError(f"unknown mailbox message {message!r}")
