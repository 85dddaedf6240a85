"""Behind proxies: the client address is the right-most X-Forwarded-For entry no
trusted proxy added; https is what a trusted proxy reports."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from trio.testing import MockClock

from tippen_rt.config import Settings, SettingsError, TrustedProxies
from tippen_rt.http import TRACK_PATH, AppServices, TenantDirectory, create_app
from tippen_rt.http._client import forwarded_client, forwarded_https
from tippen_rt.persist import EventStore
from tippen_rt.tenants import Tenant

from ..conftest import ORIGIN, make_batch

NONE = TrustedProxies()
ONE = TrustedProxies.parse("1")
TWO = TrustedProxies.parse("2")
NETS = TrustedProxies.parse("10.0.0.0/8, 192.0.2.7, fd00::/8")


def client(peer: str, xff: list[str], proxies: TrustedProxies) -> str:
    return forwarded_client(peer, xff, proxies)[0]


@pytest.mark.parametrize(
    ("peer", "xff", "proxies", "expected"),
    [
        # No trusted proxies: the headers are nobody's word.
        ("203.0.113.5", ["1.1.1.1"], NONE, "203.0.113.5"),
        # One hop: the entry the proxy appended, whatever the client wrote before it.
        ("10.0.0.2", ["1.1.1.1, 2.2.2.2, 203.0.113.5"], ONE, "203.0.113.5"),
        ("10.0.0.2", ["1.1.1.1", "203.0.113.5"], ONE, "203.0.113.5"),  # two header lines
        ("10.0.0.2", [], ONE, "10.0.0.2"),  # fewer entries than hops: the peer
        # Two hops: the entry the outer proxy appended.
        ("10.0.0.2", ["6.6.6.6, 203.0.113.5, 10.0.0.1"], TWO, "203.0.113.5"),
        ("10.0.0.2", ["203.0.113.5"], TWO, "10.0.0.2"),
        # Networks: the right-most entry that is not a proxy.
        ("10.0.0.2", ["6.6.6.6, 203.0.113.5, 10.0.0.1, 192.0.2.7"], NETS, "203.0.113.5"),
        ("10.0.0.2", ["10.9.9.9, 10.0.0.1"], NETS, "10.9.9.9"),  # all proxies: the left-most
        ("10.0.0.2", [], NETS, "10.0.0.2"),
        # ... and only when the peer itself is one of them.
        ("203.0.113.99", ["1.1.1.1"], NETS, "203.0.113.99"),
        # Ports and brackets are not part of the address; mapped IPv4 is IPv4.
        ("10.0.0.2", ["203.0.113.5:4711"], ONE, "203.0.113.5"),
        ("10.0.0.2", ["[2001:db8::1]:443"], ONE, "2001:db8::1"),
        ("::ffff:10.0.0.2", ["2001:db8::1"], NETS, "2001:db8::1"),
        ("fd00::1", ['"[2001:db8::7]"'], NETS, "2001:db8::7"),
        # What is not an address is a key still, safe to log.
        ("10.0.0.2", ["unknown"], ONE, "unknown"),
        ("10.0.0.2", ["x\ty\u202e"], ONE, "x\\ty\\u202e"),
    ],
)
def test_the_client_is_the_right_most_untrusted_entry(
    peer: str, xff: list[str], proxies: TrustedProxies, expected: str
) -> None:
    assert client(peer, xff, proxies) == expected


def test_rotating_the_left_most_entry_changes_nothing() -> None:
    seen = {client("10.0.0.2", [f"198.51.100.{i}, 203.0.113.5"], ONE) for i in range(50)}
    assert seen == {"203.0.113.5"}


@pytest.mark.parametrize(
    ("peer", "xff", "xfp", "forwarded", "proxies", "https"),
    [
        ("10.0.0.2", [], ["https"], [], ONE, True),
        ("10.0.0.2", [], ["HTTPS"], [], ONE, True),
        ("10.0.0.2", [], ["http"], [], ONE, False),
        ("10.0.0.2", [], [], ["for=203.0.113.5;proto=https"], ONE, True),
        ("10.0.0.2", [], [], ['for="[2001:db8::1]";proto=http'], ONE, False),
        # Untrusted: the client's own word does not count.
        ("10.0.0.2", [], ["https"], [], NONE, False),
        ("203.0.113.9", ["1.1.1.1"], ["https"], [], NETS, False),
        # The client's entry is left of what the proxy appended.
        ("10.0.0.2", [], ["https, http"], [], ONE, False),
        # Two proxies appending: the outer one saw https.
        ("10.0.0.2", ["203.0.113.5, 10.0.0.1"], ["https, http"], [], TWO, True),
        ("10.0.0.2", ["203.0.113.5, 10.0.0.1"], ["https, http"], [], NETS, True),
        ("10.0.0.2", ["203.0.113.5"], ["https, http"], [], NETS, False),
        ("10.0.0.2", ["203.0.113.5"], [], ["for=203.0.113.5;proto=https"], NETS, True),
    ],
)
def test_https_is_what_a_trusted_proxy_reports(
    peer: str,
    xff: list[str],
    xfp: list[str],
    forwarded: list[str],
    proxies: TrustedProxies,
    https: bool,
) -> None:
    assert forwarded_https(peer, xff, xfp, forwarded, proxies) is https


def test_trusted_proxies_are_a_count_or_addresses() -> None:
    env = {"TIPPEN_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32 ,192.0.2.7"}
    proxies = Settings.from_env(env).proxies
    assert str(proxies) == "10.0.0.0/8, 2001:db8::/32, 192.0.2.7/32"
    assert Settings.from_env({"TIPPEN_TRUSTED_PROXIES": "2"}).proxies == TrustedProxies(hops=2)
    assert not Settings.from_env({}).proxies
    with pytest.raises(SettingsError, match="TIPPEN_TRUSTED_PROXIES"):
        Settings.from_env({"TIPPEN_TRUSTED_PROXIES": "nginx"})


def test_the_old_boolean_means_one_hop() -> None:
    legacy = Settings.from_env({"TIPPEN_TRUST_FORWARDED_FOR": "true"})
    assert legacy.proxies == TrustedProxies(hops=1)
    both = Settings.from_env(
        {"TIPPEN_TRUST_FORWARDED_FOR": "true", "TIPPEN_TRUSTED_PROXIES": "10.0.0.0/8"}
    )
    assert both.proxies == TrustedProxies.parse("10.0.0.0/8")


async def app_with(settings: Settings, store: EventStore) -> Any:
    directory = TenantDirectory(store)
    await directory.reload()
    return create_app(AppServices(settings=settings, store=store, tenants=directory))


@pytest.mark.parametrize(
    "settings_change",
    [
        {"trusted_proxies": TrustedProxies.parse("1")},
        {"trusted_proxies": TrustedProxies.parse("10.0.0.0/8")},
        {"trust_forwarded_for": True},
    ],
)
async def test_a_spoofed_forwarded_for_does_not_escape_the_ingest_rate_limit(
    settings: Settings,
    store: EventStore,
    tenant: Tenant,
    autojump_clock: MockClock,
    settings_change: dict[str, Any],
) -> None:
    app = await app_with(
        settings.replace(ingest_rate_per_address=1, ingest_burst_per_address=3, **settings_change),
        store,
    )
    c = app.test_client()

    async def post(forwarded_for: str) -> int:
        response = await c.post(
            TRACK_PATH,
            data=orjson.dumps(make_batch(tenant)),
            headers={
                "Content-Type": "application/json",
                "Origin": ORIGIN,
                "X-Forwarded-For": forwarded_for,
            },
            scope_base={"client": ("10.0.0.2", 5555)},
        )
        return int(response.status_code)

    # The attacker writes a new address each time; the proxy appends the real one.
    statuses = [await post(f"198.51.100.{i}, 203.0.113.5") for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    # Someone else behind the same proxy is not held up.
    assert await post("192.0.2.200") == 200
