"""Fast JSON responses with orjson."""

from __future__ import annotations

import json
from typing import Any

import orjson
from quart import Response, request


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``body`` as an ``application/json`` response."""
    return Response(
        orjson.dumps(body),
        status=status,
        headers=headers,
        content_type="application/json",
    )


async def json_body() -> Any:
    """The request's body decoded as JSON, or None if it is not JSON.

    Quart's ``get_json(silent=True)`` is silent about bad JSON but not about
    bytes that are not UTF-8 (a ``UnicodeDecodeError``, answered with a 500).
    orjson refuses those, and also lone surrogate escapes (``"\\ud800"``),
    which are JSON: for them the standard library decodes it, and callers
    refuse or clean the strings as before.
    """
    data = await request.get_data(cache=True, as_text=False)
    assert isinstance(data, bytes)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data.decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
