"""``tippen-rt slack test``: post a sample alert so an operator can check the setup."""

from __future__ import annotations

import time

from ..persist import SENT, Alert
from ..tenants import Tenant
from ._render import Message, render_alert
from ._slack import (
    ClientOptions,
    Posted,
    SlackDefaults,
    SlackError,
    SlackTarget,
    post_message,
    slack_target,
)

TEST_USER = "tippen-test-user"


def sample_alert(tenant: Tenant, now_ms: int) -> Alert:
    """An alert as a real one would look, about a made-up user."""
    return Alert(
        id=0,
        tenant_id=tenant.id,
        user_id=TEST_USER,
        trigger="stuck_on_page",
        reason="on /settings/billing for 6 min without moving on",
        user_email="test.user@example.com",
        user_name="Test User",
        tier="free_trial",
        route="/settings/billing",
        time_on_page_ms=6 * 60_000,
        total_events=42,
        total_errors=1,
        last_active_at=now_ms - 20_000,
        opened_at=now_ms,
        resolved_at=None,
        resolution=None,
        acknowledged_at=None,
        acknowledged_by=None,
        delivery_status=SENT,
        attempts=0,
        last_error=None,
        slack_channel=None,
        slack_ts=None,
        suppressed_count=0,
        revision=0,
        slack_needs_update=False,
        created_at=now_ms,
        updated_at=now_ms,
    )


def sample_message(tenant: Tenant, public_url: str, now_ms: int | None = None) -> Message:
    """The test message for ``tenant``."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return render_alert(sample_alert(tenant, now), tenant, public_url, test=True)


def send_test_message(
    tenant: Tenant,
    defaults: SlackDefaults,
    public_url: str,
    options: ClientOptions | None = None,
) -> tuple[SlackTarget, Posted]:
    """Post the test message to the tenant's Slack target. Blocks.

    Raises :class:`SlackError` if the tenant has no target or Slack refuses.
    """
    target = slack_target(tenant.settings, defaults)
    if target is None:
        raise SlackError(f"tenant {tenant.name!r} has no Slack target", transient=False)
    message = sample_message(tenant, public_url)
    posted = post_message(target, message.text, message.blocks, options or ClientOptions())
    return target, posted
