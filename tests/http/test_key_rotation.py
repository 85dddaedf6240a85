"""``tippen-rt tenant rotate-key``: the new key works at once, the old one until
its overlap ends (checked at every request, not only at a reload), then 401."""

from __future__ import annotations

import time
from typing import Any

import orjson

from tippen_rt.config import Settings
from tippen_rt.http import TRACK_PATH, AppServices, TenantDirectory, create_app
from tippen_rt.persist import EventStore, rotate_api_key
from tippen_rt.tenants import Tenant

from ..conftest import TRACKER_HEADERS, make_batch


class Wall:
    """The directory's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.s = time.time()

    def __call__(self) -> float:
        return self.s

    def ms(self) -> int:
        return int(self.s * 1000)


async def status(client: Any, tenant: Tenant) -> tuple[int, str | None]:
    response = await client.post(
        TRACK_PATH, data=orjson.dumps(make_batch(tenant)), headers=TRACKER_HEADERS
    )
    body = await response.get_json()
    return response.status_code, body.get("error", {}).get("code")


async def client_and_directory(
    settings: Settings, store: EventStore, wall: Wall
) -> tuple[Any, TenantDirectory]:
    directory = TenantDirectory(store, wall_s=wall)
    await directory.reload()
    app = create_app(AppServices(settings=settings, store=store, tenants=directory))
    return app.test_client(), directory


async def test_the_old_key_works_until_the_overlap_ends(
    settings: Settings, store: EventStore, tenant: Tenant
) -> None:
    wall = Wall()
    client, directory = await client_and_directory(settings, store, wall)
    rotated = await store.write(
        lambda c: rotate_api_key(c, "acme", overlap_s=3600, now_ms=wall.ms())
    )
    assert rotated.api_key != tenant.api_key and rotated.previous_api_key == tenant.api_key
    await directory.reload()
    assert await status(client, rotated) == (200, None)
    assert await status(client, tenant) == (200, None)
    wall.s += 3599
    assert await status(client, tenant) == (200, None)
    wall.s += 1  # no reload in between: the expiry is checked on every request
    assert await status(client, tenant) == (401, "unknown_api_key")
    assert await status(client, rotated) == (200, None)


async def test_no_overlap_ends_the_old_key_at_the_next_reload(
    settings: Settings, store: EventStore, tenant: Tenant
) -> None:
    wall = Wall()
    client, directory = await client_and_directory(settings, store, wall)
    rotated = await store.write(lambda c: rotate_api_key(c, "acme", overlap_s=0, now_ms=wall.ms()))
    assert rotated.previous_api_key is None
    await directory.reload()
    assert await status(client, tenant) == (401, "unknown_api_key")
    assert await status(client, rotated) == (200, None)


async def test_a_second_rotation_ends_the_first_keys_overlap(
    settings: Settings, store: EventStore, tenant: Tenant
) -> None:
    wall = Wall()
    client, directory = await client_and_directory(settings, store, wall)
    first = await store.write(lambda c: rotate_api_key(c, "acme", overlap_s=3600, now_ms=wall.ms()))
    second = await store.write(
        lambda c: rotate_api_key(c, "acme", overlap_s=3600, now_ms=wall.ms())
    )
    await directory.reload()
    assert await status(client, tenant) == (401, "unknown_api_key")
    assert await status(client, first) == (200, None)
    assert await status(client, second) == (200, None)
