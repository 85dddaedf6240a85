"""Snapshots in Redis: one hash, written each round with HSETs, then pipelined HDELs.

redis-py's synchronous client runs in worker threads (``trio.to_thread``);
no asyncio anywhere in the process.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._snapshot_store import Key

log = logging.getLogger(__name__)

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


def _key(field: bytes) -> Key | None:
    try:
        tenant, sep, user = field.decode().partition(":")
        return (int(tenant), user) if sep and user else None
    except (UnicodeDecodeError, ValueError):
        return None


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
        # A marker this process sets with every round to a new value: if a
        # later round finds another value (or none), Redis lost what it had
        # since, restarted empty or from an older dump, and a full rewrite
        # must come before any new watermark.
        self._marker = f"{prefix}:writer"
        self._watermark = f"{prefix}:watermark"
        self._token = secrets.token_hex(8)
        self._rounds = 0
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

        Returns True if Redis had lost snapshots since this process's last
        round (it restarted empty, or from an older dump): then no watermark
        is written (it would vouch for snapshots that are gone), and the
        caller must write every live state again.
        """
        gone = list(deleted)
        expected = self._marker_value() if self._rounds else None
        next_marker = f"{self._token}:{self._rounds + 1}"

        def write() -> bool:
            # Field names are built here, in the worker thread, not on the event loop.
            found = self._client.get(self._marker)
            lost = expected is not None and found != expected.encode()
            items = list(snapshots.items())
            for i in range(0, len(items), WRITE_CHUNK):
                chunk = items[i : i + WRITE_CHUNK]
                self._client.hset(self._hash, mapping={_field(k): v for k, v in chunk})
            fields = [_field(k) for k in gone]
            pipe = self._client.pipeline(transaction=False)
            for i in range(0, len(fields), WRITE_CHUNK):
                pipe.hdel(self._hash, *fields[i : i + WRITE_CHUNK])
            # Last: the watermark says every change before it is written.
            if lost:
                pipe.delete(self._watermark)
            elif watermark is not None:
                pipe.set(self._watermark, repr(watermark))
            pipe.set(self._marker, next_marker)
            pipe.execute()
            return lost

        lost: bool = await self._run(write)
        self._rounds += 1
        return lost

    def _marker_value(self) -> str:
        return f"{self._token}:{self._rounds}"

    async def check_intact(self) -> None:
        """Raise if Redis lost snapshots since this process's last round."""
        if not self._rounds:
            return
        found = await self._run(self._client.get, self._marker)
        if found != self._marker_value().encode():
            raise ConnectionError("Redis lost snapshots (restarted); the next round rewrites them")

    async def load_all(self) -> tuple[dict[Key, bytes], float | None]:
        """Every snapshot, read with HSCAN in chunks, and the last round's watermark."""

        def read() -> tuple[dict[Key, bytes], float | None]:
            out: dict[Key, bytes] = {}
            for field, value in self._client.hscan_iter(self._hash, count=CHUNK):
                key = _key(field)
                if key is None:
                    log.warning("snapshot field %r is not tenant:user; ignored", field[:80])
                else:
                    out[key] = value
            mark = self._client.get(self._watermark)
            return out, None if mark is None else float(mark)

        result: tuple[dict[Key, bytes], float | None] = await self._run(read)
        return result

    async def delete(self, keys: Iterable[Key]) -> None:
        """HDEL these users' snapshots (not a round: marker and watermark stay)."""
        fields = [_field(k) for k in keys]

        def hdel() -> None:
            for i in range(0, len(fields), WRITE_CHUNK):
                self._client.hdel(self._hash, *fields[i : i + WRITE_CHUNK])

        if fields:
            await self._run(hdel)

    async def ping(self) -> None:
        """Raise if Redis does not answer, or lost the snapshots of this process."""
        await self._run(self._client.ping)
        await self.check_intact()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
