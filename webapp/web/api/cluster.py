"""The cluster API: queues (jobs per state, depth, oldest wait, paused) and workers (state,
current job, counts); pausing and resuming a queue (admin keys)."""

from __future__ import annotations

from flask import Blueprint

from webapp.service.access import ADMIN
from webapp.service.submission import NoOptions
from webapp.web import schemas
from webapp.web.api.requests import WRITE_ERRORS, optional_body
from webapp.web.auth import caller, requires
from webapp.web.extensions import get_queues, get_service
from webapp.web.openapi import respond, spec

bp = Blueprint("cluster", __name__, url_prefix="/api")


@bp.get("/queues")
@spec(
    "listQueues",
    summary="Each configured queue: jobs per state, depth, the wait of its oldest queued job, whether it is paused.",
    responses={200: schemas.QueueList},
    tag="ops",
)
def list_queues():
    """Counts per state, depth, oldest wait (s) and pause state per queue, in priority order."""
    return respond(schemas.QueueList, {"queues": get_queues().list()})


@bp.post("/queues/<queue_name>/pause")
@requires(ADMIN)
@spec(
    "pauseQueue",
    summary="Pause a queue (admin): submissions are still accepted and kept, no worker takes its jobs, "
    "running jobs finish. Pausing a paused queue changes nothing.",
    body=NoOptions,
    body_required=False,
    responses={200: schemas.QueueView, **WRITE_ERRORS, 403: None, 404: None},
    tag="ops",
)
def pause_queue(queue_name: str):
    """Pause `queue_name`; 200 with its state."""
    optional_body(NoOptions)
    _, view = get_queues().set_paused(caller(), queue_name, True)
    return respond(schemas.QueueView, view)


@bp.post("/queues/<queue_name>/resume")
@requires(ADMIN)
@spec(
    "resumeQueue",
    summary="Resume a paused queue (admin): idle workers start on its jobs at once. Resuming a queue "
    "that is not paused changes nothing.",
    body=NoOptions,
    body_required=False,
    responses={200: schemas.QueueView, **WRITE_ERRORS, 403: None, 404: None},
    tag="ops",
)
def resume_queue(queue_name: str):
    """Resume `queue_name`; 200 with its state."""
    optional_body(NoOptions)
    _, view = get_queues().set_paused(caller(), queue_name, False)
    return respond(schemas.QueueView, view)


@bp.get("/workers")
@spec(
    "listWorkers",
    summary="The registered workers and what they are doing.",
    responses={200: schemas.WorkerList},
    tag="ops",
)
def list_workers():
    """Each worker: state, queues, current job, success and failure counts, last heartbeat."""
    return respond(schemas.WorkerList, {"workers": get_service().workers(caller())})
