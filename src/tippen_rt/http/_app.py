"""The quart-trio application: routes, error handlers, services."""

from __future__ import annotations

from quart_trio import QuartTrio

from ._access_log import AccessLog
from ._errors import install_error_handlers
from ._health import health
from ._ingest import ingest
from ._metrics import metrics
from ._openapi import openapi
from ._pages import install_dashboard
from ._services import AppServices
from ._tracker_assets import tracker_assets


def create_app(svc: AppServices) -> QuartTrio:
    """An app bound to ``svc``; serve it with :func:`serve_http`."""
    # No static folder of Quart's own: the dashboard serves its files itself.
    app = QuartTrio("tippen_rt", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = svc.settings.max_body_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["tippen"] = svc
    install_error_handlers(app)
    app.register_blueprint(ingest)
    app.register_blueprint(health)
    app.register_blueprint(metrics)
    app.register_blueprint(openapi)
    app.register_blueprint(tracker_assets)
    install_dashboard(app, svc)
    if svc.settings.access_log:
        app.asgi_app = AccessLog(app.asgi_app, svc.settings.proxies)  # type: ignore[method-assign]

    return app
