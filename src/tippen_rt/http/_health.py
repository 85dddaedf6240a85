"""``/healthz`` (the process answers) and ``/readyz`` (it can do its job)."""

from __future__ import annotations

import hmac

import trio
from quart import Blueprint, Response, request

from ._json import json_response
from ._server import live_connections
from ._services import AppServices, services

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
    """Ready: recovered, the store takes writes, the snapshot backend answers.

    Anyone gets ``{"ready": bool, "reason": str}``: enough for a load
    balancer, nothing about users or the set-up.  With ``Authorization:
    Bearer <TIPPEN_OPERATOR_TOKEN>`` the answer adds ``checks``: live users,
    open connections, the recovery report and each backend's state.
    """
    svc = services()
    reasons: list[str] = []
    store_stats = svc.store.stats()
    checks: dict[str, object] = {
        "store": {
            "ok": svc.store.accepting and svc.store.writer_ok,
            "writer_ok": svc.store.writer_ok,
            "writer_starts": store_stats.writer_starts,
            "writer_deaths": store_stats.writer_deaths,
            "queued_jobs": store_stats.queued_jobs,
        }
    }
    if not svc.store.accepting:
        reasons.append("the event store is not accepting writes")
    elif not svc.store.writer_ok:
        reasons.append("the SQLite writer process is being restarted")
    if svc.registry is not None and svc.recovery is None:
        reasons.append("recovering live users")
    checks["http_connections"] = live_connections()
    if svc.registry is not None:
        checks["live_users"] = svc.registry.live_count
        checks["live_users_by_tenant"] = {
            str(tid): n for tid, n in sorted(svc.registry.live_by_tenant().items())
        }
    if svc.notifier is not None:
        stats = svc.notifier.stats
        checks["alerts"] = {
            "recorded": stats.recorded,
            "posted": stats.posted,
            "held_back_by_tenant_limit": stats.held_back,
            "digests": stats.digests,
        }
    checks["ingest"] = {
        "shed": svc.guards.shed,
        "rate_limited": svc.guards.limited,
        "new_users_refused": svc.guards.users_refused,
    }
    if svc.recovery is not None:
        r = svc.recovery
        checks["recovery"] = {
            "source": r.source,
            "users_restored": r.users_restored,
            "snapshots_loaded": r.snapshots_loaded,
            "snapshots_bad": r.snapshots_bad,
            "replayed_events": r.replayed_events,
            "seconds": round(r.seconds, 3),
            "errors": r.errors,
        }
    if svc.snapshots is not None:
        error = await _snapshot_error(svc)
        backend: dict[str, object] = {"backend": svc.snapshots.name, "ok": error is None}
        if error is not None:
            backend["error"] = error
            reasons.append(f"snapshot backend {svc.snapshots.name}: {error}")
        if svc.snapshotter is not None:
            backend["rounds"] = svc.snapshotter.rounds
        checks["snapshots"] = backend
    ready = not reasons
    body: dict[str, object] = {"ready": ready, "reason": "; ".join(reasons) or "ok"}
    if is_operator(svc.settings.operator_token):
        body["checks"] = checks
    return json_response(body, 200 if ready else 503)


async def _snapshot_error(svc: AppServices) -> str | None:
    assert svc.snapshots is not None
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
    return error


def is_operator(token: str) -> bool:
    """True if the request carries the operator token (never when none is set)."""
    if not token:
        return False
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )
