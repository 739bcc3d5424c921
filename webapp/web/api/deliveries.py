"""A job's webhook deliveries: the log of every attempt, and delivering an ended one again.

Ownership is the job's: a caller that may not see the job gets 404 for its deliveries too.
"""

from __future__ import annotations

from flask import Blueprint, request
from pydantic import ValidationError

from webapp.service.deliveries import DeliveryLog
from webapp.service.submission import Strict
from webapp.store.webhooks import Outbox
from webapp.web import schemas
from webapp.web.api.requests import WRITE_ERRORS, validation_error
from webapp.web.auth import caller
from webapp.web.extensions import get_service
from webapp.web.openapi import respond, spec

bp = Blueprint("deliveries", __name__, url_prefix="/api")


class RedeliverRequest(Strict):
    """`POST /api/jobs/<id>/deliveries/<delivery_id>/redeliver`: no options; send `{}` (or no body)."""


def _log() -> DeliveryLog:
    service = get_service()
    return DeliveryLog(Outbox(service.connection), service.check_visible)


@bp.get("/jobs/<job_id>/deliveries")
@spec(
    "listDeliveries",
    summary="The job's webhook deliveries, oldest first, each with its attempts.",
    responses={200: schemas.DeliveryList, 401: None, 404: None},
)
def list_deliveries(job_id: str):
    """Every delivery of the job's webhook, with each attempt's status or error."""
    return respond(schemas.DeliveryList, {"deliveries": _log().of_job(job_id, caller())})


@bp.post("/jobs/<job_id>/deliveries/<delivery_id>/redeliver")
@spec(
    "redeliver",
    summary="Deliver a delivered or failed webhook delivery again, with a new retry window (202).",
    body=RedeliverRequest,
    responses={202: schemas.Delivery, **WRITE_ERRORS, 404: None, 409: None},
)
def redeliver(job_id: str, delivery_id: str):
    """Send an ended delivery again (same id and body); 409 while it is still under way."""
    raw = request.get_data(cache=True)
    if raw.strip():
        try:
            RedeliverRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_error(exc) from None
    return respond(schemas.Delivery, _log().redeliver(job_id, delivery_id, caller()), status=202)
