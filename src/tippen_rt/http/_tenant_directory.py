"""An in-memory view of the tenants table for the request path.

Ingest looks a tenant up on every request, so tenants are kept in memory.
Tenants are added by the CLI in another process, so the view reloads lazily:
when a key is unknown (at most once per ``miss_reload_s``) and when it is older
than ``max_age_s``.  No task wakes up to refresh it.

An API key rotated with an overlap resolves, until the overlap ends, to the
same tenant as the new one; whether it still works is decided at each lookup,
so it stops at its expiry, not at the next reload.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

import trio

from ..persist import Agent, EventStore, list_agents, list_tenants
from ..tenants import Tenant, normalize_origin

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TenantDirectory:
    """Tenants by API key and by id, and the union of their allowed origins."""

    def __init__(
        self,
        store: EventStore,
        *,
        max_age_s: float = 10.0,
        miss_reload_s: float = 1.0,
        wall_s: Callable[[], float] = time.time,
    ):
        self._store = store
        self._wall_s = wall_s
        self._max_age_s = max_age_s
        self._miss_reload_s = miss_reload_s
        self._by_key: Mapping[str, Tenant] = {}
        self._by_id: Mapping[int, Tenant] = {}
        self._agents: Mapping[int, Agent] = {}
        self._origins: frozenset[str] = frozenset()
        self._loaded_at = -float("inf")
        self._lock = trio.Lock()
        self._on_admin_change: list[Callable[[int], None]] = []
        self._on_removed: list[Callable[[int], None]] = []
        self._on_settings_change: list[Callable[[Tenant], None]] = []

    def on_admin_change(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(tenant_id)`` when a reload finds a tenant's admin token
        changed (rotated), one of its agents removed, or the tenant gone."""
        self._on_admin_change.append(callback)

    def on_removed(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(tenant_id)`` when a reload finds a tenant gone
        (``tippen-rt tenant remove``); after its ``on_admin_change`` callbacks."""
        self._on_removed.append(callback)

    def on_settings_change(self, callback: Callable[[Tenant], None]) -> None:
        """Call ``callback(tenant)`` when a reload finds a tenant's settings, origins
        or identity secret changed (``tippen-rt tenant set``, the demo's switch)."""
        self._on_settings_change.append(callback)

    async def reload(self) -> None:
        """Read every tenant again."""
        async with self._lock:
            tenants, agents = await self._store.read(
                lambda conn: (list_tenants(conn), list_agents(conn))
            )
            before, agents_before = self._by_id, self._agents
            self._by_key = {t.previous_api_key: t for t in tenants if t.previous_api_key}
            self._by_key |= {t.api_key: t for t in tenants}
            self._by_id = {t.id: t for t in tenants}
            self._agents = {a.id: a for a in agents}
            self._origins = frozenset(o for t in tenants for o in t.origins)
            self._loaded_at = trio.current_time()
        changed = {
            tenant_id
            for tenant_id, old in before.items()
            if (new := self._by_id.get(tenant_id)) is None
            or new.admin_token_hash != old.admin_token_hash
        }
        changed |= {a.tenant_id for a_id, a in agents_before.items() if a_id not in self._agents}
        for tenant_id in sorted(changed):
            for callback in self._on_admin_change:
                callback(tenant_id)
        for tenant_id, was in sorted(before.items()):
            now = self._by_id.get(tenant_id)
            if now is not None and _settings_of(now) != _settings_of(was):
                for on_settings in self._on_settings_change:
                    on_settings(now)
        for tenant_id in sorted(before.keys() - self._by_id.keys()):
            for callback in self._on_removed:
                callback(tenant_id)

    async def _reload_if_older_than(self, age_s: float) -> None:
        if trio.current_time() - self._loaded_at >= age_s:
            if self._lock.locked():  # someone else is reloading: wait for it
                async with self._lock:
                    return
            await self.reload()

    async def _find(self, table: Callable[[], Mapping[K, V]], key: K) -> V | None:
        """``key`` in the table ``table()`` returns, reloading when the view is
        old, and once more (at most every ``miss_reload_s``) on a miss: it may
        have been added a moment ago in another process."""
        await self._reload_if_older_than(self._max_age_s)
        found = table().get(key)
        if found is None:
            await self._reload_if_older_than(self._miss_reload_s)
            found = table().get(key)
        return found

    async def by_api_key(self, api_key: str) -> Tenant | None:
        """The tenant with ``api_key`` (its current key, or the one before it
        until its overlap ends), or None."""
        tenant = await self._find(lambda: self._by_key, api_key)
        if tenant is None or not tenant.accepts_api_key(api_key, int(self._wall_s() * 1000)):
            return None
        return tenant

    async def by_id(self, tenant_id: int) -> Tenant | None:
        """The tenant with ``tenant_id``, or None."""
        return await self._find(lambda: self._by_id, tenant_id)

    async def agent(self, agent_id: int) -> Agent | None:
        """The agent with ``agent_id`` (None once removed)."""
        return await self._find(lambda: self._agents, agent_id)

    async def origin_known(self, origin: str) -> bool:
        """True if any tenant allows ``origin`` (used for CORS preflight)."""
        await self._reload_if_older_than(self._max_age_s)
        if "*" in self._origins:
            return True
        try:
            normal = normalize_origin(origin)
        except ValueError:
            return False
        if normal not in self._origins:
            await self._reload_if_older_than(self._miss_reload_s)
        return normal in self._origins or "*" in self._origins

    def all(self) -> list[Tenant]:
        """The tenants as last loaded."""
        return list(self._by_id.values())


def _settings_of(tenant: Tenant) -> tuple[object, ...]:
    """What ``tenant set`` changes of a tenant (besides its keys and tokens)."""
    return (tenant.settings, tenant.origins, tenant.identity_secret)
