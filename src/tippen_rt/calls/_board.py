"""The CallBoard: video call invitations waiting for their user's answer.

When an agent starts a video call, the user's own page is invited (unless the
tenant switched invitations off).  The page learns of it without a socket of
its own (docs/support.md, "The invitation channel"): while a user is flagged
(an open support episode, or an invitation waiting), every answer to their
tracker's batches carries ``X-Tippen-Poll``, and the tracker loads
``tippen-invite.js``, which asks the ingest endpoint every few seconds with
an empty batch.  Those answers are served from here, from memory: the
board keeps each user's waiting invitation in a dict, and SQLite (the
``video_calls`` row) only when something changes.

An invitation is ``pending`` until the user answers it (``joined`` or
``declined``), a newer call replaces it (``replaced``), or its time is up
(``ignored``: two minutes by default, ``invite_timeout_s``).  Time-outs are
deadlines kept as data: one task sleeps until the earliest.  Every change goes
to the subscribers (the Hub, for the agents' dashboards; the Notifier, for the
alerts' lifecycle and their Slack messages).

Pending invitations survive a restart: :meth:`CallBoard.run` reads them back
from SQLite (those whose time ran out meanwhile become ``ignored``).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import trio

from ..clock import Clock
from ..events import INVITE_ANSWERS
from ..persist import EventStore
from ..persist._admin import VideoCall, pending_invitations, record_invitation

log = logging.getLogger(__name__)

__all__ = ["ANSWERS", "CallBoard", "Invitation", "InvitationStatus"]

InvitationStatus = Literal["pending", "joined", "declined", "ignored", "replaced"]
#: What the user's page may answer.
ANSWERS: Final = INVITE_ANSWERS
#: How long answered invitations stay in :meth:`CallBoard.recent` (dashboards
#: that connect late still see them).
RECENT_MS: Final = 15 * 60_000


@dataclass(frozen=True, slots=True)
class Invitation:
    """One call's invitation to the user's page. Times are epoch milliseconds."""

    #: The ``video_calls`` row: the call this invitation is for.
    call_id: int
    tenant_id: int
    user_id: str
    #: Who is calling: the agent's name (shown to the user) and id (0: the admin token).
    agent: str
    agent_id: int
    #: The room: the very link the agent got.
    url: str
    invited_at: int
    expires_at: int
    status: InvitationStatus = "pending"
    #: When the user's page first received it (its tracker's poll answered with it).
    delivered_at: int | None = None
    #: When it left ``pending``.
    answered_at: int | None = None

    @property
    def key(self) -> tuple[int, str]:
        """(tenant id, user id)."""
        return (self.tenant_id, self.user_id)

    @property
    def alert_status(self) -> str:
        """How the alerts of the user say it stands (``persist.CALL_STATUSES``)."""
        if self.status == "pending":
            return "shown" if self.delivered_at is not None else "invited"
        return self.status

    def for_page(self, now_ms: int) -> dict[str, Any]:
        """What the user's page gets: who calls, the room, for how much longer."""
        return {
            "id": self.call_id,
            "agent": self.agent,
            "url": self.url,
            "expiresAt": self.expires_at,
            "expiresInMs": max(0, self.expires_at - now_ms),
        }

    @classmethod
    def of(cls, call: VideoCall) -> Invitation:
        """A pending invitation as stored (read back after a restart)."""
        return cls(
            call_id=call.id,
            tenant_id=call.tenant_id,
            user_id=call.user_id,
            agent=call.started_by,
            agent_id=call.agent_id,
            url=call.url,
            invited_at=call.started_at,
            expires_at=call.invite_expires_at or call.started_at,
            delivered_at=call.invite_delivered_at,
        )

    def to_json(self) -> dict[str, Any]:
        """What dashboards get."""
        return {
            "callId": self.call_id,
            "userId": self.user_id,
            "agent": self.agent,
            "agentId": self.agent_id,
            "url": self.url,
            "status": self.status,
            "invitedAt": self.invited_at,
            "expiresAt": self.expires_at,
            "deliveredAt": self.delivered_at,
            "answeredAt": self.answered_at,
        }


