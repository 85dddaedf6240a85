"""A real redis-server on a free port, started and stopped by the tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """A redis-server process; ``url`` reaches it.

    Without ``persistent`` it keeps nothing on disk: every restart is empty.
    With it, every write is in an append-only file in ``workdir`` (fsync
    always), so a restart after :meth:`stop` (a ``kill -9``) has its data back,
    unless :meth:`forget_data` ran in between.
    """

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    persistent: bool = False

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server on the same port (see ``persistent``)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """``kill -9`` the server (its data is gone unless it is ``persistent``)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    @property
    def running(self) -> bool:
        """True while the redis-server process runs."""
        return self.proc is not None and self.proc.poll() is None

    def forget_data(self) -> None:
        """Delete what a ``persistent`` server keeps on disk (call it stopped)."""
        if self.running:
            raise RuntimeError("stop the server before deleting its files")
        shutil.rmtree(self.workdir / "appendonlydir", ignore_errors=True)
        for name in ("appendonly.aof", "dump.rdb"):
            (self.workdir / name).unlink(missing_ok=True)

    def client(self) -> redis.Redis:
        """A client for assertions."""
        return redis.Redis(port=self.port)


@contextmanager
def running_redis(workdir: Path, *, persistent: bool = False) -> Iterator[RedisServer]:
    """A started redis-server that is always stopped afterwards."""
    server = RedisServer(port=free_port(), workdir=workdir, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()
