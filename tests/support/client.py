"""A tiny blocking HTTP client for tests that talk to a real server process."""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit

import orjson


class Client:
    """One keep-alive connection to ``base_url``."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)

    def post_json(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """POST ``body`` as JSON; return (status, decoded JSON body or None)."""
        status, payload, _ = self.post_json_full(path, body, headers)
        return status, payload

    def post_json_full(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """Like :meth:`post_json`, also returning the response headers (lower-cased)."""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        self._conn.request(
            "POST",
            path,
            body=data,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = self._conn.getresponse()
        raw = response.read()
        return (
            response.status,
            orjson.loads(raw) if raw else None,
            {k.lower(): v for k, v in response.getheaders()},
        )

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET ``path``; return (status, body bytes)."""
        self._conn.request("GET", path, headers=headers or {})
        response = self._conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
