"""The Slack message of an alert: content, buttons, fallback text, lifecycle."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_the_user_is_named_with_their_email_as_the_plan_says() -> None:
    text, blocks = as_json(alert(user_name="John Doe"))
    assert "John Doe (ann@example.com)" in text
    user_field = blocks[1]["fields"][0]["text"]
    assert user_field.startswith("*User:*\nJohn Doe (ann@example.com)\n")
    assert user_field.endswith("`ann/42 ?`")
    # A name without an email; neither: the user id alone.
    _, blocks = as_json(alert(user_name="John Doe", user_email=None))
    assert blocks[1]["fields"][0]["text"] == "*User:*\nJohn Doe\n`ann/42 ?`"
    _, blocks = as_json(alert(user_email=None))
    assert blocks[1]["fields"][0]["text"] == "*User:*\nann/42 ?"
    # A name is user text like any other: no mention, no markup.
    text, _ = as_json(alert(user_name="<!here> @channel *Boss*"))
    assert "<!here>" not in text and "@channel" not in text


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("invited", "inviting the user on their page"),
        ("shown", "the invitation is on the user's page"),
        ("joined", "the user joined"),
        ("declined", "the user said not now"),
        ("ignored", "the user did not answer"),
        ("not_invited", "invitations are off"),
    ],
)
def test_the_footer_says_how_the_call_went(status: str, words: str) -> None:
    _, blocks = as_json(
        alert(
            call_status=status,
            call_by="Ada <Park>",
            call_updated_at=T,
            claimed_by="Ada",
            claimed_at=T,
        )
    )
    footer = " ".join(e["text"] for e in blocks[-1]["elements"])
    assert f":telephone_receiver: Video call by *Ada &lt;Park&gt;*: {words}" in footer
    assert "*Ada* is on it" in footer


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
    assert message.text.startswith("Test alert from tippen-rt: Test User (test.user@example.com)")


# ---- hostile text: escaped first, then clipped to each block's limit ------------

#: Slack's limits per block (https://api.slack.com/reference/block-kit/blocks).
HEADER_MAX, SECTION_MAX, FIELD_MAX, CONTEXT_MAX, BUTTON_TEXT_MAX, URL_MAX = (
    150,
    3000,
    2000,
    2000,
    75,
    3000,
)
ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")
MENTION = re.compile(r"(?i)@(here|channel|everyone)|<!")


def texts_within_limits(blocks: list[Any]) -> list[str]:
    """Every text of the message, asserting each is within its block's limit."""
    out = []
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_MAX
            out.append(block["text"]["text"])
        elif block["type"] == "section":
            assert len(block["text"]["text"]) <= SECTION_MAX
            out.append(block["text"]["text"])
            for field in block.get("fields", []):
                assert len(field["text"]) <= FIELD_MAX
                out.append(field["text"])
        elif block["type"] == "context":
            for element in block["elements"]:
                assert len(element["text"]) <= CONTEXT_MAX
                out.append(element["text"])
        elif block["type"] == "actions":
            for element in block["elements"]:
                assert len(element["text"]["text"]) <= BUTTON_TEXT_MAX
                assert len(element["url"]) <= URL_MAX
    return out


def assert_safe(text: str) -> None:
    """No half-escaped entity, and no mention that would notify anyone."""
    assert not ENTITY.search(text), text[-40:]
    without_dates = re.sub(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>]*>", "", text)
    assert not MENTION.search(without_dates), text


def test_a_route_of_ampersands_is_escaped_then_clipped_within_the_limits() -> None:
    # Clipped before escaping, 1,000 "&" became 5,000 characters: Slack refused the alert.
    text, blocks = as_json(alert(route="&" * 1000, reason="on " + "&" * 1000 + " for 6 min"))
    for part in [*texts_within_limits(blocks), text]:
        assert_safe(part)
    page = blocks[1]["fields"][2]["text"]
    assert page.startswith("*Current page:*\n&amp;&amp;") and page.endswith("…")