class CallBoard:
    """Start with ``await nursery.start(board.run)``."""

    def __init__(self, store: EventStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._pending: dict[tuple[int, str], Invitation] = {}
        #: (trio deadline, call id, user) of pending invitations, earliest first.
        self._due: list[tuple[float, int, tuple[int, str]]] = []
        self._recent: dict[int, list[Invitation]] = {}
        self._wake = trio.Event()
        self._subscribers: list[Callable[[Invitation], None]] = []
        self._handlers: list[Callable[[Invitation], Awaitable[None]]] = []

    def subscribe(self, callback: Callable[[Invitation], None]) -> None:
        """Call ``callback`` (synchronously; it must not block) on every change."""
        self._subscribers.append(callback)

    def subscribe_changes(self, handler: Callable[[Invitation], Awaitable[None]]) -> None:
        """Await ``handler`` on every change, in order, before the callbacks run (the
        Notifier: the alerts' lifecycle is written before dashboards hear of it)."""
        self._handlers.append(handler)

    async def run(
        self, *, task_status: trio.TaskStatus[CallBoard] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Take back what was pending before a restart, then time invitations out."""
        for call in await self._store.read(pending_invitations):
            self._add(Invitation.of(call))
        task_status.started(self)
        while True:
            if self._due:
                with trio.move_on_at(self._due[0][0]):
                    await self._wake.wait()
            else:
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            while self._due and self._due[0][0] <= now:
                _, call_id, key = heapq.heappop(self._due)
                invitation = self._pending.get(key)
                if invitation is not None and invitation.call_id == call_id:
                    await self._settle(invitation, "ignored")

    # ---- what the HTTP layer asks ------------------------------------------

    def pending(self, tenant_id: int, user_id: str) -> Invitation | None:
        """The user's waiting invitation, or None (from memory: every poll asks)."""
        return self._pending.get((tenant_id, user_id))

    def recent(self, tenant_id: int) -> list[Invitation]:
        """The tenant's invitations waiting or answered in the last 15 minutes, newest first."""
        oldest = self._clock.now_ms() - RECENT_MS
        kept = [
            i for i in self._recent.get(tenant_id, ()) if (i.answered_at or i.invited_at) >= oldest
        ]
        self._recent[tenant_id] = kept
        waiting = [i for i in self._pending.values() if i.tenant_id == tenant_id]
        return sorted([*waiting, *kept], key=lambda i: -i.call_id)

    async def invite(
        self,
        tenant_id: int,
        user_id: str,
        call_id: int,
        *,
        agent: str,
        agent_id: int,
        url: str,
        timeout_s: float,
    ) -> Invitation:
        """Invite the user's page to call ``call_id``; a waiting older one is replaced."""
        now = self._clock.now_ms()
        invitation = Invitation(
            call_id=call_id,
            tenant_id=tenant_id,
            user_id=user_id,
            agent=agent,
            agent_id=agent_id,
            url=url,
            invited_at=now,
            expires_at=now + int(timeout_s * 1000),
        )
        older = self._pending.get(invitation.key)
        await self._store.write(
            lambda conn: record_invitation(
                conn, call_id, "pending", expires_at=invitation.expires_at
            )
        )
        if older is not None:
            await self._settle(older, "replaced")
        self._add(invitation)
        await self._publish(invitation)
        return invitation

    async def delivered(self, invitation: Invitation) -> Invitation:
        """The user's page received ``invitation`` (the first time is recorded)."""
        current = self._pending.get(invitation.key)
        if current is None or current.call_id != invitation.call_id or current.delivered_at:
            return current or invitation
        now = self._clock.now_ms()
        current = replace(current, delivered_at=now)
        self._pending[current.key] = current
        await self._store.write(
            lambda conn: record_invitation(conn, current.call_id, "pending", delivered_at=now)
        )
        await self._publish(current)
        return current

    async def answer(
        self, tenant_id: int, user_id: str, call_id: int, answer: str
    ) -> Invitation | None:
        """The user's page answered (``joined`` or ``declined``); None if that
        invitation is not waiting (answered, replaced, timed out, or someone
        else's)."""
        if answer not in ANSWERS:
            raise ValueError(f"an invitation is answered with {' or '.join(ANSWERS)}")
        current = self._pending.get((tenant_id, user_id))
        if current is None or current.call_id != call_id:
            return None
        return await self._settle(current, answer)  # type: ignore[arg-type]

    # ---- bookkeeping ------------------------------------------------------------

    def _add(self, invitation: Invitation) -> None:
        self._pending[invitation.key] = invitation
        deadline = self._clock.to_trio(invitation.expires_at / 1000)
        if not self._due or deadline < self._due[0][0]:
            self._wake.set()
        heapq.heappush(self._due, (deadline, invitation.call_id, invitation.key))

    async def _settle(self, invitation: Invitation, status: InvitationStatus) -> Invitation:
        if self._pending.get(invitation.key) is invitation:
            del self._pending[invitation.key]
        now = self._clock.now_ms()
        done = replace(invitation, status=status, answered_at=now)
        await self._store.write(
            lambda conn: record_invitation(conn, done.call_id, status, answered_at=now)
        )
        self._recent.setdefault(done.tenant_id, []).insert(0, done)
        log.info("call #%d invitation: %s", done.call_id, status)
        await self._publish(done)
        return done

    async def _publish(self, invitation: Invitation) -> None:
        for handler in self._handlers:
            try:
                await handler(invitation)
            except Exception:
                log.exception("call board handler %r failed", handler)
        for callback in self._subscribers:
            try:
                callback(invitation)
            except Exception:
                log.exception("call board subscriber %r failed", callback)
