"""``/healthz`` (the process answers) and ``/readyz`` (it can do its job)."""

from __future__ import annotations

import trio
from quart import Blueprint, Response

from ._json import json_response
from ._server import live_connections
from ._services import services

health = Blueprint("health", __name__)

#: How long /readyz waits for the snapshot backend to answer a ping.
PING_TIMEOUT_S = 2.0


@health.get("/healthz")
async def healthz() -> Response:
    """Alive: the event loop runs and answers."""
    svc = services()
    return json_response({"ok": True, "store": {"accepting": svc.store.accepting}})


@health.get("/readyz")
async def readyz() -> Response:
    """Ready: recovered, the store takes writes, the snapshot backend answers."""
    svc = services()
    checks: dict[str, object] = {"store": {"ok": svc.store.accepting}}
    ok = svc.store.accepting
    checks["http_connections"] = live_connections()
    if svc.registry is not None:
        checks["live_users"] = svc.registry.live_count
    if svc.recovery is not None:
        r = svc.recovery
        checks["recovery"] = {
            "source": r.source,
            "users_restored": r.users_restored,
            "snapshots_loaded": r.snapshots_loaded,
            "replayed_events": r.replayed_events,
            "seconds": round(r.seconds, 3),
            "errors": r.errors,
        }
    if svc.snapshots is not None:
        backend: dict[str, object] = {"backend": svc.snapshots.name}
        error: str | None = None
        with trio.move_on_after(PING_TIMEOUT_S) as scope:
            try:
                await svc.snapshots.ping()
            except Exception as exc:
                error = str(exc) or type(exc).__name__
        if scope.cancelled_caught:
            error = f"no answer in {PING_TIMEOUT_S} s"
        if error is None and svc.snapshotter is not None and not svc.snapshotter.healthy:
            error = svc.snapshotter.last_error or "last snapshot round failed"
        backend["ok"] = error is None
        if error is not None:
            backend["error"] = error
        if svc.snapshotter is not None:
            backend["rounds"] = svc.snapshotter.rounds
        checks["snapshots"] = backend
        ok = ok and error is None
    return json_response({"ok": ok, "checks": checks}, 200 if ok else 503)
