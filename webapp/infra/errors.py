"""One error boundary: every failure leaves the app as `{"error": {"code", "message"}}`."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error a client can act on; subclasses fix the status and code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: list | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class BadRequest(APIError):
    """The request body is not what the API reads (malformed JSON, wrong shape)."""


class NotFound(APIError):
    """No such job, or it has expired."""

    status = 404
    code = "not_found"


class ValidationFailed(APIError):
    """The request is well-formed but its content is refused."""

    status = 422
    code = "validation_error"


class Unauthorized(APIError):
    """No API key, or one the server does not know."""

    status = 401
    code = "unauthorized"


class Conflict(APIError):
    """The job's current state does not allow the operation, or a key was reused differently."""

    status = 409
    code = "conflict"


class PayloadTooLarge(APIError):
    """The request, or a part of it, is larger than the configured limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(APIError):
    """A JSON endpoint got a body that is not declared as JSON."""

    status = 415
    code = "unsupported_media_type"


class TooManyRequests(APIError):
    """The client is over its submission rate limit."""

    status = 429
    code = "rate_limited"


class Unavailable(APIError):
    """A service the request needs (Redis) does not answer."""

    status = 503
    code = "unavailable"


def error_response(status: int, code: str, message: str, details: list | None = None, headers=None):
    body: dict = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


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

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def handle_redis_down(exc: Exception):
        log.warning("Redis unreachable: %s", exc)
        return error_response(
            503,
            "redis_unavailable",
            "Redis is not answering; the request was not processed. Retry shortly.",
            headers={"Retry-After": "1"},
        )

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Unexpected server error; it has been logged.")
