"""The JSON API: submit jobs (one or a batch), read, cancel and retry them, list the catalog.

Requests are validated with the models in `webapp.models` before anything touches Redis:
malformed JSON → 400, anything else wrong → 422 naming the field. Every POST must declare
`Content-Type: application/json` (415 otherwise): besides being the truth, that is the API's
CSRF defence, since a cross-site HTML form or a "simple" cross-origin request cannot send it.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from webapp import auth, models
from webapp.errors import APIError, BadRequest, UnsupportedMediaType, ValidationFailed
from webapp.models import BatchRequest, RetryRequest, SubmitRequest
from webapp.openapi import IDEMPOTENCY_KEY, LOCATION, spec
from webapp.service import fingerprint_of, get_service

bp = Blueprint("api", __name__, url_prefix="/api")

SUBMISSION_FIELDS = tuple(SubmitRequest.model_fields)
MAX_IDEMPOTENCY_KEY = IDEMPOTENCY_KEY["Idempotency-Key"]["schema"]["maxLength"]
# Every /api answer may be 401 once API keys are configured; every POST may be 415.
WRITE_ERRORS = {400: None, 401: None, 413: None, 415: None, 422: None}


@bp.before_request
def check_request():
    """Authenticate (when keys are configured), then insist that POST bodies are JSON."""
    auth.authenticate()
    if request.method in ("POST", "PUT", "PATCH") and request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: application/json' (got {request.mimetype or 'none'!r})"
        )


def _where(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validation_error(exc: ValidationError) -> APIError:
    """pydantic's errors as the API's: `json_invalid` → 400, the rest → 422 naming each field."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    invalid = [err for err in errors if err["type"] == "json_invalid"]
    if invalid:
        return BadRequest(f"request body is not valid JSON: {invalid[0]['msg']}")
    details = []
    for err in errors:
        where = _where(err["loc"]) or "body"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown option: a submission has {', '.join(SUBMISSION_FIELDS)}"
        elif err["loc"] and err["loc"][-1] == "name" and len(err["loc"]) <= 3:
            names = ", ".join(sorted(get_service().catalog))
            message = f"unknown job name: valid names are listed at GET /api/functions ({names})"
        elif err["type"] == "model_type" and not err["loc"]:
            message = "request body must be a JSON object"
        details.append({"argument": where, "message": message, "type": err["type"]})
    summary = "; ".join(f"{d['argument']}: {d['message']}" for d in details)
    return ValidationFailed(summary, details=details)


def _body() -> bytes:
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


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ValidationFailed(f"Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
    return key


def _enqueue(planned: list, body: BaseModel, route: str):
    """Enqueue for the caller, under its Idempotency-Key if it sent one (the body's
    fingerprint is only computed then)."""
    key = _idempotency_key()
    return get_service().enqueue(
        planned,
        auth.principal(),
        client=request.remote_addr or "",
        idempotency_key=key,
        fingerprint=fingerprint_of(body.model_dump(mode="json"), route) if key is not None else "",
    )


def _submitted(entry: dict) -> dict:
    return {**entry, "url": url_for("api.get_job", job_id=entry["id"])}


@bp.post("/jobs")
@spec(
    "submitJob",
    summary="Enqueue an allow-listed job: 202 with its id and a Location to poll (200: a replayed Idempotency-Key).",
    body=models.SubmitRequest,
    headers=IDEMPOTENCY_KEY,
    responses={200: models.Submitted, 202: models.Submitted, **WRITE_ERRORS, 409: None, 429: None, 503: None},
    response_headers={202: LOCATION, 200: LOCATION},
)
def submit_job():
    """Enqueue an allow-listed job: 202 with its id and a Location to poll (200 for a replay)."""
    try:
        submission = SubmitRequest.model_validate_json(_body())
    except ValidationError as exc:
        raise validation_error(exc) from None
    result = _enqueue([get_service().plan(submission)], submission, "jobs")
    body = _submitted(result.jobs[0])
    response = jsonify(body)
    response.status_code = 200 if result.replayed else 202
    response.headers["Location"] = body["url"]
    return response


@bp.post("/jobs/batch")
@spec(
    "submitBatch",
    summary="Enqueue several jobs at once, validated all-or-nothing (200: a replayed Idempotency-Key).",
    body=models.BatchRequest,
    headers=IDEMPOTENCY_KEY,
    responses={200: models.BatchSubmitted, 202: models.BatchSubmitted, **WRITE_ERRORS, 409: None, 429: None, 503: None},
)
def submit_batch():
    """Validate every job first (422 lists each bad item and field), then enqueue them all at once."""
    try:
        batch = BatchRequest.model_validate_json(_body())
    except ValidationError as exc:
        raise validation_error(exc) from None
    service = get_service()
    limit = current_app.config["MAX_BATCH"]
    if len(batch.jobs) > limit:
        raise ValidationFailed(f"jobs: at most {limit} jobs per batch (MAX_BATCH); {len(batch.jobs)} given")
    planned, problems = [], []
    for index, submission in enumerate(batch.jobs):
        try:
            planned.append(service.plan(submission))
        except APIError as exc:
            for detail in exc.details or [{"argument": None, "message": exc.message, "type": exc.code}]:
                argument = f"jobs[{index}]" + (f".{detail['argument']}" if detail.get("argument") else "")
                problems.append({"argument": argument, "message": detail["message"], "type": detail.get("type")})
    if problems:
        summary = "; ".join(f"{p['argument']}: {p['message']}" for p in problems)
        raise ValidationFailed(f"nothing was enqueued: {summary}", details=problems)
    result = _enqueue(planned, batch, "jobs/batch")
    response = jsonify({"jobs": [_submitted(entry) for entry in result.jobs]})
    response.status_code = 200 if result.replayed else 202
    return response


@bp.delete("/jobs/<job_id>")
@spec(
    "cancelJob",
    summary="Cancel a queued, scheduled or deferred job (200); ask the worker to stop a running one (202).",
    responses={200: models.JobView, 202: models.JobView, 401: None, 404: None, 409: None},
)
def cancel_job(job_id: str):
    """Cancel a queued, scheduled or deferred job (200); ask the worker to stop a running one (202)."""
    view, stopping = get_service().cancel(job_id, auth.principal())
    response = jsonify(view)
    response.status_code = 202 if stopping else 200
    return response


@bp.post("/jobs/<job_id>/retry")
@spec(
    "retryJob",
    summary="Requeue a failed, stopped or canceled job under the same id.",
    body=models.RetryRequest,
    responses={202: models.Submitted, **WRITE_ERRORS, 404: None, 409: None},
    response_headers={202: LOCATION},
)
def retry_job(job_id: str):
    """Requeue a failed, stopped or canceled job under the same id: 202."""
    raw = request.get_data(cache=True)
    if raw.strip():
        try:
            RetryRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_error(exc) from None
    response = jsonify(_submitted(get_service().retry(job_id, auth.principal())))
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_job", job_id=job_id)
    return response
