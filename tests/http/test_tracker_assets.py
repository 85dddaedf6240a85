"""GET /tippen-app-tracker.js and the sample app, through the real app."""

from __future__ import annotations

import gzip
from dataclasses import replace
from typing import Any

import pytest

from tippen_rt.demo import DEMO_TENANT, SHORT_THRESHOLDS
from tippen_rt.http import AppServices, create_app
from tippen_rt.http._tracker_assets import (
    INVITE_PATH,
    TRACKER_PATH,
    etag_matches,
    minify_script,
    tracker_dir,
)
from tippen_rt.persist import EventStore, create_tenant, get_tenant_by_name, update_tenant
from tippen_rt.tenants import TenantSettings

#: What the service sends: the source, minified.
SOURCE = minify_script((tracker_dir() / "tippen-app-tracker.js").read_text()).encode()


async def test_the_script_is_served_as_javascript_for_any_origin(client: Any) -> None:
    response = await client.get(TRACKER_PATH, headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["ETag"].startswith('"')
    assert await response.get_data() == SOURCE


async def test_the_invitation_script_is_served_minified_for_any_origin(client: Any) -> None:
    response = await client.get(INVITE_PATH, headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    source = (tracker_dir() / "tippen-invite.js").read_text()
    assert await response.get_data() == minify_script(source).encode()


async def test_a_known_etag_gets_304_without_a_body(client: Any) -> None:
    first = await client.get(TRACKER_PATH)
    etag = first.headers["ETag"]
    again = await client.get(TRACKER_PATH, headers={"If-None-Match": f'"other", W/{etag}'})
    assert again.status_code == 304
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "public, max-age=300"
    assert await again.get_data() == b""
    stale = await client.get(TRACKER_PATH, headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200


async def test_gzip_when_the_browser_accepts_it(client: Any) -> None:
    plain = await client.get(TRACKER_PATH)
    response = await client.get(TRACKER_PATH, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["ETag"] != plain.headers["ETag"]
    body = await response.get_data()
    assert gzip.decompress(body) == SOURCE
    assert len(body) < 4096
    refused = await client.get(TRACKER_PATH, headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers


def test_etag_matching() -> None:
    assert etag_matches('"a"', '"a"')
    assert etag_matches('W/"a"', '"a"')
    assert etag_matches('"b" , "a"', '"a"')
    assert etag_matches("*", '"a"')
    assert not etag_matches('"b"', '"a"')
    assert not etag_matches(None, '"a"')
    assert not etag_matches("", '"a"')


async def test_the_sample_app_is_only_served_in_demo_mode(client: Any) -> None:
    for path in ("/demo/app", "/demo/app/billing", "/demo/app.js"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert (await response.get_json())["error"]["code"] == "not_found"


@pytest.fixture
async def demo_client(services: AppServices, store: EventStore) -> Any:
    await store.write(lambda conn: create_tenant(conn, DEMO_TENANT, ["http://127.0.0.1:8080"]))
    svc = replace(services, settings=services.settings.replace(demo=True))
    return create_app(svc).test_client()


async def test_the_sample_app_carries_the_demo_api_key(
    demo_client: Any, services: AppServices
) -> None:
    (demo,) = [t for t in (await _reloaded(services)) if t.name == DEMO_TENANT]
    for path in ("/demo/app", "/demo/app/settings"):
        response = await demo_client.get(path)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        page = (await response.get_data()).decode()
        assert f'data-tippen-api-key="{demo.api_key}"' in page
        assert 'src="/tippen-app-tracker.js"' in page
        assert 'data-tippen-user-id="demo-user"' in page
        assert "{{" not in page


async def test_sample_app_settings_from_the_query_are_escaped(demo_client: Any) -> None:
    response = await demo_client.get(
        "/demo/app", query_string={"user": 'eve"><script>x</script>', "flush": "250"}
    )
    page = (await response.get_data()).decode()
    assert 'data-tippen-user-id="eve&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in page
    assert 'data-tippen-flush-interval="250"' in page
    assert "<script>x</script>" not in page


async def test_sample_app_assets(demo_client: Any) -> None:
    response = await demo_client.get("/demo/app.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/javascript; charset=utf-8"
    css = await demo_client.get("/demo/app.css")
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    for name in ("index.html", "missing.js", ".hidden", "..%2Fpyproject.toml"):
        assert (await demo_client.get(f"/demo/{name}")).status_code == 404, name


async def _reloaded(services: AppServices) -> list[Any]:
    await services.tenants.reload()
    return services.tenants.all()


async def test_the_sample_app_states_the_demo_tenants_own_thresholds(
    demo_client: Any, store: EventStore
) -> None:
    await store.write(
        lambda conn: update_tenant(
            conn,
            DEMO_TENANT,
            settings=replace(
                TenantSettings(),
                stuck_on_page_s=240,
                idle_after_s=45,
                error_burst_count=5,
                low_activity_min_events=4,
                inactivity_s=3600,
            ),
        )
    )
    page = await (await demo_client.get("/demo/app", query_string={"tier": "paid"})).get_data()
    text = page.decode()
    assert 'data-preset="custom"' in text
    assert '<span id="stuck-on-page">4 min</span>' in text
    assert '<span id="idle-after">45 s</span>' in text
    assert '<span id="error-burst-count">5</span>' in text
    assert '<strong id="errors-needed">6</strong>' in text
    assert '<span id="low-activity-min-events">4</span>' in text
    assert '<span id="inactivity">1 h</span>' in text
    # Who each trigger is for, and whether for this page's (paid) user.
    assert "(free_trial users: not this page&#x27;s paid user)" in text
    assert "(every tier: this page&#x27;s user too)" in text
    assert 'data-tippen-heartbeat-interval=""' not in text  # 45 s idle: 22.5 s heartbeats
    assert 'data-tippen-heartbeat-interval="22500"' in text
    assert "{{" not in text


async def test_the_sample_app_switches_the_demo_tenant_to_short_thresholds_and_back(
    demo_client: Any, store: EventStore
) -> None:
    first = (await (await demo_client.get("/demo/app")).get_data()).decode()
    assert 'data-preset="default"' in first
    assert 'data-switch-to="short"' in first
    assert '<span id="stuck-on-page">5 min</span>' in first
    assert 'data-tippen-heartbeat-interval=""' in first  # the tracker's own 30 s

    response = await demo_client.post("/demo/thresholds", json={"short": True})
    assert response.status_code == 200
    assert (await response.get_json())["preset"] == "short"
    stored = await store.read(lambda conn: get_tenant_by_name(conn, DEMO_TENANT))
    assert {name: getattr(stored.settings, name) for name in SHORT_THRESHOLDS} == (SHORT_THRESHOLDS)
    assert stored.settings.presence_timeout_s == TenantSettings().presence_timeout_s
    short = (await (await demo_client.get("/demo/app")).get_data()).decode()
    assert 'data-preset="short"' in short
    assert 'data-switch-to="default"' in short
    assert '<span id="stuck-on-page">30 s</span>' in short
    assert '<span id="low-activity-window">30 s</span>' in short
    assert '<span id="inactivity">45 s</span>' in short
    assert 'data-tippen-heartbeat-interval="7500"' in short  # two per idle_after_s
    custom = (await (await demo_client.get("/demo/app?heartbeat=2000")).get_data()).decode()
    assert 'data-tippen-heartbeat-interval="2000"' in custom

    back = await demo_client.post("/demo/thresholds", json={"short": False})
    assert (await back.get_json())["preset"] == "default"
    stored = await store.read(lambda conn: get_tenant_by_name(conn, DEMO_TENANT))
    assert stored.settings == TenantSettings()


async def test_the_threshold_switch_is_for_the_demo_and_its_own_pages_only(
    demo_client: Any, client: Any, store: EventStore
) -> None:
    off = await client.post("/demo/thresholds", json={"short": True})
    assert off.status_code == 404  # not started with --demo
    elsewhere = await demo_client.post(
        "/demo/thresholds", json={"short": True}, headers={"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403
    for bad in ({"short": "yes"}, {}, [True]):
        response = await demo_client.post("/demo/thresholds", json=bad)
        assert response.status_code == 400, bad
        assert (await response.get_json())["error"]["field"] == "short"
    form = await demo_client.post("/demo/thresholds", form={"short": "true"})
    assert form.status_code == 400
    stored = await store.read(lambda conn: get_tenant_by_name(conn, DEMO_TENANT))
    assert stored.settings == TenantSettings()
    own = await demo_client.post(
        "/demo/thresholds", json={"short": True}, headers={"Origin": "http://localhost"}
    )
    assert own.status_code == 200
