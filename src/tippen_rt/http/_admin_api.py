"""The admin JSON API under ``/api/admin``: users, their timeline, journey and
errors, alerts, video calls, erasure, the tenant's settings.

Every handler takes the tenant from the logged-in admin (:func:`admin_api`)
and passes it to every query and every live lookup, so a user id from another
tenant is simply not found (404), whatever route it is tried on.

User ids are free text chosen by the tracked app (they may hold ``/``), so
they travel in the query string (``?id=``) or the JSON body, never in the path.
"""

from __future__ import annotations

import logging
from typing import Any

from quart import Blueprint, Response, request

from ..actors import Trigger, UserState
from ..alerts import GOAL_MS, AlertStatus, Notifier, QueueFilter, ranked, response_figures
from ..events import TIERS, BadInput, EventType, log_safe
from ..persist import _alerts as alerts_db
from ..persist._admin import (
    ErasedCounts,
    VideoCall,
    activity_since,
    erase_user,
    get_user_summary,
    list_journey_events,
    list_user_events,
    list_user_summaries,
    list_video_calls,
    record_video_call,
)
from ._auth import Admin, admin_api
from ._errors import error_response
from ._journey import build_journey, journey_json
from ._json import json_body, json_response
from ._services import AppServices, services
from ._views import alert_json, event_json, queue_json, summary_json, user_json

log = logging.getLogger(__name__)

__all__ = ["admin_api_routes"]

admin_api_routes = Blueprint("admin_api", __name__, url_prefix="/api/admin")

MAX_PAGE = 500
DEFAULT_PAGE = 100
MAX_USER_ID_CHARS = 256
#: The largest integer SQLite stores; a larger one cannot even be bound to a query.
MAX_SQL_INT = 2**63 - 1


def _notifier(svc: AppServices) -> Notifier | None:
    return svc.notifier


def _not_found(what: str = "no such user") -> Response:
    return error_response(BadInput("not_found", what, None, status=404))


