"""rq-dashboard at /rq, mounted as it ships and guarded from the outside.

- HTTP Basic auth, compared in constant time. Without a configured password every request to
  /rq is refused: the dashboard is never served open.
- With API keys set, a web UI session of an admin key opens it without the Basic-auth prompt,
  and one of a viewer key read-only (every action 403). Owner keys see only their own jobs, so
  their sessions do not open it (the dashboard shows every job): they get the Basic prompt.
- Its actions (requeue, delete, empty, compact) are POSTs. A GET on one of their routes
  (0.9 accepts `GET /requeue/<queue>`) is refused with 405, and every state-changing request
  must come from this site: a same-origin `Origin`/`Referer`, or the `X-CSRFToken` header that
  the dashboard's own JavaScript copies from the `_csrf_token` cookie set here.
- `RQ_DASHBOARD_READ_ONLY=1` refuses every state-changing request.
- Jobs and workers are read with the service's JSON serializer everywhere: rq-dashboard 0.9
  names it for some reads only, and RQ's default for the rest is pickle, so its Workers tab
  failed on every running job and would have unpickled the data of a job planted in Redis.
- A URL the dashboard does not serve (an instance other than 0, a page or page size that is not
  a positive number, an unknown registry) is a 404, and RQ's "no such job" and "not in a state
  that allows it" are 404 and 409, not 500s.
- A strict Content-Security-Policy. The dashboard's pages carry one inline script (its
  settings and page code, rendered per request): it gets a per-response nonce, so injected
  markup (job arguments and results are shown unescaped by some of its templates) cannot run
  script. `'unsafe-eval'` stays because its underscore templates compile with `new Function`.
"""

from __future__ import annotations

import hmac
import re
import secrets
from functools import partial

import rq_dashboard
import rq_dashboard.web
from flask import Flask, Response, current_app, request
from rq import Worker
from rq.exceptions import DeserializationError
from rq.job import Job, requeue_job
from rq.serializers import JSONSerializer
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import MethodNotAllowed, NotFound, Unauthorized

from webapp.infra.errors import APIError
from webapp.service.access import ADMIN, OWNER, Principal
from webapp.web import auth, sessions
from webapp.web.security import DEFAULT_CSP, SAFE_METHODS, CrossSiteRequest, is_same_origin, request_origin

PREFIX = "/rq"
CSRF_COOKIE = "_csrf_token"  # the name rq-dashboard's dashboard.js reads
CSRF_HEADER = "X-CSRFToken"  # the header it sends the cookie's value in
INLINE_SCRIPT_TAG = b'<script type="text/javascript">'


class ReadOnly(APIError):
    """The dashboard is in read-only mode."""

    status = 403
    code = "read_only"


def _in_dashboard() -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


def _credentials_match(username: str, password: str) -> bool:
    expected_user = current_app.config["RQ_DASHBOARD_USERNAME"] or ""
    expected_password = current_app.config["RQ_DASHBOARD_PASSWORD"] or ""
    # Compare both in full, always, so the time taken says nothing about which part is wrong.
    user_ok = hmac.compare_digest(username.encode(), expected_user.encode())
    password_ok = hmac.compare_digest(password.encode(), expected_password.encode())
    return bool(expected_password) and user_ok and password_ok


def require_credentials():
    if not _in_dashboard():
        return None
    basic = request.authorization
    if basic is not None and basic.type == "basic" and _credentials_match(basic.username or "", basic.password or ""):
        auth.set_identity(auth.Identity(Principal(basic.username or "", ADMIN), "basic"))
        return None
    session = sessions.current() if auth.keyring().enabled else None
    if session is not None and session.principal.sees_all:
        auth.set_identity(auth.Identity(session.principal, "session"))
        return None
    with_keys = " or sign in to the web UI with an admin key" if auth.keyring().enabled else ""
    if not current_app.config["RQ_DASHBOARD_PASSWORD"]:
        message = f"The dashboard is disabled until RQ_DASHBOARD_PASSWORD is set{with_keys}."
    else:
        message = (
            f"The dashboard needs the credentials printed by `make run` (RQ_DASHBOARD_USERNAME/PASSWORD){with_keys}."
        )
    raise Unauthorized(message, www_authenticate=WWWAuthenticate("basic", {"realm": "rq-dashboard"}))


def action_endpoints(app: Flask) -> frozenset[str]:
    """The dashboard's endpoints that change state: every route that accepts a POST (or worse)."""
    return frozenset(
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("rq_dashboard.") and set(rule.methods or ()) - SAFE_METHODS
    )


def _csrf_token_matches() -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), header.encode())


def guard_actions():
    """Runs after the credentials check: refuse state-changing GETs, cross-site and read-only writes."""
    if not _in_dashboard():
        return None
    is_action = request.endpoint in current_app.extensions["dashboard_actions"]
    if request.method in SAFE_METHODS:
        if is_action:
            raise MethodNotAllowed(
                valid_methods=["POST"], description="This dashboard action changes state: it needs a POST."
            )
        return None
    if current_app.config["RQ_DASHBOARD_READ_ONLY"]:
        raise ReadOnly("The dashboard is read-only (RQ_DASHBOARD_READ_ONLY is set).")
    who = auth.caller()
    if who is not None and not who.has(OWNER):
        raise ReadOnly(f"key {who.name!r} is read-only ({who.role}): the dashboard's actions need an admin key")
    origin = request_origin()
    if origin is not None and not is_same_origin(origin):
        raise CrossSiteRequest(f"{request.method} from {origin} refused: dashboard actions come from its own pages")
    if origin is None and not _csrf_token_matches():
        raise CrossSiteRequest(
            "dashboard actions need a same-origin Origin or Referer header, or the X-CSRFToken header"
        )
    return None


