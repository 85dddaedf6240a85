"""Generated hostile requests against the admin API (hypothesis).

A logged-in admin of one tenant throws garbage at every admin route: wrong
types, huge and unicode values, forged ids, random JSON bodies.  Every answer
is a 2xx or a 4xx with a JSON error, never a 500; the other tenant's data is
never touched; and the admin's own data changes only through a valid erase.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tippen_rt.config import Settings
from tippen_rt.persist import EventStore

from .conftest import HOST, AdminEnv, build_env

ROUTES = [
    ("GET", "/api/admin/me"),
    ("GET", "/api/admin/users"),
    ("GET", "/api/admin/user"),
    ("GET", "/api/admin/user/events"),
    ("GET", "/api/admin/user/errors"),
    ("GET", "/api/admin/user/journey"),
    ("GET", "/api/admin/user/video-calls"),
    ("POST", "/api/admin/user/acknowledge"),
    ("POST", "/api/admin/user/video-call"),
    ("POST", "/api/admin/user/erase"),
    ("DELETE", "/api/admin/user"),
    ("GET", "/api/admin/alerts"),
    ("POST", "/api/admin/alerts/{alert}/acknowledge"),
    ("GET", "/api/admin/stats"),
    ("GET", "/user-activity/{user}"),
]
PARAMS = [
    "id",
    "limit",
    "before",
    "after",
    "tier",
    "needsSupport",
    "activeWithinMin",
    "q",
    "scope",
    "status",
    "userId",
]
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "u1",
            "",
            " ",
            "..",
            "../u1",
            "%00",
            "\u202e",
            "😀" * 10,
            "a" * 5000,
            "-1",
            "1e309",
            "NaN",
            "true",
            "null",
            "[]",
            "{}",
            "' OR 1=1 --",
            "<script>alert(1)</script>",
        ]
    ),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | nasty_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=12,
)


def event_count(store: EventStore, tenant_id: int) -> Any:
    return store.read(
        lambda c: c.execute(
            "SELECT count(*) FROM user_activity_events WHERE tenant_id = ?", (tenant_id,)
        ).fetchone()[0]
    )


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_hostile_admin_requests_never_break_anything(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with trio.open_nursery() as nursery:
            store = EventStore(Path(tmp) / "t.db")
            await nursery.start(store.run)
            env: AdminEnv = await build_env(
                Settings(db_path=Path(tmp) / "t.db", login_burst=1000),
                store,
                nursery,
                with_notifier=True,
            )
            await env.send(
                env.acme,
                "u1",
                [{"type": "route", "route": "/a"}, {"type": "error", "message": "x"}],
            )
            await env.send(env.other, "u1", [{"type": "route", "route": "/secret"}])
            other_before = await event_count(store, env.other.id)
            acme_before = await event_count(store, env.acme.id)
            admin = await env.admin(env.acme_token)

            method, path = data.draw(st.sampled_from(ROUTES))
            path = path.format(
                alert=data.draw(st.sampled_from(["1", "2", "999999999999", "-1", "0"])),
                user=data.draw(
                    nasty_text.filter(
                        lambda t: "\x00" not in t and "/" not in t and "?" not in t and "#" not in t
                    )
                )
                or "x",
            )
            query = data.draw(st.dictionaries(st.sampled_from(PARAMS), nasty_text, max_size=4))
            body = data.draw(
                st.one_of(st.none(), json_values, st.fixed_dictionaries({"userId": nasty_text}))
            )
            kwargs: dict[str, Any] = {
                "headers": {"Host": HOST, "Origin": f"http://{HOST}"},
                "query_string": query,
            }
            if body is not None and method != "GET":
                kwargs["data"] = orjson.dumps(body)
                kwargs["headers"]["Content-Type"] = "application/json"
            response = await admin.open(path, method=method, **kwargs)

            assert response.status_code < 500, (method, path, query, body)
            if path.startswith("/api/") and response.status_code >= 400:
                error = (await response.get_json())["error"]
                assert error["code"] and error["message"]
            # The other tenant is untouched, whatever the request said.
            assert await event_count(store, env.other.id) == other_before
            acme_after = await event_count(store, env.acme.id)
            erased = response.status_code == 200 and path.endswith(("/erase", "/api/admin/user"))
            if erased:  # a valid erase removes that user's events (u1 had them all)
                assert acme_after in (0, acme_before)
            else:
                assert acme_after == acme_before
            nursery.cancel_scope.cancel()


NOT_UTF8 = [b"\xff\xfe", b"o\xffR", b'{"userId": "\xe9"}']


@pytest.mark.parametrize("body", NOT_UTF8)
@pytest.mark.parametrize(
    "path", ["/api/admin/user/acknowledge", "/api/admin/user/erase", "/api/admin/user/video-call"]
)
async def test_a_json_body_that_is_not_utf8_is_a_400(env: AdminEnv, path: str, body: bytes) -> None:
    # Found by schemathesis: Quart's get_json(silent=True) raised UnicodeDecodeError (500).
    admin = await env.admin(env.acme_token)
    response = await admin.post(
        path, data=body, headers={"Host": HOST, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert orjson.loads(await response.get_data())["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("body", NOT_UTF8)
async def test_a_login_body_that_is_not_utf8_is_a_wrong_token(env: AdminEnv, body: bytes) -> None:
    response = await env.client().post(
        "/login", data=body, headers={"Host": HOST, "Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert orjson.loads(await response.get_data())["error"]["code"] == "bad_token"
