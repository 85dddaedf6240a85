"""Admin login, session cookies, logout, rate limiting and what needs a login."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
import trio

from tippen_rt.config import Settings, TrustedProxies
from tippen_rt.http import AppServices, create_app
from tippen_rt.http._session import AdminSession, key_tag, read_session, sign_session
from tippen_rt.persist import EventStore, rotate_admin_token
from tippen_rt.persist._admin import load_or_create_secret

from .conftest import HOST, SITE, AdminEnv, api_headers, build_env, refused_websocket

#: Every admin route, with the method and a body that would be valid.
ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/admin/me", None),
    ("GET", "/api/admin/users", None),
    ("GET", "/api/admin/user?id=u1", None),
    ("GET", "/api/admin/user/events?id=u1", None),
    ("GET", "/api/admin/user/errors?id=u1", None),
    ("GET", "/api/admin/user/journey?id=u1", None),
    ("GET", "/api/admin/user/video-calls?id=u1", None),
    ("GET", "/api/admin/alerts", None),
    ("GET", "/api/admin/stats", None),
    ("POST", "/api/admin/user/acknowledge", {"userId": "u1"}),
    ("POST", "/api/admin/user/video-call", {"userId": "u1"}),
    ("POST", "/api/admin/user/erase", {"userId": "u1"}),
    ("DELETE", "/api/admin/user?id=u1", None),
    ("POST", "/api/admin/alerts/1/acknowledge", None),
]


def cookie_of(client: Any) -> str:
    """The value of the session cookie in ``client``'s jar."""
    return next(c.value for c in client.cookie_jar if c.name == "tippen_admin")


async def call(client: Any, method: str, path: str, body: Any = None, **headers: str) -> Any:
    return await client.open(path, method=method, json=body, headers=api_headers(**headers))


async def test_the_login_page_is_a_form(env: AdminEnv) -> None:
    response = await env.client().get("/login?next=/user-activity/u1")
    assert response.status_code == 200
    page = await response.get_data(as_text=True)
    assert 'name="token"' in page and 'value="/user-activity/u1"' in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


