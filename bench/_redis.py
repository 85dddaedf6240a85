"""A private redis-server for a benchmark: a free port on 127.0.0.1, no persistence.

Never the machine's own Redis (6379): a benchmark writes 100k keys and must
neither see nor disturb anyone else's data.  The server itself is the tests'
(``tests/support/redis_server.py``); this adds what the reports print.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from tests.support.redis_server import RedisServer as _TestRedisServer
from tests.support.redis_server import free_port


class RedisServer(_TestRedisServer):
    """A redis-server process that can also report its version and memory."""

    def version(self) -> str:
        """The server's version, for the report."""
        client = redis.Redis(port=self.port)
        try:
            return str(client.info("server").get("redis_version", "?"))
        finally:
            client.close()

    def used_memory_mib(self) -> float:
        """Memory the server uses for its data, MiB."""
        client = redis.Redis(port=self.port)
        try:
            return int(client.info("memory")["used_memory"]) / 2**20
        finally:
            client.close()


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    """A started private redis-server that is always stopped afterwards."""
    server = RedisServer(port=free_port(), workdir=workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
