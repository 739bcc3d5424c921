"""The app the HTTP benchmark serves: the service itself, plus the baseline routes under /bench.

gunicorn runs `bench.app:create_bench_app()`; the service never imports anything from bench/.
"""

from __future__ import annotations

from flask import Flask

from bench.routes import bp
from webapp import create_app


def create_bench_app() -> Flask:
    app = create_app()
    app.register_blueprint(bp)
    return app
