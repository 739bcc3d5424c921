"""A Flask + RQ job service: HTTP routes enqueue allow-listed jobs that RQ workers run.

The layers, each a subpackage (README, "Architecture"): `infra` (settings, the Redis client
factory, logging), `store` (Redis keys, Lua scripts, job records, events, listing),
`service` (the catalog, planning and submitting jobs, access rules), then three front ends
that never import each other: `web` (API, pages, event streams, dashboard), `cli` (`flask`
commands) and `worker` (`python worker.py`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from webapp import cli, infra, service, web
from webapp.infra import config


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, infrastructure, the job service, the web, the CLI."""
    app = Flask(__name__, template_folder="web/templates", static_folder="web/static")
    config.configure(app, test_config)
    infra.init_app(app)
    service.init_app(app)
    web.init_app(app)
    cli.init_app(app)
    return app
