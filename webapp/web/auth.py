"""One authentication gate for the whole API, by construction.

Every request whose path is under `/api` passes `gate` (an app-wide `before_request`), whatever
blueprint serves it: the JSON API, the event streams, and any route added later. With API keys
configured, a request without a valid `Authorization: Bearer <key>` is a 401 before any view
runs. Only what is marked `public` is exempt (the docs blueprint: the OpenAPI document and its
docs page), and tests/test_auth_gate.py walks the URL map to prove it for every rule.

The caller the gate found is `caller()`: views pass it to the service explicitly, which
applies the ownership rule (webapp/service/access.py).
"""

from __future__ import annotations

from typing import TypeVar

from flask import Flask, current_app, g, request

from webapp.infra.errors import Unauthorized
from webapp.service.access import Caller, KeyRing

API_PREFIX = "/api"
T = TypeVar("T")


def public(target: T) -> T:
    """Mark a view, or a whole blueprint, under /api as readable without a key (documentation only)."""
    target.public = True
    return target


def is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def keyring() -> KeyRing:
    return current_app.extensions["jobsvc_keys"]


def is_public(endpoint: str | None) -> bool:
    """Whether the view of `endpoint`, or its blueprint, is marked `public`."""
    if not endpoint:
        return False
    view = current_app.view_functions.get(endpoint)
    blueprint = current_app.blueprints.get(endpoint.rpartition(".")[0]) if "." in endpoint else None
    return bool(getattr(view, "public", False) or getattr(blueprint, "public", False))


def gate() -> None:
    """Find the caller of every /api request; refuse it (401) if keys are set and it has none."""
    g.caller = None
    ring = keyring()
    if not ring.enabled or not is_api_path(request.path) or is_public(request.endpoint):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized(
            "this API needs a key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="jobsvc"'},
        )
    principal = ring.lookup(key.strip())
    if principal is None:
        raise Unauthorized(
            "unknown API key", headers={"WWW-Authenticate": 'Bearer realm="jobsvc", error="invalid_token"'}
        )
    g.caller = principal


def caller() -> Caller:
    """The caller of the current request; None when the API is open (no keys configured)."""
    return g.get("caller")


def init_app(app: Flask) -> None:
    app.extensions["jobsvc_keys"] = KeyRing.from_config(app.config)
    app.before_request(gate)
