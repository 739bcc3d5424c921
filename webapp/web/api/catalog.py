"""The catalog API: the job types that can be submitted, with their argument schemas."""

from __future__ import annotations

from flask import Blueprint

from webapp.service.catalog import effective_options
from webapp.web import schemas
from webapp.web.extensions import get_service
from webapp.web.openapi import respond, spec

bp = Blueprint("catalog", __name__, url_prefix="/api")


@bp.get("/functions")
@spec(
    "listFunctions",
    summary="The job types that can be submitted: arguments schema and default options.",
    responses={200: schemas.FunctionList},
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
    return respond(schemas.FunctionList, {"functions": functions})
