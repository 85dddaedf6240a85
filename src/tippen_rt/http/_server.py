"""Running the app on hypercorn's trio worker, inside our own nursery."""

from __future__ import annotations

import logging
import weakref

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Event, Updated
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio import serve
from hypercorn.trio import tcp_server as hypercorn_tcp_server
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, LifespanState
from quart_trio import QuartTrio

from ..config import Settings
from ._protocol import ServerConfig, TippenProtocolWrapper

log = logging.getLogger(__name__)


#: Seconds between pings to an open dashboard WebSocket (at most).
WEBSOCKET_PING_S = 5.0


def hypercorn_config(settings: Settings) -> ServerConfig:
    """Server limits and binds from our settings."""
    config = ServerConfig()
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
    # HTTP/2 only when asked for; _protocol.py applies max_header_bytes to it
    # too (h2 itself closes a connection at hypercorn's 64 KiB header list).
    config.http2 = settings.http2
    if not settings.http2:
        config.alpn_protocols = ["http/1.1"]
    config.backlog = 1024
    config.include_server_header = False
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


class _CycleFreeTCPServer(TCPServer):
    """Hypercorn's connection handler: leaves no reference cycle behind, and
    an error in one connection ends that connection only.

    Hypercorn catches only ``OSError`` around a connection: anything else its
    protocol code raises (``priority.TooManyStreamsError`` on a flood of
    HTTP/2 PRIORITY frames, for one) went up into the listener's nursery and
    ended the process.  Here it is logged in one line, the connection (which
    hypercorn has closed on the way out) is dropped, and the listener goes on;
    ``trio.Cancelled`` and other ``BaseException`` subclasses pass through untouched.

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
        self._idle = True  # no request in progress (hypercorn's Updated events)
        _open_connections.add(self)

    async def run(self) -> None:
        try:
            await super().run()
        except* Exception as failure:
            _log_connection_failure(self, failure)
        finally:
            self.__dict__.clear()

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            self._idle = event.idle
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        await super()._read_data()
        # The client has gone (end of stream, a broken connection, the read
        # timeout) and the protocol knows.  Hypercorn left an idle connection
        # to its keep-alive timer, so each client that connected and went
        # away held a socket for the whole keep-alive timeout: close it now.
        # A request in progress still finishes (and then closes it).
        if self._idle:
            await self.idle_task.stop()
            await self._close()

    async def _close(self) -> None:
        # Hypercorn closes a finished "Connection: close" (or refused) request's
        # connection from the app's task, which quart-trio cancels once the
        # response is sent: unshielded, the close was cancelled at its first
        # checkpoint and the socket stayed open until the read timeout.  Both
        # steps are non-blocking socket calls.
        with trio.CancelScope(shield=True):
            await super()._close()


def _log_connection_failure(server: TCPServer, failure: BaseExceptionGroup[Exception]) -> None:
    first: BaseException = failure
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    client = getattr(getattr(server, "protocol", None), "client", None)
    peer = f"{client[0]}:{client[1]}" if client else "a client"
    message = repr(str(first))[1:-1][:200]  # one line, whatever the message holds
    log.warning(
        "closed the connection from %s after an error in its protocol handling: %s: %s",
        peer,
        type(first).__name__,
        message,
    )
    log.debug("the error in full", exc_info=failure)


_open_connections: weakref.WeakSet[_CycleFreeTCPServer] = weakref.WeakSet()


def live_connections() -> int:
    """HTTP connections whose handler is still in memory (open ones, normally)."""
    return len(_open_connections)


def _install_connection_handlers() -> None:
    # hypercorn's worker_serve looks TCPServer up in its module when it starts,
    # and TCPServer.run looks ProtocolWrapper up in its own for each connection.
    hypercorn_run.TCPServer = _CycleFreeTCPServer  # type: ignore[attr-defined]
    hypercorn_tcp_server.ProtocolWrapper = TippenProtocolWrapper  # type: ignore[attr-defined]


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
    _install_connection_handlers()
    await serve(
        app,
        hypercorn_config(settings),
        shutdown_trigger=shutdown.wait,
        task_status=task_status,
    )
