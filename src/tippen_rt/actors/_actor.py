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
    MailboxMessage,
    SettingsChanged,
)
from ._rules import Step, evaluate
from ._state import UserState, apply_batch


class ActorHost(Protocol):
    """What an actor needs from its registry."""

    clock: Clock

    async def publish(
        self,
        mailbox: trio.MemoryReceiveChannel[MailboxMessage],
        before: UserState,
        step: Step,
        now: float,
    ) -> None:
        """Announce the new state, and any trigger that fired or cleared."""

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
    """
    clock = host.clock
    message: MailboxMessage | None = None
    now = clock.now()
    with mailbox:
        while True:
            before = state
            if message is not None:
                state, settings = _apply(state, settings, message, now)
            step = evaluate(state, now, settings)
            if step.session_over:
                final = state.replace(active=(), needs_support=False)
                await host.publish(mailbox, before, Step(final, (), step.cleared, now, True), now)
                host.ended(mailbox, final, now, _end_reason(state))
                return
            await host.publish(mailbox, before, step, now)
            state = step.state

            message = None
            with trio.move_on_at(clock.to_trio(step.next_at)):
                try:
                    message = await mailbox.receive()
                except trio.EndOfChannel:
                    return  # the registry dropped this user (erased): no goodbye
            if message is None:
                # A deadline passed. Float rounding between the two clocks may
                # wake us a hair early: we are at the deadline by definition.
                now = max(clock.now(), step.next_at)
                # Something that arrived at the same instant wins over ending.
                with contextlib.suppress(trio.WouldBlock):
                    message = mailbox.receive_nowait()
            else:
                now = clock.now()


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
    if isinstance(message, AlertSent):
        return state.replace(last_alert_sent_at=message.at), settings
    if isinstance(message, SettingsChanged):
        return state, message.settings
    raise TypeError(f"unknown mailbox message {message!r}")


def _end_reason(state: UserState) -> str:
    return "page closed" if state.unloaded_at is not None else "session timed out"
