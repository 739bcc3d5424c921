"""The jobs API: submit jobs (one or a batch), list and read them, cancel and retry them.

Requests are validated with the models in `webapp.service.submission` before anything
touches Redis: malformed JSON → 400, anything else wrong → 422 naming the field.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, url_for
from pydantic import ValidationError

from webapp.infra.errors import APIError, ValidationFailed
from webapp.service.access import owner_filter
from webapp.service.schedule_models import valid_name
from webapp.service.submission import BatchRequest, NoOptions, SubmitRequest
from webapp.store import listing
from webapp.web import schemas
from webapp.web.api.requests import WRITE_ERRORS, enqueue, optional_body, read_body, validation_error
from webapp.web.audit import SUBMISSIONS, not_audited
from webapp.web.auth import caller
from webapp.web.extensions import get_service
from webapp.web.openapi import IDEMPOTENCY_KEY, LOCATION, parse_query, respond, spec

bp = Blueprint("jobs", __name__, url_prefix="/api")


def _submitted(entry: dict) -> dict:
    return {**entry, "url": url_for("jobs.get_job", job_id=entry["id"])}


@bp.post("/jobs")
@not_audited(SUBMISSIONS)
@spec(
    "submitJob",
    summary="Enqueue an allow-listed job: 202 with its id and a Location to poll (200: a replayed Idempotency-Key).",
    body=SubmitRequest,
    headers=IDEMPOTENCY_KEY,
    responses={
        200: schemas.Submitted,
        202: schemas.Submitted,
        **WRITE_ERRORS,
        404: None,
        409: None,
        429: None,
        503: None,
    },
    response_headers={202: LOCATION, 200: LOCATION},
)
def submit_job():
    """Enqueue an allow-listed job: 202 with its id and a Location to poll (200 for a replay)."""
    try:
        submission = SubmitRequest.model_validate_json(read_body())
    except ValidationError as exc:
        raise validation_error(exc) from None
    result = enqueue([get_service().plan(submission)], submission, "jobs")
    answer = _submitted(result.jobs[0])
    response = jsonify(answer)
    response.status_code = 200 if result.replayed else 202
    response.headers["Location"] = answer["url"]
    return response


@bp.post("/jobs/batch")
@not_audited(SUBMISSIONS)
@spec(
    "submitBatch",
    summary="Enqueue several jobs at once, validated all-or-nothing (200: a replayed Idempotency-Key).",
    body=BatchRequest,
    headers=IDEMPOTENCY_KEY,
    responses={
        200: schemas.BatchSubmitted,
        202: schemas.BatchSubmitted,
        **WRITE_ERRORS,
        404: None,
        409: None,
        429: None,
        503: None,
    },
)
def submit_batch():
    """Validate every job first (422 lists each bad item and field), then enqueue them all at once."""
    try:
        batch = BatchRequest.model_validate_json(read_body())
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
    result = enqueue(planned, batch, "jobs/batch")
    response = jsonify({"jobs": [_submitted(entry) for entry in result.jobs]})
    response.status_code = 200 if result.replayed else 202
    return response


@bp.get("/jobs")
@spec(
    "listJobs",
    summary="Jobs newest first, filtered by status, queue, name and schedule, one page at a time.",
    query=schemas.JobListQuery,
    responses={200: schemas.JobPage, 400: None, 422: None},
)
def list_jobs():
    """A page of jobs; follow `next_cursor` until it is null (a page may hold fewer than `limit`)."""
    query = parse_query(schemas.JobListQuery)
    service = get_service()
    if query.queue is not None and query.queue not in service.queues:
        raise ValidationFailed(f"unknown queue {query.queue!r}: configured queues are {', '.join(service.queues)}")
    if query.name is not None and query.name not in service.catalog:
        raise ValidationFailed(f"unknown job name {query.name!r}: valid names are {', '.join(sorted(service.catalog))}")
    if query.schedule is not None and not valid_name(query.schedule):
        raise ValidationFailed(f"schedule: {query.schedule!r} is not a schedule name (letters, digits, '_', '.', '-')")
    lister = listing.JobLister(service.connection, service.names_by_path, service.queues, service.catalog)
    page = lister.page(
        limit=query.limit,
        cursor=query.cursor,
        status=query.status,
        queue=query.queue,
        name=query.name,
        schedule=query.schedule,
        owner=owner_filter(caller()),  # with API keys: a client lists only its own jobs
        scan_factor=current_app.config["LISTING_SCAN_FACTOR"],
    )
    return respond(schemas.JobPage, page, exclude={"jobs": {"__all__": {"attempts", "retry"}}})


@bp.get("/jobs/<job_id:job_id>")
@spec(
    "getJob",
    summary="A job's status, progress, result or error, description and attempts.",
    responses={200: schemas.JobView, 404: None},
)
def get_job(job_id: str):
    """A job's status, progress, result or error, and each attempt from RQ's result history."""
    return respond(schemas.JobView, get_service().describe(job_id, caller()))


@bp.post("/jobs/<job_id:job_id>/cancel")
@spec(
    "cancelJob",
    summary="Cancel a queued, scheduled or deferred job (200); ask the worker to stop a running one (202).",
    body=NoOptions,
    body_required=False,
    responses={200: schemas.JobView, 202: schemas.JobView, **WRITE_ERRORS, 404: None, 409: None},
)
def cancel_job(job_id: str):
    """Cancel a queued, scheduled or deferred job (200); ask the worker to stop a running one (202)."""
    optional_body(NoOptions)
    view, stopping = get_service().cancel(job_id, caller())
    response = jsonify(view)
    response.status_code = 202 if stopping else 200
    return response


@bp.delete("/jobs/<job_id:job_id>")
@spec(
    "deleteJob",
    summary="Delete a job that is not running, with its result and timeline (204); a running one is a 409.",
    responses={204: None, 401: None, 404: None, 409: None},
)
def delete_job(job_id: str):
    """Delete a job that is not running (204): cancel a running one first."""
    get_service().delete(job_id, caller())
    return "", 204


@bp.post("/jobs/<job_id:job_id>/retry")
@spec(
    "retryJob",
    summary="Requeue a failed, stopped or canceled job under the same id.",
    body=NoOptions,
    body_required=False,
    responses={202: schemas.Submitted, **WRITE_ERRORS, 404: None, 409: None},
    response_headers={202: LOCATION},
)
def retry_job(job_id: str):
    """Requeue a failed, stopped or canceled job under the same id: 202."""
    optional_body(NoOptions)
    response = jsonify(_submitted(get_service().retry(job_id, caller())))
    response.status_code = 202
    response.headers["Location"] = url_for("jobs.get_job", job_id=job_id)
    return response