def _int_arg(
    name: str, default: int | None, *, low: int = 0, high: int = MAX_SQL_INT
) -> int | None:
    """Query parameter ``name`` as an integer from ``low`` to ``high`` (400 naming it
    otherwise); never beyond what SQLite can take."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput("invalid_field", f"{name} must be an integer", name) from None
    if not low <= value <= min(high, MAX_SQL_INT):
        raise BadInput(
            "invalid_field", f"{name} must be between {low} and {min(high, MAX_SQL_INT)}", name
        )
    return value


def _bool_arg(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise BadInput("invalid_field", f"{name} must be true or false", name)


def _user_id_arg() -> str:
    user_id = request.args.get("id")
    return _check_user_id(user_id, "id")


def _check_user_id(user_id: object, field: str) -> str:
    """A user id to look up.  Not refused for control or bidi characters, as
    ingest does: ids stored before it did must stay reachable, to be erased."""
    if (
        not isinstance(user_id, str)
        or not user_id
        or len(user_id) > MAX_USER_ID_CHARS
        or not _is_text(user_id)
    ):
        raise BadInput("invalid_field", f"{field} must be a user id", field)
    return user_id


def _is_text(value: str) -> bool:
    """False for strings no store can hold: lone surrogates, which JSON's
    ``\\ud800`` escapes make (SQLite's UTF-8 encoding would fail with a 500)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


async def _json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise BadInput(
            "unsupported_media_type", "send a JSON body", None, status=415
        )  # also keeps plain cross-site forms out
    doc = await json_body()
    if not isinstance(doc, dict):
        raise BadInput("invalid_json", "body must be a JSON object")
    return doc


async def _body_user_id() -> str:
    return _check_user_id((await _json_body()).get("userId"), "userId")


def _flag(doc: dict[str, Any], name: str) -> bool:
    value = doc.get(name, False)
    if not isinstance(value, bool):
        raise BadInput("invalid_field", f"{name} must be true or false", name)
    return value


# ---- users ------------------------------------------------------------------


@admin_api_routes.get("/me")
@admin_api
async def me(admin: Admin) -> Response:
    """Who is logged in, for which tenant, until when."""
    return json_response(
        {
            "tenant": {"id": admin.tenant.id, "name": admin.tenant.name},
            "name": admin.name,
            "agentId": admin.agent_id,
            "expiresAt": int(admin.expires_at * 1000),
        }
    )


def _live_json(svc: AppServices, tenant_id: int, user_id: str) -> dict[str, Any] | None:
    if svc.registry is None:
        return None
    state = svc.registry.state(tenant_id, user_id)
    if state is None:
        return None
    return user_json(state)


@admin_api_routes.get("/users")
@admin_api
async def users(admin: Admin) -> Response:
    """Live and recent users, needing support first, then most recently active.

    Query: ``scope`` (``live``, ``recent``: live and stored, default), ``tier``,
    ``needsSupport`` (true/false), ``activeWithinMin``, ``q`` (part of the
    id, email or name), ``limit``.
    """
    svc = services()
    scope = request.args.get("scope", "recent")
    if scope not in ("live", "recent"):
        raise BadInput("invalid_field", "scope must be live or recent", "scope")
    tier = request.args.get("tier") or None
    if tier is not None and tier not in TIERS:
        raise BadInput("invalid_field", f"tier must be one of {', '.join(TIERS)}", "tier")
    needs = _bool_arg("needsSupport")
    within = _int_arg("activeWithinMin", None, low=1, high=60 * 24 * 366)
    limit = _int_arg("limit", 200, low=1, high=MAX_PAGE) or 200
    query = (request.args.get("q") or "").strip().lower()[:256]
    now_ms = svc.wall_ms()
    since_ms = None if within is None else now_ms - within * 60_000

    def keep(user: dict[str, Any]) -> bool:
        if tier is not None and user["tier"] != tier:
            return False
        if needs is not None and user["needsSupport"] != needs:
            return False
        if since_ms is not None and (user["lastEventAt"] or 0) < since_ms:
            return False
        if query:
            email = (user["email"] or "").lower()
            name = (user["name"] or "").lower()
            return query in user["userId"].lower() or query in email or query in name
        return True

    found: dict[str, dict[str, Any]] = {}
    if svc.registry is not None:
        for state in svc.registry.states(admin.tenant_id):
            user = user_json(state)
            if keep(user):
                found[state.user_id] = user
    if scope == "recent":
        rows = await svc.store.read(
            lambda conn: list_user_summaries(
                conn,
                admin.tenant_id,
                tier=tier,
                needs_support=needs,
                active_since_ms=since_ms,
                limit=limit + len(found),
            )
        )
        for row in rows:
            if row["user_id"] not in found:
                user = summary_json(row)
                if keep(user):
                    found[row["user_id"]] = user
    ordered = sorted(
        found.values(),
        key=lambda u: (not u["needsSupport"], not u["live"], -(u["lastEventAt"] or 0)),
    )
    return json_response(
        {"serverTime": now_ms, "users": ordered[:limit], "truncated": len(ordered) > limit}
    )


@admin_api_routes.get("/user")
@admin_api
async def user(admin: Admin) -> Response:
    """One user: live state (if live), stored summary, recent video calls."""
    svc = services()
    user_id = _user_id_arg()
    live = _live_json(svc, admin.tenant_id, user_id)
    summary = await svc.store.read(lambda conn: get_user_summary(conn, admin.tenant_id, user_id))
    if live is None and summary is None:
        exists = await svc.store.read(
            lambda conn: list_user_events(conn, admin.tenant_id, user_id, limit=1)
        )
        if not exists:
            return _not_found()
    calls = await svc.store.read(lambda conn: list_video_calls(conn, admin.tenant_id, user_id))
    return json_response(
        {
            "serverTime": svc.wall_ms(),
            "userId": user_id,
            "live": live,
            "summary": None if summary is None else summary_json(summary),
            "videoCalls": [_call_json(c) for c in calls],
        }
    )


def _page(rows: list[dict[str, Any]], limit: int, *, ascending: bool = False) -> dict[str, Any]:
    full = len(rows) == limit
    page: dict[str, Any] = {"events": [event_json(r) for r in rows]}
    if ascending:
        page["nextAfter"] = rows[-1]["id"] if full else None
    else:
        page["nextBefore"] = rows[-1]["id"] if full else None
    return page


@admin_api_routes.get("/user/events")
@admin_api
async def user_events(admin: Admin) -> Response:
    """One user's events, newest first; ``before`` = the ``nextBefore`` of the last page.

    ``after`` = an event id: the events stored after it instead, oldest first,
    and ``nextAfter`` to page on while the page was full (a timeline catching
    up with everything that arrived since it last looked).
    """
    svc = services()
    user_id = _user_id_arg()
    before = _int_arg("before", None, low=1)
    after = _int_arg("after", None, low=0)
    if before is not None and after is not None:
        raise BadInput("invalid_field", "give before or after, not both", "after")
    limit = _int_arg("limit", DEFAULT_PAGE, low=1, high=MAX_PAGE) or DEFAULT_PAGE
    types = [t for t in (request.args.get("type") or "").split(",") if t]
    known = {t.value for t in EventType}
    for t in types:
        if t not in known:
            raise BadInput("invalid_field", f"unknown event type {t[:40]!r}", "type")
    rows = await svc.store.read(
        lambda conn: list_user_events(
            conn,
            admin.tenant_id,
            user_id,
            before_id=before,
            after_id=after,
            limit=limit,
            types=types,
        )
    )
    return json_response(_page(rows, limit, ascending=after is not None))


@admin_api_routes.get("/user/errors")
@admin_api
async def user_errors(admin: Admin) -> Response:
    """One user's errors, newest first, paginated like the events (``before``, ``after``)."""
    svc = services()
    user_id = _user_id_arg()
    before = _int_arg("before", None, low=1)
    after = _int_arg("after", None, low=0)
    if before is not None and after is not None:
        raise BadInput("invalid_field", "give before or after, not both", "after")
    limit = _int_arg("limit", DEFAULT_PAGE, low=1, high=MAX_PAGE) or DEFAULT_PAGE
    rows = await svc.store.read(
        lambda conn: list_user_events(
            conn,
            admin.tenant_id,
            user_id,
            before_id=before,
            after_id=after,
            limit=limit,
            types=("error",),
        )
    )
    return json_response(_page(rows, limit, ascending=after is not None))


@admin_api_routes.get("/user/journey")
@admin_api
async def user_journey(admin: Admin) -> Response:
    """One user's route journey: steps with time spent, and totals per route."""
    svc = services()
    user_id = _user_id_arg()
    rows = await svc.store.read(lambda conn: list_journey_events(conn, admin.tenant_id, user_id))
    now_ms = svc.wall_ms()
    live_state = svc.registry.state(admin.tenant_id, user_id) if svc.registry else None
    if live_state is not None:
        end_ms, live_route = now_ms, live_state.current_route
    else:
        summary = await svc.store.read(
            lambda conn: get_user_summary(conn, admin.tenant_id, user_id)
        )
        last = max((int(r["timestamp"]) for r in rows), default=now_ms)
        end_ms = max(last, int(summary["last_active_at"])) if summary else last
        live_route = None
    session_ms = int(admin.tenant.settings.session_timeout_s * 1000)
    steps = build_journey(rows, end_ms=end_ms, live_route=live_route, max_step_ms=session_ms)
    return json_response(
        {"serverTime": now_ms, "live": live_state is not None} | journey_json(steps)
    )


# ---- actions ------------------------------------------------------------------


async def _user_known(svc: AppServices, tenant_id: int, user_id: str) -> bool:
    if svc.registry is not None and svc.registry.state(tenant_id, user_id) is not None:
        return True
    summary = await svc.store.read(lambda conn: get_user_summary(conn, tenant_id, user_id))
    if summary is not None:
        return True
    rows = await svc.store.read(lambda conn: list_user_events(conn, tenant_id, user_id, limit=1))
    return bool(rows)


async def _acknowledge(svc: AppServices, admin: Admin, user_id: str) -> bool:
    """Acknowledge the user's support need (their open alerts, their live state);
    False if they have neither."""
    acknowledged = False
    notifier = _notifier(svc)
    if notifier is not None:
        open_alerts = await svc.store.read(
            lambda conn: alerts_db.list_alerts(
                conn, admin.tenant_id, status="open", user_id=user_id, limit=1
            )
        )
        if open_alerts:
            # Acknowledges the user's other alerts and tells the actor too.
            alert = await notifier.acknowledge(admin.tenant_id, open_alerts[0].id, admin.name)
            acknowledged = alert is not None
    if not acknowledged and svc.registry is not None:
        acknowledged = await svc.registry.acknowledge(admin.tenant_id, user_id, admin.name)
    return acknowledged


@admin_api_routes.post("/user/acknowledge")
@admin_api
async def acknowledge_user(admin: Admin) -> Response:
    """The admin has seen the user's support need: it clears, and so do their alerts."""
    svc = services()
    user_id = await _body_user_id()
    if not await _acknowledge(svc, admin, user_id):
        return _not_found("no live user or open alert with that id")
    return json_response({"success": True, "userId": user_id, "by": admin.name})


#: Users one bulk acknowledgement may name.
MAX_BULK_USERS = 500


@admin_api_routes.post("/users/acknowledge")
@admin_api
async def acknowledge_users(admin: Admin) -> Response:
    """Acknowledge several users at once (``{"userIds": [...]}``, at most 500): the
    dashboard's bulk acknowledge of a selection in the needs-help queue."""
    svc = services()
    ids = (await _json_body()).get("userIds")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_BULK_USERS:
        raise BadInput(
            "invalid_field", f"userIds must be a list of 1 to {MAX_BULK_USERS} user ids", "userIds"
        )
    user_ids = list(dict.fromkeys(_check_user_id(u, "userIds") for u in ids))
    done: list[str] = []
    missing: list[str] = []
    for user_id in user_ids:
        (done if await _acknowledge(svc, admin, user_id) else missing).append(user_id)
    log.info("%s acknowledged %d users at once", log_safe(admin.name), len(done))
    return json_response(
        {"success": True, "acknowledged": done, "notFound": missing, "by": admin.name}
    )


# ---- claims and the queue -------------------------------------------------------


def _claim_json(state: UserState) -> dict[str, Any]:
    return {
        "by": state.claimed_by,
        "agentId": state.claimed_by_agent,
        "at": None if state.claimed_at is None else int(state.claimed_at * 1000),
    }


def _claimed_elsewhere(state: UserState) -> Response:
    error = BadInput(
        "claimed", f"{state.claimed_by} is on it: they claimed this user", None, status=409
    ).to_json()
    error["claim"] = _claim_json(state)
    return json_response(error, 409)


async def _set_claim(svc: AppServices, admin: Admin, user_id: str, by: str | None) -> None:
    notifier = _notifier(svc)
    if notifier is not None:
        await notifier.claim(admin.tenant_id, user_id, by, admin.agent_id)
    elif svc.registry is not None:
        await svc.registry.claim(admin.tenant_id, user_id, by, admin.agent_id)


@admin_api_routes.post("/user/claim")
@admin_api
async def claim_user(admin: Admin) -> Response:
    """ "I'm on it": the logged-in agent is helping the user (``{"userId"}``).

    409 ``claimed`` if someone else already is (send ``"force": true`` to take
    over), 409 ``nothing_to_claim`` if the user has no open support need.  A
    claim ends when the user recovers or leaves, or with ``/user/unclaim``.
    """
    svc = services()
    doc = await _json_body()
    user_id = _check_user_id(doc.get("userId"), "userId")
    force = _flag(doc, "force")
    state = svc.registry.state(admin.tenant_id, user_id) if svc.registry else None
    if state is None or not state.active:
        if state is None and not await _user_known(svc, admin.tenant_id, user_id):
            return _not_found()
        return error_response(
            BadInput(
                "nothing_to_claim", "the user has no open support need to claim", None, status=409
            )
        )
    if state.claimed_by_someone_else(admin.name, admin.agent_id) and not force:
        return _claimed_elsewhere(state)
    await _set_claim(svc, admin, user_id, admin.name)
    log.info(
        "%s claimed %s/%s%s",
        log_safe(admin.name),
        log_safe(admin.tenant.name),
        log_safe(user_id),
        f" from {log_safe(state.claimed_by)}" if state.claimed_by else "",
    )
    return json_response(
        {
            "success": True,
            "userId": user_id,
            "claimedBy": admin.name,
            "takenOverFrom": state.claimed_by if state.claimed_by != admin.name else None,
        }
    )


@admin_api_routes.post("/user/unclaim")
@admin_api
async def unclaim_user(admin: Admin) -> Response:
    """Release the claim on the user (``{"userId"}``): nobody is on it any more."""
    svc = services()
    user_id = await _body_user_id()
    state = svc.registry.state(admin.tenant_id, user_id) if svc.registry else None
    if state is None:
        return _not_found("no live user with that id")
    if state.claimed_by is not None:
        await _set_claim(svc, admin, user_id, None)
        log.info(
            "%s released %s's claim on %s",
            log_safe(admin.name),
            log_safe(state.claimed_by),
            log_safe(user_id),
        )
    return json_response({"success": True, "userId": user_id, "was": state.claimed_by})


@admin_api_routes.get("/queue")
@admin_api
async def queue(admin: Admin) -> Response:
    """The needs-help queue: one row per live user with an open support need, first
    to help first (docs/support.md).  Query: ``tier``, ``trigger``, ``unclaimed``
    (true: only users nobody has claimed), ``limit`` (default 100), ``offset``."""
    svc = services()
    tier = request.args.get("tier") or None
    if tier is not None and tier not in TIERS:
        raise BadInput("invalid_field", f"tier must be one of {', '.join(TIERS)}", "tier")
    raw_trigger = request.args.get("trigger") or None
    try:
        trigger = None if raw_trigger is None else Trigger(raw_trigger)
    except ValueError:
        known = ", ".join(t.value for t in Trigger)
        raise BadInput("invalid_field", f"trigger must be one of {known}", "trigger") from None
    keep = QueueFilter(tier, trigger, unclaimed=bool(_bool_arg("unclaimed")))
    limit = _int_arg("limit", DEFAULT_PAGE, low=1, high=MAX_PAGE) or DEFAULT_PAGE
    offset = _int_arg("offset", 0, low=0) or 0
    states = svc.registry.states(admin.tenant_id) if svc.registry is not None else ()
    settings = admin.tenant.settings
    rows = ranked(states, settings, keep)
    return json_response(
        {
            "serverTime": svc.wall_ms(),
            "total": len(rows),
            "offset": offset,
            "users": [
                queue_json(state, settings, offset + i + 1)
                for i, state in enumerate(rows[offset : offset + limit])
            ],
        }
    )


def _call_json(call: VideoCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "userId": call.user_id,
        "startedBy": call.started_by,
        "url": call.url,
        "startedAt": call.started_at,
        # The invitation to the user's page: pending, joined, declined, ignored,
        # replaced; None when none was sent (invitations off).
        "invitation": call.invite_status,
        "invitationAnsweredAt": call.invite_answered_at,
    }


@admin_api_routes.post("/user/video-call")
@admin_api
async def start_video_call(admin: Admin) -> Response:
    """The call link for the user (from the tenant's template), recorded with who started it;
    unless the tenant switched them off, the user's own page is invited to it
    (``invitation`` in the answer; its answer comes as a ``call`` message).

    If another agent has claimed the user, the answer is 409 ``claimed`` (who,
    since when) unless the body says ``"confirm": true``; an unclaimed user
    with an open support need is claimed by whoever calls.
    """
    svc = services()
    doc = await _json_body()
    user_id = _check_user_id(doc.get("userId"), "userId")
    confirm = _flag(doc, "confirm")
    if not await _user_known(svc, admin.tenant_id, user_id):
        return _not_found()
    state = svc.registry.state(admin.tenant_id, user_id) if svc.registry else None
    claimed = state is not None and state.claimed_by_someone_else(admin.name, admin.agent_id)
    if claimed and not confirm:
        assert state is not None
        return _claimed_elsewhere(state)
    url = admin.tenant.video_call_url(user_id)
    if not url.startswith(("https://", "http://")):
        return error_response(
            BadInput(
                "bad_video_call_template",
                "the tenant's video call template does not make an http(s) link",
                None,
                status=409,
            )
        )
    now_ms = svc.wall_ms()
    call = await svc.store.write(
        lambda conn: record_video_call(
            conn,
            admin.tenant_id,
            user_id,
            started_by=admin.name,
            url=url,
            at_ms=now_ms,
            agent_id=admin.agent_id,
        )
    )
    settings = admin.tenant.settings
    invitation = None
    if svc.calls is not None and settings.call_invitations:
        # The user's own page shows it: the same room, who calls, Join / Not now.
        invitation = await svc.calls.invite(
            admin.tenant_id,
            user_id,
            call.id,
            agent=admin.name,
            agent_id=admin.agent_id,
            url=url,
            timeout_s=settings.invite_timeout_s,
        )
    elif svc.notifier is not None:
        await svc.notifier.call_not_invited(admin.tenant_id, user_id, call.id, admin.name)
    log.info(
        "video call with %s/%s started by %s",
        log_safe(admin.tenant.name),
        log_safe(user_id),
        log_safe(admin.name),
    )
    if state is not None and state.active and state.claimed_by is None:
        await _set_claim(svc, admin, user_id, admin.name)  # calling is helping
    return json_response(
        {
            "success": True,
            "call": _call_json(call),
            "invitation": None if invitation is None else invitation.to_json(),
        }
    )


@admin_api_routes.get("/user/video-calls")
@admin_api
async def video_calls(admin: Admin) -> Response:
    """Video calls started with the user, newest first."""
    svc = services()
    user_id = _user_id_arg()
    calls = await svc.store.read(lambda conn: list_video_calls(conn, admin.tenant_id, user_id))
    return json_response({"calls": [_call_json(c) for c in calls]})


@admin_api_routes.post("/user/erase")
@admin_api
async def erase(admin: Admin) -> Response:
    """Erase everything about one user (``{"userId": ...}``)."""
    return await _erase(admin, await _body_user_id())


@admin_api_routes.delete("/user")
@admin_api
async def erase_by_delete(admin: Admin) -> Response:
    """``DELETE /api/admin/user?id=...``: the same as ``POST /user/erase``."""
    return await _erase(admin, _user_id_arg())


async def _erase(admin: Admin, user_id: str) -> Response:
    svc = services()
    tenant_id = admin.tenant_id
    was_live = False
    if svc.registry is not None:
        # First, so the actor writes no summary or snapshot after the delete.
        was_live = await svc.registry.drop(tenant_id, user_id)
    if svc.hub is not None:
        svc.hub.user_gone(tenant_id, user_id, "erased", svc.wall_ms() / 1000)

    def job(conn: Any) -> tuple[ErasedCounts, int]:
        counts = erase_user(conn, tenant_id, user_id)
        return counts, alerts_db.delete_user_alerts(conn, tenant_id, user_id)

    counts, alerts_removed = await svc.store.write(job)
    snapshots_erased = counts.snapshots > 0
    if svc.snapshots is not None:
        await svc.snapshots.delete([(tenant_id, user_id)])
        snapshots_erased = True
    log.info(
        "erased user %s/%s for %s",
        log_safe(admin.tenant.name),
        log_safe(user_id),
        log_safe(admin.name),
    )
    return json_response(
        {
            "success": True,
            "userId": user_id,
            "wasLive": was_live,
            "erased": {
                "events": counts.events,
                "summaries": counts.summaries,
                "videoCalls": counts.video_calls,
                "batches": counts.batches,
                "alerts": alerts_removed,
                "snapshots": snapshots_erased,
            },
        }
    )


# ---- alerts -------------------------------------------------------------------


_ALERT_STATUSES: dict[str, AlertStatus] = {
    "open": "open",
    "acknowledged": "acknowledged",
    "resolved": "resolved",
}


def _live_alerts(svc: AppServices, tenant_id: int, user_id: str | None) -> list[dict[str, Any]]:
    """Without a notifier (apps built without one): live users' open needs, as alerts."""
    if svc.registry is None:
        return []
    out: list[dict[str, Any]] = []
    for state in svc.registry.states(tenant_id):
        if user_id is not None and state.user_id != user_id:
            continue
        for trigger, since, reason in state.active:
            out.append(
                {
                    "id": None,
                    "userId": state.user_id,
                    "userEmail": state.email,
                    "userName": state.name,
                    "tier": state.tier,
                    "route": state.current_route,
                    "trigger": trigger.value,
                    "reason": reason,
                    "openedAt": int(since * 1000),
                    "status": "open" if state.needs_support else "acknowledged",
                    "acknowledgedBy": state.acknowledged_by,
                }
            )
    out.sort(key=lambda a: -a["openedAt"])
    return out


@admin_api_routes.get("/alerts")
@admin_api
async def alerts_list(admin: Admin) -> Response:
    """Alerts, newest first: ``status`` (open, acknowledged, resolved), ``userId``,
    ``before`` (keyset by id), ``limit``."""
    svc = services()
    raw_status = request.args.get("status") or None
    if raw_status is not None and raw_status not in _ALERT_STATUSES:
        raise BadInput("invalid_field", "status must be open, acknowledged or resolved", "status")
    status = _ALERT_STATUSES.get(raw_status) if raw_status is not None else None
    user_id = request.args.get("userId") or None
    if user_id is not None:
        _check_user_id(user_id, "userId")
    before = _int_arg("before", None, low=1)
    limit = _int_arg("limit", 50, low=1, high=MAX_PAGE) or 50
    if _notifier(svc) is None:
        found = [
            a for a in _live_alerts(svc, admin.tenant_id, user_id) if status in (None, a["status"])
        ]
        return json_response({"source": "live", "alerts": found[:limit], "nextBefore": None})
    rows = await svc.store.read(
        lambda conn: alerts_db.list_alerts(
            conn, admin.tenant_id, status=status, user_id=user_id, limit=limit, before_id=before
        )
    )
    return json_response(
        {
            "source": "stored",
            "alerts": [alert_json(a) for a in rows],
            "nextBefore": rows[-1].id if len(rows) == limit else None,
        }
    )


@admin_api_routes.post("/alerts/<int:alert_id>/acknowledge")
@admin_api
async def acknowledge_alert(admin: Admin, alert_id: int) -> Response:
    """Acknowledge one alert (and the user's other unresolved ones)."""
    svc = services()
    notifier = _notifier(svc)
    if notifier is None or alert_id > MAX_SQL_INT:
        return _not_found("no such alert")
    alert = await notifier.acknowledge(admin.tenant_id, alert_id, admin.name)
    if alert is None:
        return _not_found("no such alert")
    return json_response({"success": True, "alert": alert_json(alert)})


# ---- settings -------------------------------------------------------------------


@admin_api_routes.get("/settings")
@admin_api
async def tenant_settings(admin: Admin) -> Response:
    """The tenant's settings, secrets masked: triggers (on or off, tiers, thresholds),
    presence, retention, origins, identity, Slack, limits.  Changed with
    ``tippen-rt tenant set``; open dashboards get a ``settings`` message then."""
    return json_response(services().settings_json(admin.tenant))


# ---- stats ----------------------------------------------------------------------


@admin_api_routes.get("/stats")
@admin_api
async def stats(admin: Admin) -> Response:
    """Figures for the summary cards: events and errors in the last hour, open alerts."""
    svc = services()
    since = svc.wall_ms() - 3_600_000
    tenant_id = admin.tenant_id

    last_hour = await svc.store.read(lambda conn: activity_since(conn, tenant_id, since))
    figures = {
        "eventsLastHour": last_hour["events"],
        "errorsLastHour": last_hour["errors"],
        "usersLastHour": last_hour["users"],
    }
    if _notifier(svc) is not None:
        by_status = await svc.store.read(lambda conn: alerts_db.count_alerts(conn, tenant_id))
        figures["openAlerts"] = int(by_status.get("open", 0))
        figures["acknowledgedAlerts"] = int(by_status.get("acknowledged", 0))
    live = list(svc.registry.states(tenant_id)) if svc.registry is not None else []
    figures["live"] = len(live)
    figures["needSupport"] = sum(1 for s in live if s.needs_support)
    return json_response({"serverTime": svc.wall_ms(), **figures})


#: A day in ms (the "today" window starts at the admin's midnight).
DAY_MS = 86_400_000


def _window(alerts: list[Any], start: int, now: int) -> dict[str, Any]:
    overall, agents = response_figures(
        (a for a in alerts if a.opened_at >= start), now_ms=now, goal_ms=GOAL_MS
    )
    by_agent = sorted(agents.items(), key=lambda item: (-len(item[1].answered_ms), item[0]))
    return {
        "from": start,
        "to": now,
        "overall": overall.to_json(GOAL_MS),
        "agents": [{"agent": name, **figures.to_json(GOAL_MS)} for name, figures in by_agent],
    }


@admin_api_routes.get("/stats/response")
@admin_api
async def response_stats(admin: Admin) -> Response:
    """How fast users who needed help were answered (docs/support.md, "Response
    times"): today's and the last 7 days' median and 90th percentile time to the
    first response (claim, acknowledgement or call) against the 10-minute goal,
    overall and per agent.  ``tzOffsetMin``: the admin's time zone as JavaScript's
    ``getTimezoneOffset()`` gives it (minutes behind UTC), for where "today"
    begins; default UTC."""
    svc = services()
    offset_ms = (_int_arg("tzOffsetMin", 0, low=-24 * 60, high=24 * 60) or 0) * 60_000
    now = svc.wall_ms()
    local_now = now - offset_ms
    today = local_now - local_now % DAY_MS + offset_ms
    week = now - 7 * DAY_MS
    tenant_id = admin.tenant_id
    alerts = await svc.store.read(
        lambda conn: alerts_db.alerts_opened_since(conn, tenant_id, min(today, week))
    )
    return json_response(
        {
            "serverTime": now,
            "goalMs": GOAL_MS,
            "today": _window(alerts, today, now),
            "last7Days": _window(alerts, week, now),
        }
    )
