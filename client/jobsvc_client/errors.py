"""One exception class per error code of the jobsvc API (`{"error": {"code", "message", "details"}}`).

Catch `JobsvcError` for all of them, or a subclass for one case: `NotFound`, `Conflict`,
`ValidationError` (with `details`, one entry per argument), `RateLimited` (with
`retry_after`), `Unavailable` (with `retry_after`)... A code this client does not know gets
the class of its HTTP status, or `JobsvcError` itself. `TransientError` gathers the ones worth
trying again shortly (`wait` and `events` do): no answer at all, a 503, and a proxy's 502 or 504.
"""

from __future__ import annotations

from typing import Any


class JobsvcError(Exception):
    """An error answer of the API, or no answer at all (`ServiceUnreachable`)."""

    code = "error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 details: list[dict[str, Any]] | None = None, retry_after: float | None = None):  # fmt: skip
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code or self.code
        self.details = details or []
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}" if self.status else self.message


class BadRequest(JobsvcError):
    code = "bad_request"  # 400: malformed JSON, a damaged cursor or Last-Event-ID


class Unauthorized(JobsvcError):
    code = "unauthorized"  # 401: no API key, or an unknown one


class Forbidden(JobsvcError):
    code = "forbidden"  # 403


class NotFound(JobsvcError):
    code = "not_found"  # 404: no such job (or not yours), no such delivery


class MethodNotAllowed(JobsvcError):
    code = "method_not_allowed"  # 405


class Conflict(JobsvcError):
    code = "conflict"  # 409: the job's state does not allow it; an Idempotency-Key reused differently


class PayloadTooLarge(JobsvcError):
    code = "payload_too_large"  # 413: the body or the job's arguments are too large


class UnsupportedMediaType(JobsvcError):
    code = "unsupported_media_type"  # 415


class ValidationError(JobsvcError):
    code = "validation_error"  # 422: unknown job or option, wrong argument; see `details`


class RateLimited(JobsvcError):
    code = "rate_limited"  # 429: see `retry_after`


class InternalError(JobsvcError):
    code = "internal_error"  # 500


class TransientError(JobsvcError):
    """The service did not answer this time, but may well shortly (a web restarting behind a
    proxy, a full queue, Redis failing over): `wait` and `events` try again through these."""

    code = "transient"


class BadGateway(TransientError):
    code = "bad_gateway"  # 502: from a proxy in front of the service, whose web is down or restarting


class Unavailable(TransientError):
    code = "unavailable"  # 503: a queue is full; see `retry_after`


class GatewayTimeout(TransientError):
    code = "gateway_timeout"  # 504: from a proxy in front of the service, whose web did not answer in time


class RedisUnavailable(Unavailable):
    code = "redis_unavailable"  # 503: the service's Redis does not answer; retry shortly


class RedisFull(Unavailable):
    code = "redis_full"  # 503: the service's Redis is out of memory and refused the write; see `retry_after`


class RedisDiskError(Unavailable):
    code = "redis_disk_error"  # 503: the service's Redis cannot save to disk and refused the write


class ServiceUnreachable(TransientError):
    """No HTTP answer at all: connection refused, reset or timed out."""

    code = "unreachable"


class WaitTimeout(JobsvcError, TimeoutError):
    """`wait` ran out of time; `job` is the job as last seen."""

    code = "wait_timeout"

    def __init__(self, message: str, job=None):
        super().__init__(message)
        self.job = job


_BY_CODE = {cls.code: cls for cls in JobsvcError.__subclasses__() + TransientError.__subclasses__()} | {
    "redis_unavailable": RedisUnavailable,
    "redis_full": RedisFull,
    "redis_disk_error": RedisDiskError,
    "request_entity_too_large": PayloadTooLarge,
}
_BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed, 409: Conflict,
              413: PayloadTooLarge, 415: UnsupportedMediaType, 422: ValidationError, 429: RateLimited,
              500: InternalError, 502: BadGateway, 503: Unavailable, 504: GatewayTimeout}  # fmt: skip


def error_for(status: int, body: Any, headers: Any = None) -> JobsvcError:
    """The exception for an error answer: by its code, else by its status."""
    info = body.get("error") if isinstance(body, dict) else None
    info = info if isinstance(info, dict) else {}
    code = info.get("code") if isinstance(info.get("code"), str) else None
    message = info.get("message") if isinstance(info.get("message"), str) else f"HTTP {status}"
    retry_after = None
    if headers is not None and headers.get("Retry-After"):
        try:
            retry_after = float(headers["Retry-After"])
        except ValueError:
            pass
    kind = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or JobsvcError
    return kind(message, status=status, code=code, details=info.get("details"), retry_after=retry_after)
