"""The errors a client can act on, with their HTTP status and code.

Every layer raises these (the store for an unknown job id or a bad cursor, the service for a
refused submission); the web's error boundary (webapp/web/errors.py) turns each into
`{"error": {"code", "message"}}` with its status, and the CLI prints its message.
"""

from __future__ import annotations


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


class Unauthorized(APIError):
    """No API key, or one the server does not know."""

    status = 401
    code = "unauthorized"


class Forbidden(APIError):
    """The caller is known but may not do this."""

    status = 403
    code = "forbidden"


class NotFound(APIError):
    """No such job, or it has expired."""

    status = 404
    code = "not_found"


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


class ValidationFailed(APIError):
    """The request is well-formed but its content is refused."""

    status = 422
    code = "validation_error"


class TooManyRequests(APIError):
    """The client is over its submission rate limit."""

    status = 429
    code = "rate_limited"


class Unavailable(APIError):
    """A service the request needs (Redis) does not answer, or a queue is full."""

    status = 503
    code = "unavailable"
