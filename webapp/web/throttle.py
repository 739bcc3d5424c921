"""Guessing keys and passwords is slowed down for every credential the app checks, by construction.

Any request that presents credentials (an `Authorization` header: API keys, the dashboard's
Basic password; or a view marked `takes_credentials`: the sign-in form) and is answered 401
counts as a failure of its client address (webapp/store/throttle.py). Past
AUTH_FAILURES_PER_MINUTE failures in a clock minute, that address's requests presenting
credentials get 429 with Retry-After until the minute ends, without their credentials being
checked, so no more guesses are tried (a right key then waits too: a guess that succeeds must
look like one that fails). Requests without credentials are never held back: the pages, the
docs and /healthz stay reachable. A new route that checks credentials gets this without a line
of its own: it only has to answer 401 when they are wrong.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from flask import Flask, Response, current_app, request
from redis.exceptions import RedisError

from webapp.infra.errors import APIError
from webapp.store.throttle import FailureThrottle
from webapp.web import auth

log = logging.getLogger("webapp.web.throttle")
T = TypeVar("T")


class TooManyFailures(APIError):
    status = 429
    code = "too_many_failures"


def takes_credentials(view: T) -> T:
    """Mark a view that checks credentials sent in its body (the sign-in form)."""
    view.takes_credentials = True
    return view


def presents_credentials() -> bool:
    return "Authorization" in request.headers or bool(auth.marker(request.endpoint, "takes_credentials"))


def throttle() -> FailureThrottle:
    return current_app.extensions["auth_throttle"]


def refuse_while_blocked():
    if not presents_credentials():
        return None
    wait = throttle().blocked_for(request.remote_addr or "")  # in this process: no Redis call
    if wait is None:
        return None
    raise TooManyFailures(
        f"too many refused keys or passwords from {request.remote_addr}: try again in {wait} s "
        "(AUTH_FAILURES_PER_MINUTE)",
        headers={"Retry-After": str(wait)},
    )


def count_failure(response: Response) -> Response:
    if response.status_code == 401 and presents_credentials():
        address = request.remote_addr or ""
        log.warning("credentials refused: %s %s, from %s", request.method, request.path, address)
        try:
            throttle().failed(address)
        except RedisError as exc:  # the 401 stands: counting it is not the request's business
            log.warning("refused credentials not counted, Redis unavailable: %s", exc)
    return response


def init_app(app: Flask) -> None:
    limit = int(app.config["AUTH_FAILURES_PER_MINUTE"])
    app.extensions["auth_throttle"] = FailureThrottle(app.extensions["redis"], limit)
    app.before_request(refuse_while_blocked)  # before the gate and the dashboard check them
    app.after_request(count_failure)
