"""Who is asking: the client address that rate limits are keyed on, and whether
the browser's connection was https.

Behind proxies (``TIPPEN_TRUSTED_PROXIES``) both come from forwarding headers,
read the way hypercorn's ``ProxyFixMiddleware`` reads them, with one difference
for a list of proxy addresses:

- a count of hops ``N``: every proxy appends the address it was connected from,
  so the ``N``-th X-Forwarded-For entry from the right is the client as the
  outermost proxy saw it; with fewer than ``N`` entries the request did not
  come through the proxies, and the peer's address is used (hypercorn's rule);
- addresses and networks: only when the peer is one of them, the right-most
  entry that is not one of them (entries to its left are whatever the client
  wrote, and never believed); if every entry is a proxy, the left-most.

Nothing here copies or rewrites the ASGI scope (the middleware deep-copies it
on every request): the headers are read only when a handler asks, and with no
trusted proxies ``client_address`` is just the peer's address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from quart import request

from ..config import TrustedProxies
from ..events import log_safe

__all__ = ["client_address", "forwarded_client", "forwarded_https", "is_https", "scope_client"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAX_ENTRIES = 64  # forwarding entries looked at; a longer chain is the client's doing


def client_address(proxies: TrustedProxies) -> str:
    """The client's address: the peer's, or the one the trusted proxies report."""
    peer = request.remote_addr or "unknown"
    if not proxies:
        return peer
    headers = request.headers
    entries = headers.getlist("X-Forwarded-For")
    if not entries:
        entries = [f for f in _forwarded_params(headers.getlist("Forwarded"), "for")]
    return forwarded_client(peer, entries, proxies)[0]


def scope_client(scope: Mapping[str, Any], proxies: TrustedProxies) -> str:
    """:func:`client_address` from a raw ASGI scope, outside any request context."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not proxies:
        return peer
    headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
    entries = [v.decode("latin-1") for k, v in headers if k.lower() == b"x-forwarded-for"]
    if not entries:
        forwarded = [v.decode("latin-1") for k, v in headers if k.lower() == b"forwarded"]
        entries = list(_forwarded_params(forwarded, "for"))
    return forwarded_client(peer, entries, proxies)[0]


def is_https(proxies: TrustedProxies) -> bool:
    """True if the browser's connection was https: this one, or a trusted proxy's."""
    if request.scheme in ("https", "wss"):
        return True
    if not proxies:
        return False
    headers = request.headers
    return forwarded_https(
        request.remote_addr or "unknown",
        headers.getlist("X-Forwarded-For"),
        headers.getlist("X-Forwarded-Proto"),
        headers.getlist("Forwarded"),
        proxies,
    )


def forwarded_client(
    peer: str, forwarded_for: list[str], proxies: TrustedProxies
) -> tuple[str, int]:
    """``(client address, proxies it came through)`` from the peer and the
    X-Forwarded-For header values, in the order received."""
    if not proxies:
        return peer, 0
    entries = _split(forwarded_for)
    if proxies.hops:
        if len(entries) >= proxies.hops:
            return _normal(entries[-proxies.hops]), proxies.hops
        return peer, 0
    if not proxies.trusts(_ip(peer)):
        return peer, 0
    hops = 1
    for entry in reversed(entries):
        if not proxies.trusts(_ip(entry)):
            return _normal(entry), hops
        hops += 1
    return (_normal(entries[0]), hops - 1) if entries else (peer, 1)


def forwarded_https(
    peer: str,
    forwarded_for: list[str],
    forwarded_proto: list[str],
    forwarded: list[str],
    proxies: TrustedProxies,
) -> bool:
    """True if a trusted proxy says the browser came over https: an X-Forwarded-Proto
    or ``Forwarded: proto=`` entry among the right-most ones the trusted proxies wrote."""
    if not proxies:
        return False
    if proxies.hops:
        hops = proxies.hops
    else:
        if not forwarded_for:
            forwarded_for = list(_forwarded_params(forwarded, "for"))
        _, hops = forwarded_client(peer, forwarded_for, proxies)
        if hops == 0:
            return False
    protos = _split(forwarded_proto)[-hops:]
    protos += list(_forwarded_params(forwarded, "proto"))[-hops:]
    return any(p.lower() in ("https", "wss") for p in protos)


def _split(values: Iterable[str]) -> list[str]:
    """Header values (each a comma-separated list) as one list of entries."""
    entries = [e.strip() for value in values for e in value.split(",")]
    return [e for e in entries if e][-_MAX_ENTRIES:]


def _forwarded_params(values: Iterable[str], key: str) -> Iterable[str]:
    """The ``key=`` parameter of each element of RFC 7239 ``Forwarded`` headers."""
    for element in _split(values):
        for pair in element.split(";"):
            name, sep, value = pair.partition("=")
            if sep and name.strip().lower() == key:
                yield value.strip().strip('"')


@lru_cache(maxsize=4096)
def _ip(entry: str) -> IPAddress | None:
    """The address in a forwarding entry (``1.2.3.4``, ``1.2.3.4:80``,
    ``[2001:db8::1]:443``, ``2001:db8::1``), or None (``unknown``, ``_hidden``)."""
    text = entry.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _normal(entry: str) -> str:
    """An entry as a rate-limit key: the bare address, or the entry made safe to log."""
    address = _ip(entry)
    return str(address) if address is not None else log_safe(entry, 64)
