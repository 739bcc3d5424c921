"""One authentication and authorization gate for the whole app, by construction.

`gate` is an app-wide `before_request`, so it covers every route, including routes added
later. With API keys configured (API_KEYS, ADMIN_API_KEYS, VIEWER_API_KEYS):
- the caller is found from `Authorization: Bearer <key>` or else from the sign-in session
  cookie (webapp/web/sessions.py); a request under /api without either is a 401, a page
  request is sent to the sign-in page;
- a state-changing request (any method but GET/HEAD/OPTIONS, or a GET view marked
  `changes_state`) made with a session must carry the session's CSRF token (403 otherwise);
- the role the operation needs is checked before any view runs: reads need any key (viewer),
  writes an owner or admin key, and a view marked `requires(ADMIN)` an admin key. So a viewer
  key gets 403 on every write, whoever wrote the view (tests/test_roles.py walks the URL map).
  The OpenAPI document states the same role per operation (`required_role`).
Exempt: what is marked `public` (the API docs, /healthz, /metrics, the sign-in page) and what
guards itself (`own_guard`: rq-dashboard at /rq, webapp/web/dashboard.py).

The caller the gate found is `caller()`: views pass it to the service explicitly, which
applies the ownership rule (webapp/service/access.py). `identity()` also says how it was
proven (bearer, session, basic), for the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, g, redirect, request, url_for

from webapp.infra.errors import APIError, Forbidden, Unauthorized
from webapp.service.access import OWNER, VIEWER, Caller, KeyRing, Principal
from webapp.web import sessions
from webapp.web.security import SAFE_METHODS

API_PREFIX = "/api"
NEEDS_A_KEY = "this API needs a key: send 'Authorization: Bearer <key>' (the web UI: sign in at /signin)"
T = TypeVar("T")


@dataclass(frozen=True)
class Identity:
    """Who made the request and how it was proven: `bearer`, `session` or `basic` (dashboard)."""

    principal: Principal
    via: str


class CsrfFailed(APIError):
    """A state-changing request made with a session cookie but without the session's CSRF token."""

    status = 403
    code = "csrf_failed"


# -- markers views and blueprints carry -----------------------------------------------------


def public(target: T) -> T:
    """Mark a view, or a whole blueprint, as reachable without a key (docs, health, sign-in)."""
    target.public = True
    return target


def own_guard(target: T) -> T:
    """Mark a blueprint that authenticates its requests itself (the dashboard at /rq)."""
    target.own_guard = True
    return target


def requires(role: str):
    """Mark a view as needing at least `role` (viewer < owner < admin), e.g. `@requires(ADMIN)`."""

    def mark(view: T) -> T:
        view.required_role = role
        return view

    return mark


def changes_state(view: T) -> T:
    """Mark a GET view that changes state (the tutorial's demo links): the gate treats it as a write."""
    view.changes_state = True
    return view


def marker(endpoint: str | None, name: str, app: Flask | None = None) -> Any:
    """The value of marker `name` on the view of `endpoint`, else on its blueprint, else None."""
    if not endpoint:
        return None
    app = app or current_app
    view = app.view_functions.get(endpoint)
    found = getattr(view, name, None)
    if found is None and "." in endpoint:
        found = getattr(app.blueprints.get(endpoint.rpartition(".")[0]), name, None)
    return found


def is_public(endpoint: str | None, app: Flask | None = None) -> bool:
    return bool(marker(endpoint, "public", app))


def is_write(method: str, endpoint: str | None, app: Flask | None = None) -> bool:
    """Whether a request changes state: any unsafe method, or a GET view marked `changes_state`."""
    return method not in SAFE_METHODS or bool(marker(endpoint, "changes_state", app))


def required_role(endpoint: str | None, write: bool, app: Flask | None = None) -> str:
    """The least role a request needs: the view's `requires(...)`, else owner to write, viewer to read."""
    return marker(endpoint, "required_role", app) or (OWNER if write else VIEWER)


