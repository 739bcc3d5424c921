"""The one error boundary: every failure leaves the app as `{"error": {"code", "message"}}`.

Errors a client can act on (webapp.infra.errors) keep their status; HTTP errors raised by
Flask and Werkzeug (404, 405, 413) keep theirs and their headers; a Redis that does not
answer (down, frozen past REDIS_SOCKET_TIMEOUT, loading, or a replica after a failover) is a
503 with Retry-After, and so is one that refuses writes, full (maxmemory) or unable to save to
disk (MISCONF): it refused the write, so nothing was written, and reads still work. RQ's own
"no such job" and "not in a state that allows it", where RQ's code runs (the dashboard's
actions), are a 404 and a 409. Anything else is a logged 500 that says nothing of the internals.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from redis.exceptions import OutOfMemoryError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from werkzeug.exceptions import HTTPException

from webapp.infra.errors import APIError
from webapp.infra.redis import REDIS_UNAVAILABLE, WritesRefusedError

log = logging.getLogger("webapp.web.errors")


def error_response(status: int, code: str, message: str, details: list | None = None, headers=None):
    body: dict = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def redis_unavailable():
    return error_response(
        503,
        "redis_unavailable",
        "Redis did not answer in time, so this request may not have taken effect. Retry shortly "
        "(resending a submission with the same Idempotency-Key is always safe).",
        headers={"Retry-After": "1"},
    )


def redis_full():
    return error_response(
        503,
        "redis_full",
        "Redis is out of memory (its maxmemory is reached) and refused the write, so this request "
        "did not take effect. Retry later; reads still work. Operators: raise Redis's maxmemory or "
        "free memory (finished jobs' results and events expire by their TTLs).",
        headers={"Retry-After": "5"},
    )


def redis_disk_error():
    return error_response(
        503,
        "redis_disk_error",
        "Redis cannot save to disk (MISCONF: its last snapshot or append-only write failed) and "
        "refuses every write until it can, so this request did not take effect. Retry later; reads "
        "still work. Operators: free disk space or fix Redis's data directory (its log says why).",
        headers={"Retry-After": "5"},
    )


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_")


def init_app(app: Flask) -> None:
    @app.errorhandler(APIError)
    def handle_api_error(exc: APIError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        # Keep the headers the exception carries (Allow, WWW-Authenticate, Retry-After).
        headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
        return error_response(exc.code or 500, _http_code(exc), exc.description or exc.name, headers=headers)

    def handle_redis_unavailable(exc: Exception):
        log.warning("Redis unavailable: %s", exc)
        if isinstance(exc, OutOfMemoryError):
            return redis_full()
        if isinstance(exc, WritesRefusedError):
            return redis_disk_error()
        return redis_unavailable()

    @app.errorhandler(NoSuchJobError)
    def handle_no_such_job(exc: NoSuchJobError):
        return error_response(404, "not_found", "no such job: it never existed, expired or was deleted")

    @app.errorhandler(InvalidJobOperation)
    def handle_invalid_job_operation(exc: InvalidJobOperation):
        return error_response(
            409, "conflict", "the job's state does not allow this (a requeue takes only a failed job)"
        )

    for kind in REDIS_UNAVAILABLE:
        app.register_error_handler(kind, handle_redis_unavailable)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Unexpected server error; it has been logged.")
