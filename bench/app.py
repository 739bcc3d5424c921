"""The app the HTTP benchmark serves: the service itself, plus the baseline routes under /bench.

gunicorn runs `bench.app:create_bench_app()`; the service never imports anything from bench/.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from bench.routes import bp
from webapp import create_app


def create_bench_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = create_app(test_config)
    app.register_blueprint(bp)
    return app
