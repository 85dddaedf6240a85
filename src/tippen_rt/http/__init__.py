"""HTTP: the ingest endpoint, admin API, dashboard pages and WebSocket hub."""

from ._app import create_app
from ._hub import Hub
from ._ingest import TRACK_PATH
from ._server import hypercorn_config, serve_http
from ._services import AppServices, BatchSink, DiscardSink, Probes, wall_clock_ms
from ._tenant_directory import TenantDirectory

__all__ = [
    "TRACK_PATH",
    "AppServices",
    "BatchSink",
    "DiscardSink",
    "Hub",
    "Probes",
    "TenantDirectory",
    "create_app",
    "hypercorn_config",
    "serve_http",
    "wall_clock_ms",
]
