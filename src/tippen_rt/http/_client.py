"""Who is asking: the client address that rate limits are keyed on."""

from __future__ import annotations

from quart import request


def client_address(trust_forwarded_for: bool) -> str:
    """The client's address, from X-Forwarded-For only when told to trust it."""
    if trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return request.remote_addr or "unknown"