# -- finding the caller ------------------------------------------------------------------------


def is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def keyring() -> KeyRing:
    return current_app.extensions["jobsvc_keys"]


def bearer_identity(*, strict: bool = True) -> Identity | None:
    """The caller named by `Authorization: Bearer`; None without the header. A malformed or
    unknown key is a 401 when `strict`, else None."""
    header = request.headers.get("Authorization")
    if header is None or _is_basic(header):
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        if not strict:
            return None
        raise Unauthorized(NEEDS_A_KEY, headers={"WWW-Authenticate": 'Bearer realm="jobsvc"'})
    principal = keyring().lookup(key.strip())
    if principal is None:
        if not strict:
            return None
        raise Unauthorized(
            "unknown API key", headers={"WWW-Authenticate": 'Bearer realm="jobsvc", error="invalid_token"'}
        )
    return Identity(principal, "bearer")


def _is_basic(header: str) -> bool:
    """The dashboard's Basic credentials. A browser that answered its prompt resends them to
    every page under the prompt's folder (`/rq`'s is the whole site), so they are no API key:
    they must neither stand for one nor hide the session of the same browser."""
    return header.partition(" ")[0].lower() == "basic"


def identify(*, strict: bool = True) -> Identity | None:
    """Bearer key first (an explicit header wins), then the session cookie."""
    found = bearer_identity(strict=strict)
    header = request.headers.get("Authorization")
    if found is not None or (header is not None and not _is_basic(header)):
        return found
    session = sessions.current()
    return Identity(session.principal, "session") if session is not None else None


def sign_in_redirect():
    target = request.full_path.rstrip("?") if request.query_string else request.path
    response = redirect(url_for("signin.signin_page", next=target), 303)
    if sessions.has_cookie():
        sessions.forget_cookie(response)  # expired, signed out or its key removed
    return response


def gate():
    """Find the caller of every request and refuse what it may not do, before any view runs."""
    g.caller = None
    g.identity = None
    if not keyring().enabled:
        return None
    endpoint = request.endpoint
    api = is_api_path(request.path)
    if not api and (endpoint is None or endpoint == "static"):
        return None  # a 404 outside /api, or a static file
    if is_public(endpoint) or marker(endpoint, "own_guard"):
        return None
    identity = identify()
    write = is_write(request.method, endpoint)
    if identity is None:
        if api or write:
            raise Unauthorized(NEEDS_A_KEY, headers={"WWW-Authenticate": 'Bearer realm="jobsvc"'})
        return sign_in_redirect()
    g.identity = identity  # known from here on, even if refused below: the audit log names it
    if identity.via == "session" and write and not sessions.csrf_ok(sessions.current()):
        raise CsrfFailed(
            f"{request.method} {request.path} refused: a request made with a sign-in session must carry its "
            f"CSRF token ({sessions.CSRF_HEADER} header, as the pages send it); scripts use a Bearer key"
        )
    needed = required_role(endpoint, write)
    principal = identity.principal
    if not principal.has(needed):
        what = "is read-only" if principal.role == VIEWER else f"is an {principal.role} key"
        raise Forbidden(f"key {principal.name!r} {what}: {request.method} {request.path} needs an {needed} key")
    g.caller = principal
    return None


def caller() -> Caller:
    """The caller of the current request; None when the API is open (no keys configured)."""
    return g.get("caller")


def identity() -> Identity | None:
    """Who made the current request and how, as far as the gate (or a guard) established it."""
    return g.get("identity")


def set_identity(found: Identity | None) -> None:
    """For the views and guards that authenticate outside the gate (sign-in, the dashboard)."""
    g.identity = found
    g.caller = found.principal if found is not None else None


def init_app(app: Flask) -> None:
    app.extensions["jobsvc_keys"] = KeyRing.from_config(app.config)
    app.before_request(gate)
