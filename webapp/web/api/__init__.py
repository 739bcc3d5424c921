"""The JSON API under /api, one blueprint per resource.

What every route shares is applied app-wide, so a route added later cannot forget it: the
authentication gate (webapp/web/auth.py) and JSON bodies (`requests.require_json_bodies`).
"""

from __future__ import annotations

from flask import Flask

from webapp.web.api import audit, catalog, cluster, deliveries, jobs, limits, requests, schedules, stats

BLUEPRINTS = (jobs.bp, catalog.bp, cluster.bp, schedules.bp, audit.bp, stats.bp, deliveries.bp, limits.bp)


def init_app(app: Flask) -> None:
    app.before_request(requests.require_json_bodies)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