async def test_a_good_token_sets_a_strict_http_only_cookie(env: AdminEnv) -> None:
    client = env.client()
    response = await client.post(
        "/login",
        form={"token": env.acme_token, "name": "Sam", "next": "/user-activity/u1"},
        headers={"Host": HOST},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/user-activity/u1"
    set_cookie = response.headers["Set-Cookie"]
    assert set_cookie.startswith("tippen_admin=")
    assert "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie
    assert "Path=/" in set_cookie
    assert "Secure" not in set_cookie  # plain http: a Secure cookie would never come back
    me = await call(client, "GET", "/api/admin/me")
    assert me.status_code == 200
    assert (await me.get_json())["tenant"] == {"id": env.acme.id, "name": "acme"}
    assert (await me.get_json())["name"] == "Sam"


async def test_over_https_the_cookie_is_secure(env: AdminEnv) -> None:
    response = await env.client().post(
        "/login", form={"token": env.acme_token}, headers={"Host": HOST}, scheme="https"
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


async def test_json_login(env: AdminEnv) -> None:
    client = env.client()
    ok = await client.post("/login", json={"token": env.acme_token}, headers={"Host": HOST})
    assert ok.status_code == 200 and (await ok.get_json())["tenant"] == "acme"
    assert (await call(client, "GET", "/api/admin/me")).status_code == 200
    bad = await env.client().post("/login", json={"token": "admin_nope"}, headers={"Host": HOST})
    assert bad.status_code == 401
    assert (await bad.get_json())["error"]["code"] == "bad_token"


@pytest.mark.parametrize("token", ["admin_wrong", "", "x" * 300])
async def test_a_wrong_token_gets_401_and_no_cookie(env: AdminEnv, token: str) -> None:
    client = env.client()
    response = await client.post("/login", form={"token": token}, headers={"Host": HOST})
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    assert "not right" in await response.get_data(as_text=True)
    assert (await call(client, "GET", "/api/admin/me")).status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_every_admin_route_needs_a_login(
    env: AdminEnv, method: str, path: str, body: Any
) -> None:
    response = await call(env.client(), method, path, body)
    assert response.status_code == 401
    assert (await response.get_json())["error"]["code"] == "not_logged_in"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/user-activity", "/user-activity/some/user?x=1"])
async def test_pages_send_strangers_to_the_login_page(env: AdminEnv, path: str) -> None:
    response = await env.client().get(path)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=/user-activity")


async def test_the_websocket_needs_a_login(env: AdminEnv) -> None:
    response = await refused_websocket(env.client(), {"Origin": SITE, "Host": HOST})
    assert response.status_code == 401


async def _forge(env: AdminEnv, *, expires_at: float, secret: bytes | None = None) -> str:
    real = (await env.store.write(load_or_create_secret)).encode()
    secret = secret or real
    return sign_session(
        secret,
        AdminSession(
            tenant_id=env.acme.id,
            name="Mallory",
            expires_at=expires_at,
            key_tag=key_tag(real, env.acme.admin_token_hash),
        ),
    )


async def test_a_tampered_cookie_is_refused(env: AdminEnv) -> None:
    client = await env.admin(env.acme_token)
    value = cookie_of(client)
    payload, signature = value.split(".")
    # Point the payload at the other tenant, keep the signature.
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for bad in (
        f"{forged_payload}.{signature}",
        f"{payload}.{signature[:-1]}x",
        f"{payload}.",
        "garbage",
        await _forge(env, expires_at=time.time() + 3600, secret=b"not the server secret"),
    ):
        stranger = env.client()
        stranger.set_cookie(HOST, "tippen_admin", bad)
        assert (await call(stranger, "GET", "/api/admin/me")).status_code == 401, bad


async def test_an_expired_cookie_is_refused(env: AdminEnv) -> None:
    fresh = env.client()
    fresh.set_cookie(HOST, "tippen_admin", await _forge(env, expires_at=time.time() + 60))
    assert (await call(fresh, "GET", "/api/admin/me")).status_code == 200
    stale = env.client()
    stale.set_cookie(HOST, "tippen_admin", await _forge(env, expires_at=time.time() - 1))
    assert (await call(stale, "GET", "/api/admin/me")).status_code == 401


async def test_rotating_the_admin_token_ends_sessions(env: AdminEnv) -> None:
    client = await env.admin(env.acme_token)
    assert (await call(client, "GET", "/api/admin/me")).status_code == 200
    await env.store.write(lambda conn: rotate_admin_token(conn, "acme"))
    await env.services.tenants.reload()
    assert (await call(client, "GET", "/api/admin/me")).status_code == 401


async def test_sessions_survive_a_restart_with_the_stored_secret(env: AdminEnv) -> None:
    client = await env.admin(env.acme_token)
    value = cookie_of(client)
    # A new app on the same database: the secret comes from SQLite again.
    restarted = create_app(
        AppServices(settings=env.settings, store=env.store, tenants=env.services.tenants)
    )
    later = restarted.test_client()
    later.set_cookie(HOST, "tippen_admin", value)
    assert (await call(later, "GET", "/api/admin/me")).status_code == 200


async def test_a_configured_secret_key_signs_sessions(env: AdminEnv) -> None:
    settings = env.settings.replace(secret_key="configured-secret")
    app = create_app(AppServices(settings=settings, store=env.store, tenants=env.services.tenants))
    client = app.test_client()
    response = await client.post("/login", form={"token": env.acme_token}, headers={"Host": HOST})
    value = cookie_of(client)
    assert response.status_code == 303
    assert read_session(b"configured-secret", value, time.time()) is not None
    stored = (await env.store.write(load_or_create_secret)).encode()
    assert read_session(stored, value, time.time()) is None


async def test_logout_clears_the_cookie(env: AdminEnv) -> None:
    client = await env.admin(env.acme_token)
    response = await client.post("/logout", headers={"Host": HOST})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "tippen_admin=;" in response.headers["Set-Cookie"]
    assert (await call(client, "GET", "/api/admin/me")).status_code == 401


async def test_a_logged_out_cookie_is_refused_even_if_kept(env: AdminEnv) -> None:
    client = await env.admin(env.acme_token)
    kept = cookie_of(client)
    response = await client.post("/logout", headers={"Host": HOST})
    assert response.status_code == 303
    thief = env.client()
    thief.set_cookie(HOST, "tippen_admin", kept)
    assert (await call(thief, "GET", "/api/admin/me")).status_code == 401
    # ... also after a restart: the revocation is kept in SQLite.
    restarted = create_app(
        AppServices(settings=env.settings, store=env.store, tenants=env.services.tenants)
    )
    later = restarted.test_client()
    later.set_cookie(HOST, "tippen_admin", kept)
    assert (await call(later, "GET", "/api/admin/me")).status_code == 401
    # Other sessions of the tenant go on.
    other = await env.admin(env.acme_token)
    assert (await call(other, "GET", "/api/admin/me")).status_code == 200


async def test_login_attempts_are_rate_limited_per_address(env: AdminEnv) -> None:
    attacker = {"client": ("203.0.113.9", 5555)}
    for _ in range(env.settings.login_burst):
        response = await env.client().post(
            "/login", form={"token": "admin_guess"}, headers={"Host": HOST}, scope_base=attacker
        )
        assert response.status_code == 401
    limited = await env.client().post(
        "/login", form={"token": env.acme_token}, headers={"Host": HOST}, scope_base=attacker
    )
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    # Someone else still gets in.
    elsewhere = await env.client().post(
        "/login",
        form={"token": env.acme_token},
        headers={"Host": HOST},
        scope_base={"client": ("198.51.100.7", 4444)},
    )
    assert elsewhere.status_code == 303


@pytest.mark.parametrize(
    ("proxies", "chain"),
    [
        # Two proxies (10.0.0.1, then 10.0.0.2), named by their networks.
        (TrustedProxies.parse("10.0.0.0/8"), "{client}, 10.0.0.1"),
        # ... or counted.
        (TrustedProxies.parse("2"), "{client}, 10.0.0.1"),
        # One proxy.
        (TrustedProxies.parse("1"), "{client}"),
    ],
)
async def test_behind_a_trusted_proxy_the_login_limit_is_per_forwarded_address(
    admin_settings: Settings,
    store: EventStore,
    nursery: trio.Nursery,
    proxies: TrustedProxies,
    chain: str,
) -> None:
    settings = dataclasses.replace(admin_settings, trusted_proxies=proxies)
    env = await build_env(settings, store, nursery, with_notifier=False)
    proxy = {"client": ("10.0.0.2", 5555)}  # every request comes through the proxy

    async def login(token: str, client: str, spoofed: str = "") -> int:
        response = await env.client().post(
            "/login",
            form={"token": token},
            headers={"Host": HOST, "X-Forwarded-For": spoofed + chain.format(client=client)},
            scope_base=proxy,
        )
        return int(response.status_code)

    for i in range(settings.login_burst):
        # Whatever the attacker writes in front of the proxies' entries.
        assert await login("admin_guess", "203.0.113.9", f"198.51.100.{i}, ") == 401
    assert await login(env.acme_token, "203.0.113.9", "198.51.100.99, ") == 429
    assert await login(env.acme_token, "203.0.113.9") == 429
    # The attacker's guesses do not lock out an admin behind the same proxy.
    assert await login(env.acme_token, "198.51.100.7") == 303


async def test_the_old_trust_forwarded_for_is_one_hop_not_the_left_most_entry(
    admin_settings: Settings, store: EventStore, nursery: trio.Nursery
) -> None:
    # It used to take the left-most entry: rotating it defeated the login limit.
    settings = dataclasses.replace(admin_settings, trust_forwarded_for=True)
    env = await build_env(settings, store, nursery, with_notifier=False)
    statuses = []
    for i in range(settings.login_burst + 2):
        response = await env.client().post(
            "/login",
            form={"token": "admin_guess"},
            headers={"Host": HOST, "X-Forwarded-For": f"198.51.100.{i}, 203.0.113.9"},
            scope_base={"client": ("10.0.0.2", 5555)},
        )
        statuses.append(response.status_code)
    assert statuses == [401] * settings.login_burst + [429, 429]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Proto": "https"},
        {"Forwarded": "for=203.0.113.9;proto=https"},
        {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
    ],
)
@pytest.mark.parametrize("proxies", [TrustedProxies.parse("1"), TrustedProxies.parse("10.0.0.0/8")])
async def test_behind_a_trusted_tls_proxy_the_cookie_is_secure(
    admin_settings: Settings,
    store: EventStore,
    nursery: trio.Nursery,
    headers: dict[str, str],
    proxies: TrustedProxies,
) -> None:
    settings = dataclasses.replace(admin_settings, trusted_proxies=proxies)
    env = await build_env(settings, store, nursery, with_notifier=False)
    client = env.client()
    response = await client.post(
        "/login",
        form={"token": env.acme_token},
        headers={"Host": HOST, **headers},
        scope_base={"client": ("10.0.0.2", 5555)},
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]
    logout = await client.post(
        "/logout", headers={"Host": HOST, **headers}, scope_base={"client": ("10.0.0.2", 5555)}
    )
    assert "Secure" in logout.headers["Set-Cookie"]


@pytest.mark.parametrize("proxies", [TrustedProxies(), TrustedProxies.parse("10.0.0.0/8")])
async def test_a_forwarded_proto_from_anyone_else_is_ignored(
    admin_settings: Settings, store: EventStore, nursery: trio.Nursery, proxies: TrustedProxies
) -> None:
    settings = dataclasses.replace(admin_settings, trusted_proxies=proxies)
    env = await build_env(settings, store, nursery, with_notifier=False)
    response = await env.client().post(
        "/login",
        form={"token": env.acme_token},
        headers={"Host": HOST, "X-Forwarded-Proto": "https", "Forwarded": "proto=https"},
        scope_base={"client": ("203.0.113.9", 5555)},
    )
    assert response.status_code == 303
    assert "Secure" not in response.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("Sam\nINFO forged", "SamINFO forged"),
        ("\u202emaS", "maS"),
        ("Sam\u200b", "Sam"),
        ("\u200b\t", "admin"),
    ],
)
async def test_the_admin_name_loses_hidden_characters(
    env: AdminEnv, given: str, shown: str
) -> None:
    client = env.client()
    response = await client.post(
        "/login", form={"token": env.acme_token, "name": given}, headers={"Host": HOST}
    )
    assert response.status_code == 303
    assert (await (await call(client, "GET", "/api/admin/me")).get_json())["name"] == shown


