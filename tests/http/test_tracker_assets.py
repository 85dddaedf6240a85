"""GET /tippen-app-tracker.js and the sample app, through the real app."""

from __future__ import annotations

import gzip
from dataclasses import replace
from typing import Any

import pytest

from tippen_rt.demo import DEMO_TENANT
from tippen_rt.http import AppServices, create_app
from tippen_rt.http._tracker_assets import (
    TRACKER_PATH,
    compact_script,
    etag_matches,
    tracker_dir,
)
from tippen_rt.persist import EventStore, create_tenant

#: What the service sends: the source, compacted.
SOURCE = compact_script((tracker_dir() / "tippen-app-tracker.js").read_text()).encode()


async def test_the_script_is_served_as_javascript_for_any_origin(client: Any) -> None:
    response = await client.get(TRACKER_PATH, headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["ETag"].startswith('"')
    assert await response.get_data() == SOURCE


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
