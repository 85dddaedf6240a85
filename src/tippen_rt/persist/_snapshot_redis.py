"""Snapshots in Redis: one hash, written each round with HSETs, then pipelined HDELs.

redis-py's synchronous client runs in worker threads (``trio.to_thread``);
no asyncio anywhere in the process.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._snapshot_store import Key

#: Fields per HSCAN call: large enough to amortise round trips, small
#: enough that Redis never blocks other clients for long.
CHUNK = 5_000
#: Snapshots per HSET when writing.  Building and packing a command is
#: pure Python in the worker thread, holding the GIL the event loop needs; a
#: pipeline of 10,000 held it long enough to delay timers by 18 ms (the loop
#: waits out whole 5 ms switch intervals).  Smaller commands hand the GIL
#: back at every round trip.
WRITE_CHUNK = 500


def _field(key: Key) -> str:
    return f"{key[0]}:{key[1]}"


def _key(field: bytes) -> Key:
    tenant, _, user = field.decode().partition(":")
    return int(tenant), user


class RedisSnapshotStore:
    """Snapshots in the hash ``{prefix}:snapshots``."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str = "tippen", timeout_s: float = 5.0) -> None:
        self._client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
            # One quick retry covers a pooled connection that went stale when
            # Redis restarted; the snapshotter does the real retrying, with
            # backoff, and must learn of an outage quickly to report it.
            retry=Retry(NoBackoff(), 1),
        )
        self._hash = f"{prefix}:snapshots"
        # A marker this process writes with its first round: if a later round
        # finds it gone, Redis lost its data (restarted without persistence).
        self._marker = f"{prefix}:writer"
        self._watermark = f"{prefix}:watermark"
        self._token = secrets.token_hex(8)
        self._marked = False
        self._limiter = trio.CapacityLimiter(2)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(
            partial(fn, *args), limiter=self._limiter, abandon_on_cancel=True
        )

    async def save(
        self,
        snapshots: Mapping[Key, bytes],
        deleted: Iterable[Key] = (),
        watermark: float | None = None,
    ) -> bool:
        """HSET the snapshots, HDEL the deleted keys, then SET the watermark.

        Returns True if Redis had lost earlier snapshots (it restarted empty).
        """
        gone = list(deleted)

        def write() -> bool:
            # Field names are built here, in the worker thread, not on the event loop.
            marker_was_missing = bool(self._client.set(self._marker, self._token, nx=True))
            items = list(snapshots.items())
            for i in range(0, len(items), WRITE_CHUNK):
                chunk = items[i : i + WRITE_CHUNK]
                self._client.hset(self._hash, mapping={_field(k): v for k, v in chunk})
            fields = [_field(k) for k in gone]
            pipe = self._client.pipeline(transaction=False)
            for i in range(0, len(fields), WRITE_CHUNK):
                pipe.hdel(self._hash, *fields[i : i + WRITE_CHUNK])
            # Last: the watermark says every change before it is written.
            if watermark is not None:
                pipe.set(self._watermark, repr(watermark))
            pipe.execute()
            return marker_was_missing

        marker_was_missing: bool = await self._run(write)
        lost = marker_was_missing and self._marked
        self._marked = True
        return lost

    async def load_all(self) -> tuple[dict[Key, bytes], float | None]:
        """Every snapshot, read with HSCAN in chunks, and the last round's watermark."""

        def read() -> tuple[dict[Key, bytes], float | None]:
            out: dict[Key, bytes] = {}
            for field, value in self._client.hscan_iter(self._hash, count=CHUNK):
                out[_key(field)] = value
            mark = self._client.get(self._watermark)
            return out, None if mark is None else float(mark)

        result: tuple[dict[Key, bytes], float | None] = await self._run(read)
        return result

    async def delete(self, keys: Iterable[Key]) -> None:
        """HDEL these users' snapshots."""
        await self.save({}, keys)

    async def ping(self) -> None:
        """Raise ``redis.RedisError`` if Redis does not answer."""
        await self._run(self._client.ping)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
