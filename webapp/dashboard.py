"""rq-dashboard at /rq, behind HTTP Basic auth.

The dashboard is mounted as it ships; this module only guards it. Without a configured
password every request to /rq is refused: the dashboard is never served open.
"""

from __future__ import annotations

import hmac

import rq_dashboard
import rq_dashboard.web
from flask import Flask, current_app, request
from rq.serializers import JSONSerializer
from werkzeug.exceptions import Unauthorized

from webapp import redis_client

PREFIX = "/rq"


def _credentials_match(username: str, password: str) -> bool:
    expected_user = current_app.config["RQ_DASHBOARD_USERNAME"] or ""
    expected_password = current_app.config["RQ_DASHBOARD_PASSWORD"] or ""
    # Compare both in full, always, so the time taken says nothing about which part is wrong.
    user_ok = hmac.compare_digest(username.encode(), expected_user.encode())
    password_ok = hmac.compare_digest(password.encode(), expected_password.encode())
    return bool(expected_password) and user_ok and password_ok


def require_credentials():
    if not (request.path == PREFIX or request.path.startswith(PREFIX + "/")):
        return None
    auth = request.authorization
    if auth is not None and auth.type == "basic" and _credentials_match(auth.username or "", auth.password or ""):
        return None
    if not current_app.config["RQ_DASHBOARD_PASSWORD"]:
        message = "The dashboard is disabled until RQ_DASHBOARD_PASSWORD is set."
    else:
        message = "The dashboard needs the credentials printed by `make run` (RQ_DASHBOARD_USERNAME/PASSWORD)."
    raise Unauthorized(message, www_authenticate=_challenge())


def _challenge():
    from werkzeug.datastructures import WWWAuthenticate

    return WWWAuthenticate("basic", {"realm": "rq-dashboard"})


def init_app(app: Flask) -> None:
    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_client.dashboard_url(app.config)
    rq_dashboard.web.config.serializer = JSONSerializer
    rq_dashboard.web.setup_rq_connection(app)
    app.before_request(require_credentials)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)
