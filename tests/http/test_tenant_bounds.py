"""Per-tenant bounds at the edge: live users (issue 18)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import trio

from tippen_rt.actors import Registry, feed_channels
from tippen_rt.clock import Clock
from tippen_rt.http import TRACK_PATH, AppServices
from tippen_rt.persist import EventStore, count_events, update_tenant
from tippen_rt.tenants import Tenant

from ..conftest import TRACKER_HEADERS, make_batch


async def post(client: Any, body: object) -> Any:
    return await client.post(TRACK_PATH, data=orjson.dumps(body), headers=TRACKER_HEADERS)


async def test_a_new_user_beyond_max_live_users_gets_429_and_existing_ones_keep_working(
    client: Any,
    services: AppServices,
    store: EventStore,
    tenant: Tenant,
    nursery: trio.Nursery,
) -> None:
    capped = replace(tenant.settings, max_live_users=2, unload_grace_s=0.2)
    await store.write(lambda c: update_tenant(c, tenant.name, settings=capped))
    await services.tenants.reload()
    (t_send, _), (c_send, _) = feed_channels()
    registry = await nursery.start(Registry(Clock(), triggers_out=t_send, changes_out=c_send).run)
    services.registry = registry
    services.sink = registry

    for user in ("ann", "bob"):
        assert (await post(client, make_batch(tenant, user_id=user))).status_code == 200
    before = await store.read(count_events)

    refused = await post(client, make_batch(tenant, user_id="cat"))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    error = (await refused.get_json())["error"]
    assert error["code"] == "live_user_limit" and error["field"] == "userId"
    assert "2 live users" in error["message"] and "max_live_users" in error["message"]
    assert await store.read(count_events) == before  # nothing of the refused batch
    assert not registry.is_live(tenant.id, "cat")
    assert services.guards.users_refused == 1

    # Users already live are not affected.
    assert (await post(client, make_batch(tenant, user_id="ann"))).status_code == 200
    # Once one leaves, a new user is taken.
    unload = [{"type": "visibility", "state": "unload", "timestamp": Clock().now_ms()}]
    assert (await post(client, make_batch(tenant, unload, user_id="bob"))).status_code == 200
    with trio.fail_after(5):
        while registry.is_live(tenant.id, "bob"):  # noqa: ASYNC110 - the actor ends on its own
            await trio.sleep(0.05)
    assert registry.live_count_of(tenant.id) == 1
    assert (await post(client, make_batch(tenant, user_id="cat"))).status_code == 200
    assert registry.live_by_tenant() == {tenant.id: 2}
