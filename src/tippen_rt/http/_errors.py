"""JSON error responses for every failure, so clients never get an HTML page."""

from __future__ import annotations

import logging

from quart import Quart, Response
from werkzeug.exceptions import HTTPException

from ..events import BadInput
from ._json import json_response

log = logging.getLogger(__name__)


def error_response(exc: BadInput, headers: dict[str, str] | None = None) -> Response:
    """The response for a rejected request."""
    return json_response(exc.to_json(), exc.status, headers)


def install_error_handlers(app: Quart) -> None:
    """Turn BadInput, HTTP errors and crashes into JSON bodies."""

    @app.errorhandler(BadInput)
    async def _bad_input(exc: BadInput) -> Response:
        return error_response(exc)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        names = {
            404: ("not_found", "no such endpoint"),
            405: ("method_not_allowed", "method not allowed on this endpoint"),
            413: ("body_too_large", "request body is over the size limit"),
        }
        name, message = names.get(code, (f"http_{code}", exc.description or exc.name))
        return error_response(BadInput(name, message, None, status=code))

    @app.errorhandler(Exception)
    async def _crash(exc: Exception) -> Response:
        log.exception("unhandled error in request")
        return error_response(BadInput("internal_error", "internal error", None, status=500))
