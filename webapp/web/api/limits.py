"""The limits API: each active concurrency/rate limit key, its running and parked jobs."""

from __future__ import annotations

from flask import Blueprint

from webapp.service import limits
from webapp.web import schemas
from webapp.web.auth import caller
from webapp.web.extensions import get_service
from webapp.web.openapi import respond, spec

bp = Blueprint("limits", __name__, url_prefix="/api")


@bp.get("/limits")
@spec(
    "listLimits",
    summary="Each limit key with jobs running or parked: running and waiting counts, concurrency and rate.",
    responses={200: schemas.LimitsView},
    tag="ops",
)
def list_limits():
    """Owner keys see their own keys and the job types' shared ones; other readers see all."""
    service = get_service()
    return respond(schemas.LimitsView, {"limits": limits.visible(service.connection, caller(), service.catalog)})
