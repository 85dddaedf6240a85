"""The Slack message of an alert: content, buttons, fallback text, lifecycle."""

from __future__ import annotations

import dataclasses
from typing import Any

from tippen_rt.alerts import render_alert, sample_message
from tippen_rt.persist import Alert
from tippen_rt.tenants import Tenant, TenantSettings

T = 1_750_000_000_000  # ms
TENANT = Tenant(id=1, name="acme corp", api_key="client_x", admin_token_hash="x")


def alert(**changes: Any) -> Alert:
    base = Alert(
        id=7,
        tenant_id=1,
        user_id="ann/42 ?",
        trigger="stuck_on_page",
        reason="on /billing for 6 min without moving on",
        user_email="ann@example.com",
        tier="free_trial",
        route="/billing?plan=<pro>&x=1",
        time_on_page_ms=372_000,
        total_events=42,
        total_errors=3,
        last_active_at=T - 20_000,
        opened_at=T,
        resolved_at=None,
        resolution=None,
        acknowledged_at=None,
        acknowledged_by=None,
        delivery_status="pending",
        attempts=0,
        last_error=None,
        slack_channel=None,
        slack_ts=None,
        suppressed_count=0,
        revision=0,
        slack_needs_update=False,
        created_at=T,
        updated_at=T,
    )
    return dataclasses.replace(base, **changes)


def as_json(a: Alert, public_url: str = "https://tippen.example.com/") -> tuple[str, list[Any]]:
    message = render_alert(a, TENANT, public_url)
    return message.text, message.blocks_as_dicts()  # to_dict() validates every block


def buttons(blocks: list[Any]) -> dict[str, str]:
    out = {}
    for block in blocks:
        if block["type"] == "actions":
            for element in block["elements"]:
                out[element["text"]["text"]] = element["url"]
    return out


def all_text(blocks: list[Any]) -> str:
    return repr(blocks)


def test_the_message_has_the_seed_plans_fields_and_two_buttons() -> None:
    text, blocks = as_json(alert())
    assert blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": ":sos: User needs support: Stuck on a page",
            "emoji": True,
        },
    }
    section = blocks[1]
    assert section["text"]["text"] == "*Stuck on a page:* on /billing for 6 min without moving on"
    fields = [f["text"] for f in section["fields"]]
    assert fields == [
        "*User:*\nann@example.com\n`ann/42 ?`",
        "*Tier:*\nfree_trial",
        "*Current page:*\n/billing?plan=&lt;pro&gt;&amp;x=1",
        "*Time on page:*\n6 min 12 s",
    ]
    activity = blocks[2]["text"]["text"]
    assert activity.startswith("*Activity:* 42 events · 3 errors · last active <!date^1749999980^")
    assert buttons(blocks) == {
        "View User Activity": "https://tippen.example.com/user-activity/ann%2F42%20%3F",
        "Start Video Call": "https://meet.jit.si/tippen-acme%20corp-"
        + TENANT.call_room("ann/42 ?"),
    }
    context = blocks[-1]["elements"][0]["text"]
    assert context.startswith("Alert #7 · acme corp · opened <!date^1750000000^")
    assert text.startswith(
        "User needs support: ann@example.com (free_trial) on /billing?plan=&lt;pro&gt;&amp;x=1: "
        "Stuck on a page: on /billing for 6 min without moving on"
    )
    assert "View User Activity: https://tippen.example.com/user-activity/ann%2F42%20%3F" in text


def test_a_user_without_email_is_shown_by_id() -> None:
    _, blocks = as_json(alert(user_email=None, user_id="u-1"))
    assert blocks[1]["fields"][0]["text"] == "*User:*\nu-1"


def test_without_a_public_url_there_is_no_dashboard_link() -> None:
    text, blocks = as_json(alert(), public_url="")
    assert list(buttons(blocks)) == ["Start Video Call"]
    assert "TIPPEN_PUBLIC_URL" in all_text(blocks)
    assert "View User Activity" not in text


def test_a_broken_video_template_drops_only_that_button() -> None:
    tenant = dataclasses.replace(
        TENANT, settings=TenantSettings(video_call_template="https://x/{nope}")
    )
    blocks = render_alert(alert(), tenant, "https://t.example").blocks_as_dicts()
    assert list(buttons(blocks)) == ["View User Activity"]


def test_acknowledged_and_resolved_messages_say_so_and_by_whom() -> None:
    _, blocks = as_json(alert(acknowledged_at=T + 60_000, acknowledged_by="alice"))
    assert blocks[0]["text"]["text"] == ":eyes: Acknowledged: Stuck on a page"
    assert "Acknowledged by *alice*" in all_text(blocks)

    text, blocks = as_json(
        alert(
            acknowledged_at=T + 60_000,
            acknowledged_by="alice",
            resolved_at=T + 120_000,
            resolution="recovered",
            suppressed_count=2,
        )
    )
    assert blocks[0]["text"]["text"] == ":white_check_mark: Resolved: Stuck on a page"
    lines = [e["text"] for e in blocks[-1]["elements"]]
    assert lines[1].startswith(":eyes: Acknowledged by *alice* <!date^1750000060^")
    assert lines[2].startswith(":white_check_mark: Resolved <!date^1750000120^")
    assert lines[3] == "+2 more triggers for this user held back by the rate limit"
    assert text.startswith("Resolved: ")


def test_user_text_cannot_inject_slack_markup() -> None:
    _, blocks = as_json(alert(reason="<!channel> look", user_email="<@U123>"))
    dump = all_text(blocks)
    assert "<!channel>" not in dump and "<@U123>" not in dump
    assert "&lt;!channel&gt; look" in dump


def test_the_test_message_is_marked_as_a_test() -> None:
    message = sample_message(TENANT, "https://t.example", now_ms=T)
    blocks = message.blocks_as_dicts()
    assert blocks[0]["text"]["text"] == ":test_tube: Test alert: Stuck on a page"
    assert "real alerts will look like this" in all_text(blocks)
    assert message.text.startswith("Test alert from tippen-rt: test.user@example.com")
