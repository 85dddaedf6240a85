"""``tippen-rt tenant set`` and ``tippen-rt slack test`` against the Slack stand-in."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from tippen_rt.cli import main
from tippen_rt.persist import (
    create_tenant,
    get_tenant_by_name,
    open_database,
    record_served_settings,
)
from tippen_rt.tenants import TenantSettings, hash_admin_token

from .slack_server import CHANNEL_ID, TOKEN, WEBHOOK_PATH, SlackStandIn


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    conn = open_database(path)
    create_tenant(conn, "acme")
    conn.close()
    for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "PUBLIC_URL"):
        monkeypatch.delenv(f"TIPPEN_{name}", raising=False)
    monkeypatch.setenv("TIPPEN_DB_PATH", str(path))
    return path


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def header(body: dict[str, object]) -> str:
    blocks = body["blocks"]
    assert isinstance(blocks, list)
    return str(blocks[0]["text"]["text"])


def test_webhook_set_up_and_test_message(
    db: Path, slack: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        "tenant", "set", "acme", "--slack-webhook-url", slack.webhook_url, capsys=capsys
    )
    assert code == 0
    assert f"slack:        incoming webhook {slack.url}/…" in out
    assert WEBHOOK_PATH not in out  # the secret part of the URL is not printed
    assert "saved" in out

    code, out, err = run("slack", "test", "--tenant", "acme", capsys=capsys)
    assert (code, err) == (0, "")
    assert out.startswith(f"sent a test alert to incoming webhook {slack.url}/…")
    assert "TIPPEN_PUBLIC_URL is not set" in out
    [post] = slack.posts
    assert header(post) == ":test_tube: Test alert: Stuck on a page"
    assert str(post["text"]).startswith("Test alert from tippen-rt")


def test_bot_set_up_with_the_token_on_stdin_and_test_message(
    db: Path,
    slack: SlackStandIn,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIPPEN_SLACK_API_URL", slack.api_url)
    monkeypatch.setenv("TIPPEN_PUBLIC_URL", "https://tippen.example.com")
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    code, out, _ = run(
        "tenant", "set", "acme", "--slack-bot-token", "-", "--slack-channel", "#support",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0
    assert "bot token xoxb-…oken posting to #support (messages are updated" in out
    assert TOKEN not in out

    code, out, _ = run("slack", "test", "--tenant", "acme", capsys=capsys)
    assert code == 0
    assert out == (
        f"sent a test alert to bot token xoxb-…oken posting to #support"
        f" (channel {CHANNEL_ID}, ts 1750000000.000001)\n"
    )
    [post] = slack.posts
    buttons = [
        e["text"]["text"] for b in post["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert buttons == ["View User Activity", "Start Video Call"]


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"--slack-webhook-url": "/services/nope"}, "HTTP 404: no_service"),
        ({"--slack-bot-token": "xoxb-wrong", "--slack-channel": "#support"}, "invalid_auth"),
        ({"--slack-bot-token": TOKEN, "--slack-channel": "#nowhere"}, "channel_not_found"),
    ],
)
def test_slacks_error_is_printed_and_the_exit_code_is_1(
    db: Path,
    slack: SlackStandIn,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, str],
    error: str,
) -> None:
    monkeypatch.setenv("TIPPEN_SLACK_API_URL", slack.api_url)
    args = [a for k, v in settings.items() for a in (k, slack.url + v if v.startswith("/") else v)]
    assert run("tenant", "set", "acme", *args, capsys=capsys)[0] == 0
    code, out, err = run("slack", "test", "--tenant", "acme", capsys=capsys)
    assert (code, out) == (1, "")
    assert err == f"tippen-rt: Slack did not take the test message: {error}\n"


def test_a_slack_that_fails_is_reported(
    db: Path, slack: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    run("tenant", "set", "acme", "--slack-webhook-url", slack.webhook_url, capsys=capsys)
    slack.fail_next(1, status=500, error="internal_error")
    code, _, err = run("slack", "test", "--tenant", "acme", capsys=capsys)
    assert code == 1
    assert "HTTP 500: internal_error" in err


def test_without_a_target_slack_test_says_how_to_set_one(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run("slack", "test", "--tenant", "acme", capsys=capsys)
    assert (code, out) == (2, "")  # a set-up mistake, not Slack failing
    assert "has no Slack target" in err and "tippen-rt tenant set acme" in err
    code, _, err = run("slack", "test", "--tenant", "nobody", capsys=capsys)
    assert code == 2 and err == "tippen-rt: no tenant named 'nobody'\n"


def test_the_service_default_target_is_used_and_shown(
    db: Path,
    slack: SlackStandIn,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIPPEN_SLACK_WEBHOOK_URL", slack.webhook_url)
    code, out, _ = run("tenant", "set", "acme", capsys=capsys)
    assert code == 0 and "slack:        the service default: incoming webhook" in out
    assert "saved" not in out
    assert run("slack", "test", "--tenant", "acme", capsys=capsys)[0] == 0
    assert len(slack.posts) == 1


def test_video_template_and_rate_limit_are_stored(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        "tenant", "set", "acme",
        "--video-call-template", "https://whereby.com/acme-{user}",
        "--alert-rate-limit-min", "30",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0
    assert "video calls:  https://whereby.com/acme-{user}" in out
    assert "rate limit:   one Slack alert per user per 30 min" in out
    conn = open_database(db)
    tenant = get_tenant_by_name(conn, "acme")
    conn.close()
    assert tenant.settings.alert_rate_limit_s == 1800
    assert tenant.video_call_url("a b") == "https://whereby.com/acme-a%20b"
    # '' goes back to the default
    code, out, _ = run("tenant", "set", "acme", "--video-call-template", "", capsys=capsys)
    assert "video calls:  https://meet.jit.si/tippen-{tenant}-{room}" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--video-call-template", "https://x/{r00m}"], 2, "may use only {tenant}, {user}"),
        (["--video-call-template", "meet.example/{user}"], 2, "does not make an http(s) link"),
        (["--slack-webhook-url", "hooks.slack.com"], 2, "is not a webhook URL"),
        (["--slack-bot-token", "abc"], 2, "starts with xoxb-"),
        (["--slack-bot-token", TOKEN], 2, "a bot token needs a channel"),
        (["--alert-rate-limit-min", "-1"], 2, "must not be negative"),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_saved(
    db: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    got, out, err = run("tenant", "set", "acme", *args, capsys=capsys)
    assert (got, out) == (code, "")
    assert message in err
    conn = open_database(db)
    stored = conn.execute("SELECT settings FROM tenants WHERE name = 'acme'").fetchone()[0]
    conn.close()
    assert json.loads(stored)["slack_bot_token"] == ""
    assert json.loads(stored)["video_call_template"] == "https://meet.jit.si/tippen-{tenant}-{room}"


def test_thresholds_are_set_by_name_and_checked(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        "tenant",
        "set",
        "acme",
        "--set",
        "stuck_on_page_s=120",
        "--set",
        "idle_after_s=30",
        "--set",
        "error_burst_count=5",
        capsys=capsys,
    )
    assert code == 0
    assert "stuck_on_page_s=120" in out and "idle_after_s=30" in out
    conn = open_database(db)
    settings = get_tenant_by_name(conn, "acme").settings
    conn.close()
    assert (settings.stuck_on_page_s, settings.idle_after_s) == (120, 30)
    assert settings.error_burst_count == 5 and isinstance(settings.error_burst_count, int)
    for bad, says in [
        ("slack_bot_token=x", "NAME one of"),
        ("idle_after_s", "NAME one of"),
        ("idle_after_s=soon", "is not a number"),
        ("idle_after_s=0", "more than 0"),
        ("presence_timeout_s=-90", "more than 0"),
        ("error_burst_count=2.5", "whole number"),
    ]:
        code, _, err = run("tenant", "set", "acme", "--set", bad, capsys=capsys)
        assert code == 2 and says in err, (bad, err)
    conn = open_database(db)
    assert get_tenant_by_name(conn, "acme").settings == settings  # nothing changed
    conn.close()


def test_origins_are_added_and_removed_and_mistakes_change_nothing(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        "tenant", "set", "acme", "--add-origin", "https://App.Example.com:443/", capsys=capsys
    )
    assert code == 0 and "origins:      https://app.example.com" in out
    code, _, err = run("tenant", "set", "acme", "--remove-origin", "https://b.com", capsys=capsys)
    assert (
        code == 2 and err.strip() == "tippen-rt: https://b.com is not one of the tenant's origins"
    )
    code, _, err = run("tenant", "set", "acme", "--add-origin", "app.example.com", capsys=capsys)
    assert code == 2 and "is not an origin" in err
    conn = open_database(db)
    assert get_tenant_by_name(conn, "acme").origins == ("https://app.example.com",)
    conn.close()
    code, out, _ = run(
        "tenant", "set", "acme", "--remove-origin", "https://app.example.com", capsys=capsys
    )
    assert code == 0 and "(none: browsers are refused)" in out


def test_identity_verification_is_turned_on_required_and_off(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run("tenant", "show", "acme", "--secret", "identity", capsys=capsys)
    assert code == 2 and "--identity on" in err
    code, out, _ = run("tenant", "set", "acme", "--identity", "required", capsys=capsys)
    assert code == 0 and "identity:     required" in out
    code, secret, _ = run("tenant", "show", "acme", "--secret", "identity", capsys=capsys)
    assert code == 0 and len(secret.strip()) == 64
    conn = open_database(db)
    tenant = get_tenant_by_name(conn, "acme")
    conn.close()
    assert tenant.identity_secret == secret.strip() and tenant.settings.require_user_hash
    # 'on' keeps the same secret (apps already use it); 'off' removes it.
    code, out, _ = run("tenant", "set", "acme", "--identity", "on", capsys=capsys)
    assert "identity:     on" in out
    assert run("tenant", "show", "acme", "--secret", "identity", capsys=capsys)[1] == secret
    code, out, _ = run("tenant", "set", "acme", "--identity", "off", capsys=capsys)
    assert "identity:     off" in out
    conn = open_database(db)
    assert get_tenant_by_name(conn, "acme").identity_secret is None
    conn.close()


def test_show_masks_secrets_and_rotate_gives_a_new_admin_token(
    db: Path, slack: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    run("tenant", "set", "acme", "--slack-webhook-url", slack.webhook_url, capsys=capsys)
    conn = open_database(db)
    before = get_tenant_by_name(conn, "acme")
    conn.close()
    code, out, _ = run("tenant", "show", "acme", capsys=capsys)
    assert code == 0 and before.api_key in out and WEBHOOK_PATH not in out
    assert before.admin_token_hash not in out
    assert "stuck_on_page_s=300" in out
    code, out, _ = run("tenant", "rotate-admin-token", "acme", capsys=capsys)
    token = out.split()[2]
    conn = open_database(db)
    after = get_tenant_by_name(conn, "acme")
    conn.close()
    assert code == 0 and token.startswith("admin_")
    assert after.admin_token_hash == hash_admin_token(token) != before.admin_token_hash
    code, _, err = run("tenant", "rotate-admin-token", "nobody", capsys=capsys)
    assert code == 2 and err == "tippen-rt: no tenant named 'nobody'\n"


def test_slack_test_uses_the_public_url_and_slack_api_the_service_runs_with(
    db: Path,
    slack: SlackStandIn,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `tippen-rt serve` recorded what it uses; this shell knows neither.
    conn = open_database(db)
    with conn:
        record_served_settings(conn, "https://tippen.example.com", slack.api_url)
    conn.close()
    monkeypatch.setenv("TIPPEN_PUBLIC_URL", "https://stale.example.com")
    monkeypatch.delenv("TIPPEN_SLACK_API_URL", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    args = ("--slack-bot-token", "-", "--slack-channel", "#support")
    assert run("tenant", "set", "acme", *args, capsys=capsys)[0] == 0
    code, out, err = run("slack", "test", "--tenant", "acme", capsys=capsys)
    assert (code, err) == (0, "")
    assert "links go to https://tippen.example.com (the public URL the service" in out
    [post] = slack.posts  # reached the service's Slack API, not slack.com
    links = [e.get("url") for b in post["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert links[0].startswith("https://tippen.example.com/user-activity/")


def test_triggers_are_turned_off_and_given_tiers_and_shown(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run("tenant", "show", "acme", capsys=capsys)
    assert code == 0
    assert "triggers:     stuck_on_page    on   all tiers\n" in out
    assert "              low_activity     on   free_trial\n" in out
    assert "origin hdr:   required" in out
    code, out, _ = run(
        "tenant", "set", "acme",
        "--trigger", "low_activity=off",
        "--trigger-tiers", "stuck_on_page=enterprise,paid",
        "--trigger-tiers", "long_inactivity=all",
        "--require-origin", "off",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0 and "saved" in out
    assert "stuck_on_page    on   paid, enterprise\n" in out
    assert "low_activity     off  free_trial\n" in out
    assert "long_inactivity  on   all tiers\n" in out
    assert "origin hdr:   not required" in out
    conn = open_database(db)
    settings = get_tenant_by_name(conn, "acme").settings
    conn.close()
    assert settings.triggers_off == ("low_activity",) and not settings.require_origin
    assert not settings.trigger_applies("stuck_on_page", "free_trial")
    assert settings.trigger_applies("long_inactivity", "enterprise")
    # Back to the defaults.
    code, out, _ = run(
        "tenant", "set", "acme",
        "--trigger", "low_activity=on",
        "--trigger-tiers", "stuck_on_page=default",
        "--trigger-tiers", "long_inactivity=default",
        "--require-origin", "on",
        capsys=capsys,
    )  # fmt: skip
    conn = open_database(db)
    assert get_tenant_by_name(conn, "acme").settings == TenantSettings()
    conn.close()


def test_call_invitations_are_switched_off_and_on(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run("tenant", "show", "acme", capsys=capsys)
    assert "invitations:  on (a video call shows the user an invitation" in out
    assert "no answer in 2 min counts as ignored" in out
    code, out, _ = run(
        "tenant", "set", "acme", "--call-invitations", "off", "--set", "invite_timeout_s=30",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0 and "invitations:  off (the agent shares the call link" in out
    conn = open_database(db)
    settings = get_tenant_by_name(conn, "acme").settings
    conn.close()
    assert (settings.call_invitations, settings.invite_timeout_s) == (False, 30.0)


def test_tier_weights_order_the_queue_and_are_shown(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run("tenant", "show", "acme", capsys=capsys)
    assert "queue order:  tier weight enterprise 3, paid 2, free_trial 1, then" in out
    code, out, _ = run(
        "tenant", "set", "acme", "--tier-weight", "free_trial=5", "--tier-weight", "paid=0",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0 and "queue order:  tier weight free_trial 5, enterprise 3, paid 0" in out
    conn = open_database(db)
    settings = get_tenant_by_name(conn, "acme").settings
    conn.close()
    assert (settings.tier_weight("free_trial"), settings.tier_weight("paid")) == (5, 0)
    run("tenant", "set", "acme", "--tier-weight", "free_trial=default", capsys=capsys)
    code, out, err = run("tenant", "set", "acme", "--tier-weight", "gold=3", capsys=capsys)
    assert code == 2 and "--tier-weight takes TIER=N" in err
    conn = open_database(db)
    assert get_tenant_by_name(conn, "acme").settings.tier_weights == (("paid", 0),)
    conn.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trigger", "low_activity"], "--trigger takes NAME=on or NAME=off; got 'low_activity'"),
        (["--trigger", "low_activity=no"], "--trigger takes NAME=on or NAME=off"),
        (["--trigger", "stuck=off"], "--trigger: 'stuck' is not a trigger; triggers: stuck_on"),
        (["--trigger-tiers", "stuck_on_page"], "--trigger-tiers takes NAME=TIER[,TIER...]"),
        (["--trigger-tiers", "stuck_on_page=gold"], "'gold' is not a tier; tiers: free_trial"),
        (["--trigger-tiers", "stuck_on_page="], "needs at least one tier"),
        # One bad value refuses the whole command: the good one is not saved either.
        (["--trigger", "low_activity=off", "--trigger", "x=off"], "'x' is not a trigger"),
    ],
)
def test_bad_trigger_settings_are_one_line_exit_2_and_nothing_is_saved(
    db: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    def stored() -> str:
        conn = open_database(db)
        try:
            return str(conn.execute("SELECT settings FROM tenants").fetchone()[0])
        finally:
            conn.close()

    before = stored()
    code, out, err = run("tenant", "set", "acme", *args, capsys=capsys)
    assert (code, out) == (2, "")
    assert err.startswith("tippen-rt: ") and err.count("\n") == 1 and message in err
    assert stored() == before


def test_every_tenant_set_option_says_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["tenant", "set", "--help"])
    # Each option's entry starts on a line of its own: "  --name ...".
    options = capsys.readouterr().out.split("options:", 1)[1]
    entries = {
        entry.split()[0]: " ".join(entry.split())
        for entry in re.split(r"\n(?=  -)", options)
        if entry.strip()
    }
    assert {"--slack-webhook-url", "--identity", "--trigger", "--require-origin", "--set"} <= set(
        entries
    )
    for name, entry in entries.items():
        if name not in ("-h,", "--db"):
            assert "default" in entry, f"{name} does not say its default: {entry}"
