"""Finished requests and closed connections leave nothing behind in memory.

The registry freezes long-lived objects out of the GC's sight (``gc.freeze()``),
so anything that is freed only by the cyclic collector would stay in memory
for good once frozen.  These tests run with the cyclic GC off: whatever they
find alive afterwards would not be freed by reference counting either.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
import trio
from quart.ctx import RequestContext

from tippen_rt.actors import Feed, Registry, feed_channels
from tippen_rt.clock import Clock
from tippen_rt.config import Settings
from tippen_rt.http import TRACK_PATH, AppServices, TenantDirectory, create_app
from tippen_rt.http._server import live_connections, serve_http
from tippen_rt.persist import EventStore
from tippen_rt.tenants import Tenant

from ..conftest import TRACKER_HEADERS, make_batch


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _tasks_named(name: str) -> list[trio.lowlevel.Task]:
    found = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        assert task is not None
        if task.name.endswith(name):
            found.append(task)
        for child_nursery in task.child_nurseries:
            stack.extend(child_nursery.child_tasks)
    return found


async def _live_app(
    settings: Settings, store: EventStore, nursery: trio.Nursery
) -> tuple[Any, Registry]:
    (t_send, t_recv), (c_send, c_recv) = feed_channels()
    await nursery.start(Feed(t_recv, c_recv).run)
    registry = await nursery.start(Registry(Clock(), triggers_out=t_send, changes_out=c_send).run)
    directory = TenantDirectory(store)
    await directory.reload()
    services = AppServices(
        settings=settings, store=store, tenants=directory, sink=registry, registry=registry
    )
    return create_app(services), registry


async def test_an_actor_does_not_keep_the_request_that_spawned_it(
    settings: Settings, store: EventStore, tenant: Tenant, nursery: trio.Nursery
) -> None:
    app, registry = await _live_app(settings, store, nursery)
    client = app.test_client()
    response = await client.post(
        TRACK_PATH,
        data=orjson.dumps(make_batch(tenant, user_id="ann")),
        headers=TRACKER_HEADERS,
    )
    assert response.status_code == 200
    assert registry.live_count == 1
    (actor,) = _tasks_named("run_user_actor")
    held = [v for v in actor.context.values() if isinstance(v, RequestContext)]
    assert held == []


async def _get_and_close(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = await stream.receive_some(65536)
    return answer


async def test_closed_connections_are_freed_without_the_cyclic_gc(
    settings: Settings,
    store: EventStore,
    tenant: Tenant,
    nursery: trio.Nursery,
    no_cyclic_gc: None,
) -> None:
    app, _ = await _live_app(settings, store, nursery)
    shutdown = trio.Event()
    urls = await nursery.start(
        serve_http, app, replace(settings, host="127.0.0.1", port=0), shutdown
    )
    port = int(urls[0].rsplit(":", 1)[1])
    for _ in range(20):
        answer = await _get_and_close(port)
        assert answer.startswith(b"HTTP/1.1 200")
    with trio.fail_after(10):
        # The server notices each close on its own schedule, and nothing
        # announces that a handler was freed: look until none is left.
        while live_connections():  # noqa: ASYNC110
            await trio.sleep(0.01)
    shutdown.set()
