"""The no-op endpoint: the same quart-trio + hypercorn stack, doing nothing.

``python -m bench._noop_server [--port 0]`` serves ``POST /api/track/user-activity``
with a route that reads the body (as ingest does; a client sends it anyway)
and answers a constant JSON body, on hypercorn's trio worker started
programmatically with the very same hypercorn config as ``tippen-rt serve``.
The difference between this and the real endpoint is what ingest itself
costs: parsing, validation, tenant lookup, CORS and the durable write.

Lives in bench/ on purpose: it is a yardstick, not part of the service.
"""

from __future__ import annotations

import argparse
import contextlib

import trio
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

from tippen_rt.config import Settings
from tippen_rt.http import TRACK_PATH, hypercorn_config

ANSWER = b'{"success":true,"stored":50,"analyzed":true}'


def create_noop_app(settings: Settings) -> QuartTrio:
    """A quart-trio app whose ingest route only drains the body and answers a constant."""
    app = QuartTrio("tippen_noop")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    @app.post(TRACK_PATH)
    async def noop() -> Response:
        await request.get_data(cache=False)
        return Response(ANSWER, status=200, content_type="application/json")

    return app


async def _main(settings: Settings) -> None:
    async with trio.open_nursery() as nursery:
        config = hypercorn_config(settings)
        binds = await nursery.start(serve, create_noop_app(settings), config)
        print(f"noop listening on {', '.join(binds)}", flush=True)


def main() -> None:
    """Parse ``--host``/``--port`` and serve until killed."""
    parser = argparse.ArgumentParser(prog="python -m bench._noop_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(_main, Settings(host=args.host, port=args.port))


if __name__ == "__main__":
    main()
