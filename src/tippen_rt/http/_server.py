"""Running the app on hypercorn's trio worker, inside our own nursery."""

from __future__ import annotations

import logging
import weakref

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio import serve
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, LifespanState
from quart_trio import QuartTrio

from ..config import Settings

log = logging.getLogger(__name__)


#: Seconds between pings to an open dashboard WebSocket (at most).
WEBSOCKET_PING_S = 5.0


def hypercorn_config(settings: Settings) -> HypercornConfig:
    """Server limits and binds from our settings."""
    config = HypercornConfig()
    host = settings.host
    config.bind = [f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"]
    config.graceful_timeout = settings.graceful_timeout_s
    # Hypercorn's idle timer runs from the end of one request until the next
    # request's headers are complete, so it is also the deadline for a client
    # that dribbles its headers in (slowloris).
    config.keep_alive_timeout = settings.keep_alive_timeout_s
    config.read_timeout = int(settings.read_timeout_s) or 1
    # The read timeout also cuts off a WebSocket whose client sends nothing (a
    # dashboard only listens): pings make browsers answer with pongs well before.
    config.websocket_ping_interval = min(WEBSOCKET_PING_S, config.read_timeout / 2)
    config.h11_max_incomplete_size = settings.max_header_bytes
    config.backlog = 1024
    config.include_server_header = False
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


class _CycleFreeTCPServer(TCPServer):
    """Hypercorn's connection handler, made to leave no reference cycle behind.

    A hypercorn connection is a cycle (the server holds its protocol, the
    protocol holds the server's bound ``protocol_send``), so a closed one is
    freed only by the cyclic GC.  The registry moves long-lived objects into
    the permanent generation (``gc.freeze()``, see ``actors/_gc.py``), which
    the GC never looks at: a connection that was open at a freeze would stay
    in memory after it closed (about 5 KB each, measured; RSS grew without
    end under connection churn).  Dropping our attributes when the
    connection is done breaks the cycle, so reference counting frees it.
    """

    def __init__(
        self,
        app: AppWrapper,
        config: HypercornConfig,
        context: WorkerContext,
        state: LifespanState,
        stream: trio.SSLStream[trio.SocketStream],
    ) -> None:
        super().__init__(app, config, context, state, stream)
        _open_connections.add(self)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            self.__dict__.clear()


_open_connections: weakref.WeakSet[_CycleFreeTCPServer] = weakref.WeakSet()


def live_connections() -> int:
    """HTTP connections whose handler is still in memory (open ones, normally)."""
    return len(_open_connections)


def _install_cycle_free_connections() -> None:
    # hypercorn's worker_serve looks TCPServer up in its module when it starts.
    hypercorn_run.TCPServer = _CycleFreeTCPServer  # type: ignore[attr-defined]


async def serve_http(
    app: QuartTrio,
    settings: Settings,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown`` is set, then finish in-flight requests.

    Reports the bound URLs (``["http://127.0.0.1:8080"]``) through ``task_status``.
    """
    _install_cycle_free_connections()
    await serve(
        app,
        hypercorn_config(settings),
        shutdown_trigger=shutdown.wait,
        task_status=task_status,
    )
