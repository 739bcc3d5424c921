"""The schedules API: periodic jobs, created, changed, paused, run and deleted at runtime.

Bodies are validated with the models of `webapp.service.schedule_models` before anything
touches Redis (malformed JSON → 400, anything else wrong → 422 naming the field); the
schedule's job is checked by the same planner as `POST /api/jobs`. Every operation passes the
caller to the service: with API keys, a key sees and changes only its own schedules.
"""

from __future__ import annotations

from flask import Blueprint, url_for
from pydantic import BaseModel, ValidationError

from webapp.infra.errors import BadRequest, ValidationFailed
from webapp.service.schedule_models import RunNowRequest, ScheduleCreate, SchedulePatch
from webapp.service.validation import details_of, summary
from webapp.web import schemas
from webapp.web.api.requests import WRITE_ERRORS, optional_body, read_body
from webapp.web.auth import caller
from webapp.web.extensions import get_schedules
from webapp.web.openapi import respond, spec

bp = Blueprint("schedules", __name__, url_prefix="/api")

SCHEDULE_LOCATION = {"Location": {"description": "URL of the schedule.", "schema": {"type": "string"}}}


def _parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        details = details_of(exc)
        invalid = [detail for detail in details if detail["type"] == "json_invalid"]
        if invalid:
            raise BadRequest(f"request body is not valid JSON: {invalid[0]['message']}") from None
        for detail in details:
            if detail["type"] == "model_type" and detail["argument"] == "body":
                detail["message"] = "request body must be a JSON object"
            elif detail["type"] == "extra_forbidden":
                detail["message"] = "unknown field"
        raise ValidationFailed(summary(details), details=details) from None


@bp.get("/schedules")
@spec(
    "listSchedules",
    summary="Every periodic schedule (with API keys: the caller's own), with next run and latest runs.",
    responses={200: schemas.ScheduleList, 401: None},
    tag="schedules",
)
def list_schedules():
    """Every schedule the caller may see, by name."""
    return respond(schemas.ScheduleList, {"schedules": get_schedules().list(caller())})


@bp.post("/schedules")
@spec(
    "createSchedule",
    summary="Create a schedule: a job and a cron expression or an interval (201).",
    body=ScheduleCreate,
    responses={201: schemas.ScheduleView, **WRITE_ERRORS, 409: None},
    response_headers={201: SCHEDULE_LOCATION},
    tag="schedules",
)
def create_schedule():
    """Create a schedule; 409 if its name is taken."""
    body = _parse(ScheduleCreate, read_body())
    view = get_schedules().create(body, caller())
    response = respond(schemas.ScheduleView, view, status=201)
    response.headers["Location"] = url_for("schedules.get_schedule", name=view["name"])
    return response


@bp.get("/schedules/<name>")
@spec(
    "getSchedule",
    summary="One schedule: definition, state, next run and latest runs with their jobs' status.",
    responses={200: schemas.ScheduleView, 401: None, 404: None},
    tag="schedules",
)
def get_schedule(name: str):
    return respond(schemas.ScheduleView, get_schedules().get(name, caller()))


@bp.patch("/schedules/<name>")
@spec(
    "updateSchedule",
    summary='Change any field of a schedule, e.g. {"paused": true}; a new timing restarts its ticks from now.',
    body=SchedulePatch,
    responses={200: schemas.ScheduleView, **WRITE_ERRORS, 404: None, 409: None},
    tag="schedules",
)
def update_schedule(name: str):
    patch = _parse(SchedulePatch, read_body())
    return respond(schemas.ScheduleView, get_schedules().update(name, patch, caller()))


@bp.delete("/schedules/<name>")
@spec(
    "deleteSchedule",
    summary="Delete a schedule and its history (its jobs stay) (204).",
    responses={204: None, 401: None, 404: None, 409: None},
    tag="schedules",
)
def delete_schedule(name: str):
    get_schedules().delete(name, caller())
    return "", 204


@bp.post("/schedules/<name>/run")
@spec(
    "runSchedule",
    summary="Enqueue one run of the schedule now (202 with the job), also while it is paused.",
    body=RunNowRequest,
    body_required=False,
    responses={202: schemas.ScheduleRunStarted, **WRITE_ERRORS, 404: None, 409: None, 503: None},
    response_headers={202: {"Location": {"description": "URL of the job.", "schema": {"type": "string"}}}},
    tag="schedules",
)
def run_schedule(name: str):
    optional_body(RunNowRequest)
    started = get_schedules().run_now(name, caller())
    url = url_for("jobs.get_job", job_id=started["id"])
    response = respond(schemas.ScheduleRunStarted, {**started, "url": url}, status=202)
    response.headers["Location"] = url
    return response
