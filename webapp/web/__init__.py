"""The web: the JSON API, its OpenAPI document and docs page, the event streams, the pages,
the dashboard at /rq and the operations endpoints, behind one error boundary, one set of
security headers, one authentication gate (keys, sessions, roles) and one audit hook."""

from __future__ import annotations

from functools import lru_cache

from flask import Flask

from webapp.web import api, audit, auth, dashboard, docs, errors, ops, pages, routing, security, signin, sse, throttle


def init_app(app: Flask) -> None:
    # Flask asks `ensure_sync` whether each hook and view is a coroutine function, some ten times
    # a request (3-4 % of a small route's CPU); the answer never changes for a function. Bounded,
    # since per-request callbacks (`after_this_request`) pass through it too.
    app.ensure_sync = lru_cache(maxsize=256)(app.ensure_sync)
    routing.init_app(app)  # URL converters (job ids)
    errors.init_app(app)  # every failure as JSON with its status
    security.init_app(app)  # headers, same-origin writes, trusted proxies
    throttle.init_app(app)  # refused keys and passwords, counted per client: guessing slowed down
    auth.init_app(app)  # the gate: API keys and sessions, the caller and role of each request
    audit.init_app(app)  # every state-changing request into the audit log
    api.init_app(app)  # the JSON API: jobs, catalog, queues and workers
    sse.init_app(app)  # event streams and their hub
    dashboard.init_app(app)  # rq-dashboard at /rq behind its password
    for blueprint in (pages.bp, docs.bp, ops.bp, signin.bp):
        app.register_blueprint(blueprint)
