"""The JSON API: submit jobs, read them back, list the catalog."""

from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for

from webapp.errors import BadRequest, ValidationFailed
from webapp.service import get_service

bp = Blueprint("api", __name__, url_prefix="/api")

SUBMISSION_FIELDS = {"name", "args", "kwargs", "queue"}


def json_body() -> dict:
    """The request's JSON object; malformed JSON → 400, any other JSON value → 422."""
    body = request.get_json(force=True, silent=True, cache=True)
    if body is None:
        if not request.get_data(cache=True):
            raise BadRequest("request body is empty: send a JSON object")
        raise BadRequest("request body is not valid JSON")
    if not isinstance(body, dict):
        raise ValidationFailed("request body must be a JSON object")
    return body


@bp.post("/jobs")
def submit_job():
    """Enqueue an allow-listed job: 202 with its id and a Location to poll."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:  # as documented in the OpenAPI contract
        raise ValidationFailed("the Idempotency-Key header must be 1 to 200 characters")
    body = json_body()
    unknown = sorted(set(body) - SUBMISSION_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"unknown field(s) {', '.join(unknown)}: a submission has {', '.join(sorted(SUBMISSION_FIELDS))}"
        )
    service = get_service()
    job = service.submit(body.get("name"), body.get("args"), body.get("kwargs"), body.get("queue"))
    location = url_for("api.get_job", job_id=job.id)
    response = jsonify({"id": job.id, "status": "queued", "name": body["name"], "queue": job.origin, "url": location})
    response.status_code = 202
    response.headers["Location"] = location
    return response
