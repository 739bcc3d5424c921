"""The cluster API: queues (jobs per state) and workers (state, current job, counts)."""

from __future__ import annotations

from flask import Blueprint

from webapp.store import overview
from webapp.web import schemas
from webapp.web.extensions import get_service
from webapp.web.openapi import respond, spec

bp = Blueprint("cluster", __name__, url_prefix="/api")


@bp.get("/queues")
@spec("listQueues", summary="Jobs per state in each configured queue.", responses={200: schemas.QueueList}, tag="ops")
def list_queues():
    """Counts per state (queued, started, finished, failed, canceled, scheduled, deferred) per queue."""
    service = get_service()
    return respond(schemas.QueueList, {"queues": overview.queue_counts(service.connection, service.queues)})


@bp.get("/workers")
@spec(
    "listWorkers",
    summary="The registered workers and what they are doing.",
    responses={200: schemas.WorkerList},
    tag="ops",
)
def list_workers():
    """Each worker: state, queues, current job, success and failure counts, last heartbeat."""
    return respond(schemas.WorkerList, {"workers": overview.workers(get_service().connection)})
