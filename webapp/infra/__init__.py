"""Infrastructure: settings, the Redis client factory, start-up checks, logging, processes.

Nothing here knows Flask or the job service; every other layer builds on it.
"""

from __future__ import annotations

import logging

from webapp.infra import checks, logs, tracing
from webapp.infra.redis import RedisFactory


def init_app(app) -> None:
    """Logging, the process's Redis client factory and the app's client, the start-up checks."""
    if "redis" in app.extensions:
        raise RuntimeError("infra.init_app() was called twice for this app")
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logs.install(app.config)
    tracing.configure(app.config)  # OpenTelemetry, only when installed (README "OpenTelemetry")
    factory = RedisFactory(app.config)
    app.extensions["redis_factory"] = factory
    app.extensions["redis"] = factory.client(name="jobsvc-app")
    checks.init_app(app)
