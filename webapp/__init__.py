"""A Flask + RQ job service: HTTP routes enqueue allow-listed jobs that RQ workers run."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Flask

from webapp import (
    api,
    api_read,  # noqa: F401  (registers the read views on api.bp)
    auth,
    cli,
    config,
    dashboard,
    docs,
    errors,
    hub,
    logs,
    metrics,
    pages,
    redis_checks,
    redis_client,
    security,
    service,
    streams,
)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings from the environment, then test overrides, then the parts."""
    app = Flask(__name__)
    app.config.update(config.from_environ())
    if test_config:
        app.config.update(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    logs.install(app.config)
    redis_client.init_app(app)
    redis_checks.init_app(app)
    service.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    dashboard.init_app(app)
    security.init_app(app)
    cli.init_app(app)
    hub.init_app(app)

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(streams.bp)
    metrics.init_app(app)
    if app.config["BENCH_ROUTES"]:
        from bench.routes import bp as bench_bp

        app.register_blueprint(bench_bp)
    return app
