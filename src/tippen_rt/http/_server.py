"""Running the app on hypercorn's trio worker, inside our own nursery."""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
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
    await serve(
        app,
        hypercorn_config(settings),
        shutdown_trigger=shutdown.wait,
        task_status=task_status,
    )
