"""Admin sessions as signed cookies, and a token bucket for login attempts. Pure.

A session cookie is ``<payload>.<signature>``: the payload is base64url JSON
``{"t": tenant id, "n": admin name, "e": expiry (epoch s), "k": key tag, "a":
agent id (0: the admin token), "i": a random login id}``, the
signature an HMAC-SHA256 of the payload with the server secret.  The key tag
is an HMAC of the tenant's admin token hash (of the agent's token hash for an
agent), so rotating the admin token (``tippen-rt tenant rotate-admin-token``)
or removing an agent ends those sessions at once.
Only logouts are stored server-side (the signatures of cookies logged out
before their expiry, ``revoked_sessions``): a restart keeps everyone logged in
as long as the secret is kept (``TIPPEN_SECRET_KEY``, or the one kept in SQLite).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass

import orjson

__all__ = ["AdminSession", "TokenBucket", "key_tag", "read_session", "sign_session"]

MAX_NAME_CHARS = 64


@dataclass(frozen=True, slots=True)
class AdminSession:
    """Who is logged in: an admin of one tenant, until ``expires_at`` (epoch s)."""

    tenant_id: int
    name: str
    expires_at: float
    key_tag: str
    #: The agent who logged in with their own token; 0: the tenant's admin token.
    agent_id: int = 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_tag(secret: bytes, admin_token_hash: str) -> str:
    """A short tag of the tenant's current admin token, bound into its sessions."""
    return _b64(hmac.new(secret, b"key:" + admin_token_hash.encode(), hashlib.sha256).digest())[:22]


def _signature(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, b"session:" + payload.encode(), hashlib.sha256).digest())


def sign_session(secret: bytes, session: AdminSession) -> str:
    """The cookie value for ``session``: a new one every login (``i`` is random),
    so logging one out never ends another."""
    payload = _b64(
        orjson.dumps(
            {
                "t": session.tenant_id,
                "n": session.name,
                "e": int(session.expires_at),
                "k": session.key_tag,
                "a": session.agent_id,
                "i": secrets.token_urlsafe(9),
            }
        )
    )
    return f"{payload}.{_signature(secret, payload)}"


def read_session(secret: bytes, value: str | None, now: float) -> AdminSession | None:
    """The session in cookie ``value`` if its signature is good and it has not expired."""
    if not value or len(value) > 1024 or not value.isascii() or value.count(".") != 1:
        return None
    payload, signature = value.split(".")
    expected = _signature(secret, payload).encode()
    if not hmac.compare_digest(signature.encode(), expected):
        return None
    try:
        doc = orjson.loads(_unb64(payload))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    tenant_id, name, expires, tag = doc.get("t"), doc.get("n"), doc.get("e"), doc.get("k")
    agent_id = doc.get("a", 0)
    if (
        not isinstance(tenant_id, int)
        or not isinstance(name, str)
        or not isinstance(expires, int)
        or not isinstance(tag, str)
        or type(agent_id) is not int
    ):
        return None
    if expires <= now:
        return None
    return AdminSession(
        tenant_id=tenant_id, name=name, expires_at=float(expires), key_tag=tag, agent_id=agent_id
    )


class TokenBucket:
    """Per-key token buckets: ``burst`` attempts at once, then one per ``refill_s``.

    Memory is bounded: past ``max_keys`` keys, buckets that have refilled
    completely (they hold nothing worth remembering) are forgotten, then the
    oldest if that is not enough.
    """

    def __init__(self, burst: int, refill_s: float, *, max_keys: int = 10_000) -> None:
        if burst < 1 or refill_s <= 0:
            raise ValueError("a token bucket needs burst >= 1 and refill_s > 0")
        self.burst = burst
        self.refill_s = refill_s
        self.max_keys = max_keys
        #: key -> (tokens, at)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float) -> float:
        """Take a token for ``key``; 0.0 if allowed, else seconds until one is free."""
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) / self.refill_s)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._prune(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) * self.refill_s

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= self.max_keys:
            return
        full_after = self.burst * self.refill_s
        for key, (_, at) in list(self._buckets.items()):
            if now - at >= full_after:
                del self._buckets[key]
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
