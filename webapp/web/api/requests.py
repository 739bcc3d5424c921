"""What every JSON API route shares: JSON bodies, their validation errors, the Idempotency-Key.

`require_json_bodies` runs for every request under /api (an app-wide hook, like the
authentication gate), so a route added later cannot forget it: a POST, PUT or PATCH must
declare `Content-Type: application/json` (415 otherwise). Besides being the truth, that is
the API's CSRF defence, since a cross-site HTML form or a "simple" cross-origin request
cannot send it.
"""

from __future__ import annotations

import re

from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from webapp.infra import tracing
from webapp.infra.errors import APIError, BadRequest, UnsupportedMediaType, ValidationFailed
from webapp.service.submission import SubmitRequest
from webapp.service.submit import fingerprint_of
from webapp.service.validation import details_of, summary
from webapp.web.auth import caller, is_api_path
from webapp.web.extensions import get_service
from webapp.web.openapi import IDEMPOTENCY_KEY_PATTERN

SUBMISSION_FIELDS = tuple(SubmitRequest.model_fields)
# Options that are objects of their own: an unknown field inside one is not an unknown option.
OPTION_OBJECTS = ("retry", "backoff", "depends_on", "webhook")
IDEMPOTENCY_KEY_FORM = re.compile(IDEMPOTENCY_KEY_PATTERN)
# Every /api answer may be 401 once API keys are configured; every POST may be 415.
WRITE_ERRORS = {400: None, 401: None, 413: None, 415: None, 422: None}


def require_json_bodies():
    """Bodies sent to /api must be declared as JSON (a method the route does not take is a 405 first).

    A POST without a body (cancel, retry) needs no Content-Type; cross-site requests of any kind
    are refused by their Origin before this (webapp/web/security.py).
    """
    if request.routing_exception is not None or not is_api_path(request.path):
        return
    chunked = request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    has_body = bool(request.content_length) or chunked
    if request.method in ("POST", "PUT", "PATCH") and has_body and request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: application/json' (got {request.mimetype or 'none'!r})"
        )


def validation_error(exc: ValidationError) -> APIError:
    """pydantic's errors as the API's: `json_invalid` → 400, the rest → 422 naming each field."""
    details = details_of(exc)
    invalid = [detail for detail in details if detail["type"] == "json_invalid"]
    if invalid:
        return BadRequest(f"request body is not valid JSON: {invalid[0]['message']}")
    loc_names = [err["loc"] for err in exc.errors(include_url=False)]
    for detail, loc in zip(details, loc_names, strict=True):
        if detail["type"] == "extra_forbidden" and not any(part in OPTION_OBJECTS for part in loc[:-1]):
            detail["message"] = f"unknown option: a submission has {', '.join(SUBMISSION_FIELDS)}"
        elif loc and loc[-1] == "name" and len(loc) <= 3:
            names = ", ".join(sorted(get_service().catalog))
            detail["message"] = f"unknown job name: valid names are listed at GET /api/functions ({names})"
        elif detail["type"] == "model_type" and not loc:
            detail["message"] = "request body must be a JSON object"
    return ValidationFailed(summary(details), details=details)


def read_body() -> bytes:
    """The raw body, at most MAX_CONTENT_LENGTH bytes, whether or not it came with a length."""
    limit = request.max_content_length
    if request.content_length is None and limit is not None and request.environ.get("wsgi.input_terminated"):
        # A chunked body: Werkzeug would cut it at the limit without a word (and the JSON
        # would then look malformed), so read one byte more and tell the client the truth.
        raw = request.environ["wsgi.input"].read(limit + 1)
        if len(raw) > limit:
            raise RequestEntityTooLarge(f"the request body is larger than {limit} bytes (MAX_CONTENT_LENGTH)")
    else:
        raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest("request body is empty: send a JSON object")
    return raw


def optional_body(model: type[BaseModel]) -> BaseModel | None:
    """The body validated with `model`, or None when the request has none (whitespace is not none)."""
    raw = request.get_data(cache=True)
    if not raw:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_FORM.fullmatch(key):
        raise ValidationFailed("Idempotency-Key: 1 to 200 printable ASCII characters")
    return key


def enqueue(planned: list, body: BaseModel, route: str):
    """Enqueue for the caller, under its Idempotency-Key if it sent one (the body's
    fingerprint is only computed then)."""
    key = idempotency_key()
    with tracing.submit_span(request.headers, route) as traceparent:
        if traceparent is not None:  # the jobs continue the request's trace (README "OpenTelemetry")
            for plan in planned:
                plan.meta["traceparent"] = traceparent
        return get_service().enqueue(
            planned,
            caller(),
            client=request.remote_addr or "",
            idempotency_key=key,
            fingerprint=fingerprint_of(body.model_dump(mode="json"), route) if key is not None else "",
        )