class JsonJob(Job):
    """RQ's Job with the service's serializer as its default: rq-dashboard fetches jobs without one."""

    def __init__(self, id=None, connection=None, serializer=None):  # noqa: A002 (RQ's own name)
        super().__init__(id, connection=connection, serializer=serializer or JSONSerializer)

    def get_call_string(self) -> str | None:
        try:
            return super().get_call_string()
        except DeserializationError:  # not JSON (pickled by plain RQ code): shown by its description
            return self.description


class JsonWorker(Worker):
    """RQ's Worker read with the service's serializer (a worker's current job is read through it)."""

    @classmethod
    def all(cls, connection=None, job_class=None, queue_class=None, queue=None, serializer=None):
        return super().all(connection, job_class or JsonJob, queue_class, queue, serializer or JSONSerializer)


REGISTRIES = frozenset({"queued", "started", "finished", "failed", "deferred", "scheduled", "canceled"})
POSITIVE = re.compile(r"[1-9][0-9]{0,5}")
PAGE = re.compile(r"[0-9]{1,6}")  # its own "last page" link of an empty registry is page 0


def refuse_unknown_pages():
    """Runs after the credentials check: a URL the dashboard's routes match but it cannot serve
    (it would fail with a 500) is a 404."""
    if not _in_dashboard() or not request.view_args:
        return None
    args = request.view_args
    served = (
        args.get("instance_number", 0) == 0  # one Redis: the app's
        and args.get("registry_name", "queued") in REGISTRIES
        and str(args.get("order", "asc")) in ("asc", "dsc")
        and POSITIVE.fullmatch(str(args.get("per_page", 1))) is not None
        and PAGE.fullmatch(str(args.get("page", 1))) is not None
    )
    if not served:
        raise NotFound("The dashboard has no such page: instance 0, a known registry, page sizes from 1.")
    return None


def dashboard_csp(nonce: str) -> str:
    """The app's policy, plus what rq-dashboard's pages need: a nonce for their one inline
    script, eval for their underscore templates, and inline styles."""
    return DEFAULT_CSP.replace("script-src 'self'", f"script-src 'self' 'nonce-{nonce}' 'unsafe-eval'").replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    )


def secure_dashboard_response(response: Response) -> Response:
    """CSP with a nonce on the one inline script; the CSRF cookie the dashboard's JS sends back."""
    if not _in_dashboard():
        return response
    nonce = secrets.token_urlsafe(18)
    response.headers["Content-Security-Policy"] = dashboard_csp(nonce)
    response.headers["Cache-Control"] = "no-store"
    if response.mimetype == "text/html" and not response.direct_passthrough:
        body = response.get_data()
        # Job data is rendered into the page escaped or client-side, so the exact tag can only
        # be the template's own. More than one would mean that no longer holds: add no nonce.
        if body.count(INLINE_SCRIPT_TAG) == 1:
            tagged = INLINE_SCRIPT_TAG[:-1] + f' nonce="{nonce}">'.encode()
            response.set_data(body.replace(INLINE_SCRIPT_TAG, tagged))
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(
                CSRF_COOKIE,
                secrets.token_urlsafe(32),
                path=PREFIX,
                samesite="Strict",
                secure=request.is_secure,
                httponly=False,  # the dashboard's JavaScript reads it into the X-CSRFToken header
            )
    return response


def use_the_app_redis_client():
    """Point the dashboard at the app's own Redis client (one pool, explicit timeouts, Sentinel).

    rq-dashboard 0.9 builds a client of its own from its configured URL on every request that
    names an instance; it is never used for a command, because this hook replaces it first,
    so the dashboard's Redis traffic goes through the app's client.
    """
    current_app.redis_conn = current_app.extensions["redis"]


def init_app(app: Flask) -> None:
    # The URL is only shown by the dashboard (its instance list); connections are the app's.
    app.config["RQ_DASHBOARD_REDIS_URL"] = (app.extensions["redis_factory"].dashboard_url(),)
    if app.config.get("RQ_DASHBOARD_READ_ONLY"):
        app.config["RQ_DASHBOARD_DISABLE_DELETE"] = True
    rq_dashboard.web.config.serializer = JSONSerializer
    rq_dashboard.web.Job = JsonJob  # the names its views use: never RQ's default, pickle
    rq_dashboard.web.Worker = JsonWorker
    rq_dashboard.web.requeue_job = partial(requeue_job, serializer=JSONSerializer)
    app.before_request(require_credentials)
    app.before_request(guard_actions)
    app.before_request(refuse_unknown_pages)
    app.after_request(secure_dashboard_response)
    auth.own_guard(rq_dashboard.blueprint)  # the app-wide gate leaves /rq to the hooks above
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)
    app.redis_conn = app.extensions["redis"]
    # Runs after the blueprint's own connection hook, which registration has just added.
    app.before_request_funcs.setdefault(rq_dashboard.blueprint.name, []).append(use_the_app_redis_client)
    app.extensions["dashboard_actions"] = action_endpoints(app)
