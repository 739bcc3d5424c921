"""The read side of the JSON API: list and inspect jobs, queues, workers and job types.

The views are registered on the `api` blueprint (`/api`); each carries its OpenAPI operation.
"""

from __future__ import annotations

from flask import current_app

from webapp import listing, models, overview
from webapp.api import bp
from webapp.catalog import effective_options
from webapp.errors import ValidationFailed
from webapp.openapi import parse_query, respond, spec
from webapp.service import get_service


@bp.get("/jobs")
@spec(
    "listJobs",
    summary="Jobs newest first, filtered by status, queue and name, one page at a time.",
    query=models.JobListQuery,
    responses={200: models.JobPage, 400: None, 422: None},
)
def list_jobs():
    """A page of jobs; follow `next_cursor` until it is null (a page may hold fewer than `limit`)."""
    query = parse_query(models.JobListQuery)
    service = get_service()
    if query.queue is not None and query.queue not in service.queues:
        raise ValidationFailed(f"unknown queue {query.queue!r}: configured queues are {', '.join(service.queues)}")
    if query.name is not None and query.name not in service.catalog:
        raise ValidationFailed(f"unknown job name {query.name!r}: valid names are {', '.join(sorted(service.catalog))}")
    lister = listing.JobLister(service.connection, service.names_by_path, service.queues, service.catalog)
    page = lister.page(
        limit=query.limit,
        cursor=query.cursor,
        status=query.status,
        queue=query.queue,
        name=query.name,
        owner=service.listing_owner(),  # with API keys: a client lists only its own jobs
        scan_factor=current_app.config["LISTING_SCAN_FACTOR"],
    )
    return respond(models.JobPage, page, exclude={"jobs": {"__all__": {"attempts"}}})


@bp.get("/jobs/<job_id>")
@spec(
    "getJob",
    summary="A job's status, progress, result or error, description and attempts.",
    responses={200: models.JobView, 404: None},
)
def get_job(job_id: str):
    """A job's status, progress, result or error, and each attempt from RQ's result history."""
    return respond(models.JobView, get_service().describe(job_id))


@bp.get("/queues")
@spec("listQueues", summary="Jobs per state in each configured queue.", responses={200: models.QueueList}, tag="ops")
def list_queues():
    """Counts per state (queued, started, finished, failed, canceled, scheduled, deferred) per queue."""
    service = get_service()
    return respond(models.QueueList, {"queues": overview.queue_counts(service.connection, service.queues)})


@bp.get("/workers")
@spec(
    "listWorkers",
    summary="The registered workers and what they are doing.",
    responses={200: models.WorkerList},
    tag="ops",
)
def list_workers():
    """Each worker: state, queues, current job, success and failure counts, last heartbeat."""
    return respond(models.WorkerList, {"workers": overview.workers(get_service().connection)})


@bp.get("/functions")
@spec(
    "listFunctions",
    summary="The job types that can be submitted: arguments schema and default options.",
    responses={200: models.FunctionList},
)
def list_functions():
    """The job types that can be submitted, with the JSON Schema of their arguments."""
    service = get_service()
    functions = [
        {
            "name": job_type.name,
            "summary": job_type.summary,
            "parameters": job_type.schema(),
            "options": effective_options(job_type, service.config),
        }
        for job_type in service.catalog.values()
    ]
    return respond(models.FunctionList, {"functions": functions})
