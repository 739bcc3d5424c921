"""Server-Sent Event streams of job, schedule and operator events: the per-process hub (one subscription,
fanned out), the shared stream tails, and the routes under /api."""

from __future__ import annotations

from flask import Flask

from webapp.web.sse import hub, operator_stream, schedule_stream  # noqa: F401  (they add their routes to bp)
from webapp.web.sse.streams import bp


def init_app(app: Flask) -> None:
    hub.init_app(app)
    app.register_blueprint(bp)