async def test_logged_text_cannot_forge_log_lines(
    env: AdminEnv, caplog: pytest.LogCaptureFixture
) -> None:
    client = await env.admin(env.acme_token)
    with caplog.at_level("INFO"):
        response = await call(
            client,
            "POST",
            "/api/admin/user/erase",
            {"userId": "u1\nINFO tippen_rt: admin login for tenant other\u202e"},
            Origin=SITE,
        )
    assert response.status_code == 200
    [line] = [r.getMessage() for r in caplog.records if "erased user" in r.getMessage()]
    assert "\n" not in line and "\u202e" not in line
    assert "u1\\nINFO" in line and "\\u202e" in line


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "\\\\evil", "/\\evil"]
)
async def test_login_never_redirects_off_site(env: AdminEnv, target: str) -> None:
    response = await env.client().post(
        "/login", form={"token": env.acme_token, "next": target}, headers={"Host": HOST}
    )
    assert response.headers["Location"] == "/user-activity"


async def test_cross_site_writes_are_refused(env: AdminEnv) -> None:
    client = await env.admin(env.acme_token)
    await env.send(env.acme, "u1")
    evil = {"Origin": "https://evil.example"}
    response = await call(client, "POST", "/api/admin/user/video-call", {"userId": "u1"}, **evil)
    assert response.status_code == 403
    same = await call(client, "POST", "/api/admin/user/video-call", {"userId": "u1"}, Origin=SITE)
    assert same.status_code == 200
    login = await env.client().post(
        "/login", form={"token": env.acme_token}, headers={"Host": HOST, **evil}
    )
    assert login.status_code == 403


async def test_writes_need_a_json_body(env: AdminEnv) -> None:
    client = await env.admin(env.acme_token)
    response = await client.post(
        "/api/admin/user/erase", form={"userId": "u1"}, headers=api_headers()
    )
    assert response.status_code == 415
