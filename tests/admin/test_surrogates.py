"""Lone surrogates in JSON bodies (valid JSON escapes, not valid text): 4xx, never a 500."""

from __future__ import annotations

import pytest

from .conftest import HOST, SITE, AdminEnv, api_headers

LONE = '"\\ud800x"'  # JSON text: a lone high surrogate, then x


async def test_a_login_token_with_a_lone_surrogate_is_a_wrong_token(env: AdminEnv) -> None:
    response = await env.client().post(
        "/login",
        data=f'{{"token": {LONE}}}',
        headers={"Host": HOST, "Content-Type": "application/json"},
    )
    assert response.status_code == 401, await response.get_data()
    assert (await response.get_json())["error"]["code"] == "bad_token"


async def test_a_login_name_loses_lone_surrogates(env: AdminEnv) -> None:
    client = env.client()
    response = await client.post(
        "/login",
        data=f'{{"token": "{env.acme_token}", "name": {LONE}}}',
        headers={"Host": HOST, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, await response.get_data()
    me = await client.get("/api/admin/me", headers=api_headers())
    assert (await me.get_json())["name"] == "x"


@pytest.mark.parametrize(
    "path", ["/api/admin/user/acknowledge", "/api/admin/user/video-call", "/api/admin/user/erase"]
)
async def test_a_user_id_with_a_lone_surrogate_is_400(env: AdminEnv, path: str) -> None:
    admin = await env.admin(env.acme_token)
    response = await admin.post(
        path,
        data=f'{{"userId": {LONE}}}',
        headers=api_headers(Origin=SITE, **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 400, await response.get_data()
    assert (await response.get_json())["error"]["field"] == "userId"
