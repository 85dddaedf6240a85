"""Open dashboard sockets by admin session, so a session that ends closes them.

A socket checks its session once, when it connects.  Sessions end before they
expire in two ways: the admin logs out (that cookie is revoked), or the
tenant's admin token is rotated (every session of the tenant ends).  Each
open socket runs under a cancel scope registered here; ending a session
cancels the scopes of its sockets, which then check the session again and
close if it is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio


class LiveSessions:
    """The cancel scopes of open sockets, with the tenant and cookie of each."""

    def __init__(self) -> None:
        self._open: dict[trio.CancelScope, tuple[int, str]] = {}

    @contextmanager
    def watch(self, tenant_id: int, cookie: str) -> Iterator[trio.CancelScope]:
        """Run the block under a scope that :meth:`end_cookie` / :meth:`recheck` cancel."""
        scope = trio.CancelScope()
        self._open[scope] = (tenant_id, cookie)
        try:
            with scope:
                yield scope
        finally:
            del self._open[scope]

    def end_cookie(self, cookie: str) -> None:
        """The session in ``cookie`` ended (logout): interrupt its sockets."""
        for scope, (_, held) in list(self._open.items()):
            if held == cookie:
                scope.cancel()

    def recheck(self, tenant_id: int) -> None:
        """The tenant's admin token changed: interrupt its sockets so they check again."""
        for scope, (tenant, _) in list(self._open.items()):
            if tenant == tenant_id:
                scope.cancel()

    def __len__(self) -> int:
        return len(self._open)