@pytest.mark.parametrize("limit_cut", range(5))
def test_clipping_never_cuts_an_entity_in_half(limit_cut: int) -> None:
    # Whatever the offset of the cut, the text ends on a whole entity or a plain character.
    route = "/" + "x" * limit_cut + "&" * 2000
    text, blocks = as_json(alert(route=route, user_id="<" * 300, user_email=None))
    for part in [*texts_within_limits(blocks), text]:
        assert_safe(part)


@pytest.mark.parametrize(
    "mention", ["@here", "@channel", "@everyone", "@HERE", "<!here>", "<!channel|x>"]
)
def test_mentions_in_user_text_are_neutralised(mention: str) -> None:
    text, blocks = as_json(
        alert(
            user_id=f"u {mention}",
            user_email=f"{mention}@example.com",
            route=f"/x/{mention}",
            reason=f"stuck {mention} now",
            acknowledged_by=mention,
            acknowledged_at=T + 1,
        )
    )
    for part in [*texts_within_limits(blocks), text]:
        assert_safe(part)
    # Still readable: the word is there, only the mention is gone.
    assert mention.strip("<>!@").split("|")[0].lower() in repr(blocks).lower()


def test_a_backtick_in_a_user_id_cannot_break_the_code_span() -> None:
    _, blocks = as_json(alert(user_id="ann` *bold* `<@U1>", user_email="ann@example.com"))
    field = blocks[1]["fields"][0]["text"]
    assert field.startswith("*User:*\nann@example.com\n`") and field.endswith("`")
    code = field.split("\n")[-1]
    assert code.count("`") == 2, code  # the span's own two, nothing inside
    assert "<@U1>" not in field


def test_backticks_in_other_user_text_are_neutralised() -> None:
    text, blocks = as_json(alert(route="/a`b", reason="```code``` here", user_email="x`y@z"))
    fields = " ".join(f["text"] for f in blocks[1]["fields"])
    assert "`" not in blocks[1]["text"]["text"]
    assert fields.count("`") == 2  # only the user id's code span
    assert "`" not in text


def test_user_text_longer_than_any_block_is_clipped_everywhere() -> None:
    huge = "é&<>`@here " * 1000
    tenant = dataclasses.replace(TENANT, name=huge[:300])
    a = alert(
        user_id=huge[:256],
        user_email=huge[:320],
        tier=huge[:50],
        route=huge[:2048],
        reason=huge,
        acknowledged_by=huge[:64],
        acknowledged_at=T + 1,
        suppressed_count=10**9,
    )
    message = render_alert(a, tenant, "https://tippen.example.com/")
    blocks = message.blocks_as_dicts()
    for part in [*texts_within_limits(blocks), message.text]:
        assert_safe(part)
    assert len(message.text) <= SECTION_MAX


def test_a_dashboard_link_too_long_for_a_button_is_left_out() -> None:
    # A 256-character id of 4-byte characters percent-encodes to 3,072 characters.
    user_id = "😀" * 256
    _, blocks = as_json(alert(user_id=user_id))
    texts_within_limits(blocks)
    assert "View User Activity" not in buttons(blocks)


@given(
    user_id=st.text(min_size=1, max_size=256),
    email=st.one_of(st.none(), st.text(max_size=320)),
    route=st.one_of(st.none(), st.text(max_size=2048)),
    reason=st.text(max_size=5000),
)
@settings(max_examples=60, deadline=None)
def test_any_user_text_makes_a_valid_safe_message(
    user_id: str, email: str | None, route: str | None, reason: str
) -> None:
    a = alert(user_id=user_id, user_email=email, route=route, reason=reason)
    message = render_alert(a, TENANT, "https://tippen.example.com/")
    blocks = message.blocks_as_dicts()
    for part in [*texts_within_limits(blocks), message.text]:
        assert_safe(part)
