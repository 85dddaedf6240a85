"""A tenant's settings in words (``tenant show`` and the dashboard), secrets masked."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tippen_rt.alerts import (
    SlackDefaults,
    describe_slack,
    fires_when,
    mask_url,
    threshold_in_words,
)
from tippen_rt.tenants import TRIGGERS, TenantSettings


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://hooks.slack.com/services/T1/B2/XYZ", "https://hooks.slack.com/…"),
        ("http://127.0.0.1:8123/hook/secret", "http://127.0.0.1:8123/…"),
        ("https://user:pass@hooks.example.com/x", "https://hooks.example.com/…"),
        ("https://hooks.example.com?token=secret/x", "https://hooks.example.com/…"),
        ("https://hooks.example.com#secret", "https://hooks.example.com/…"),
        ("not a url", "…"),
    ],
)
def test_a_webhook_url_keeps_only_its_host(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("stuck_on_page_s", 300, "5 min"),
        ("presence_timeout_s", 90.0, "90 s"),
        ("error_burst_count", 3, "3 errors"),
        ("low_activity_min_events", 1, "1 interaction"),
        ("retention_days", 1, "1 day"),
        ("retention_days", 30, "30 days"),
        ("max_live_users", 20_000, "20,000 live users"),
        ("max_live_users", 0, "no limit"),
        ("slack_max_per_minute", 0, "no limit"),
    ],
)
def test_thresholds_in_words(name: str, value: float, words: str) -> None:
    assert threshold_in_words(name, value) == words


def test_every_trigger_says_when_it_fires_with_the_tenants_numbers() -> None:
    s = TenantSettings(stuck_on_page_s=120, error_burst_count=5, error_window_s=60)
    assert [fires_when(t, s) for t in TRIGGERS] == [
        "2 min on the same page while still trying (input never pausing for 60 s)",
        "fewer than 3 interactions in the last 10 min,"
        " once the page has been visible with the user there for 10 min",
        "more than 5 errors within 60 s",
        "no input at all for 15 min while the page is visible and the user there",
    ]
    assert fires_when("low_activity", replace(s, low_activity_min_events=0)).startswith("never")
    with pytest.raises(ValueError):
        fires_when("nope", s)


def test_slack_is_described_without_its_secrets() -> None:
    token = "xoxb-123456789-abcdefghijkl"
    own = describe_slack(
        TenantSettings(slack_bot_token=token, slack_channel="#help"), SlackDefaults()
    )
    assert (own.mode, own.source, own.channel, own.updates_messages) == (
        "bot",
        "tenant",
        "#help",
        True,
    )
    assert own.target == "bot token xoxb-…ijkl posting to #help"
    assert token not in own.in_words
    service = describe_slack(
        TenantSettings(), SlackDefaults(webhook_url="https://hooks.slack.com/services/A/B/C")
    )
    assert (service.mode, service.source) == ("webhook", "service")
    assert service.in_words == "the service default: incoming webhook https://hooks.slack.com/…"
    off = describe_slack(TenantSettings(slack_bot_token=token), SlackDefaults())
    assert (off.mode, off.target) == ("off", "")
    assert off.in_words.endswith("; the bot token has no channel")
