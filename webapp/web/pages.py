"""The web UI (overview charts, catalog with forms, job page, job list, schedules, audit log) and the
tutorial's two demos.

Pages are rendered on the server; small static scripts (webapp/static) submit the forms to
the JSON API and follow jobs over its server-sent event streams. No page carries inline
script: the data a script needs travels in `data-` attributes or a JSON `<script>` block.
With API keys set, the gate (webapp/web/auth.py) sends visitors without a session to the
sign-in page, and each page shows what the signed-in key may see.
"""

from __future__ import annotations

import random
from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for

from webapp.infra.errors import NotFound
from webapp.service.access import ADMIN
from webapp.store.states import STATUSES
from webapp.web.audit import SUBMISSIONS, not_audited
from webapp.web.auth import caller, changes_state, requires
from webapp.web.extensions import get_redis, get_service
from webapp.web.security import require_same_origin

bp = Blueprint("pages", __name__)

INPUT_TYPES = {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean"}


def form_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One form field per parameter of a job type's JSON Schema, in signature order.

    `kind` is integer, number, string or boolean; any other schema (lists, unions, objects)
    becomes a JSON text area whose value the page parses before it submits.
    """
    required = set(schema.get("required", ()))
    fields = []
    for name, spec in schema.get("properties", {}).items():
        kind = INPUT_TYPES.get(spec.get("type"), "json")
        fields.append(
            {
                "name": name,
                "label": spec.get("title") or name,
                "kind": kind,
                "required": name in required,
                "default": spec.get("default"),
                "minimum": spec.get("minimum", spec.get("exclusiveMinimum")),
                "maximum": spec.get("maximum", spec.get("exclusiveMaximum")),
                "description": spec.get("description"),
            }
        )
    return fields


def catalog_forms() -> list[dict[str, Any]]:
    """The catalog as forms; built once per app (the catalog is fixed at start-up)."""
    forms = current_app.extensions.get("catalog_forms")
    if forms is None:
        forms = [
            {"name": jt.name, "summary": jt.summary, "fields": form_fields(jt.schema())}
            for jt in get_service().catalog.values()
        ]
        current_app.extensions["catalog_forms"] = forms
    return forms


@bp.get("/")
def index():
    service = get_service()
    return render_template(
        "index.html",
        catalog=catalog_forms(),
        queues=list(service.queues),
        default_queue=current_app.config["DEFAULT_QUEUE"],
    )


@bp.get("/jobs/<job_id:job_id>")
def job_page(job_id: str):
    """One job, followed live over its event stream; with keys set, only a job the signed-in key may see."""
    try:
        job = get_service().describe(job_id, caller())
    except NotFound as exc:
        return render_template("not_found.html", message=exc.message), 404
    return render_template("job.html", job=job)


@bp.get("/overview")
def overview():
    """Charts of the last hour (or day): throughput, failures, queue depth and wait, workers."""
    return render_template("overview.html", queues=list(get_service().queues))


@bp.get("/audit")
@requires(ADMIN)
def audit_page():
    """The audit log, newest first, filtered; the rows are fetched from GET /api/audit."""
    filters = {key: request.args.get(key, "") for key in ("actor", "action", "target")}
    return render_template("audit.html", filters=filters)


@bp.get("/jobs")
def jobs_page():
    """All jobs, newest first, with filters; the rows are fetched from GET /api/jobs."""
    service = get_service()
    filters = {key: request.args.get(key, "") for key in ("status", "queue", "name", "cursor")}
    return render_template(
        "jobs.html",
        filters=filters,
        statuses=STATUSES,
        queues=list(service.queues),
        names=list(service.catalog),
    )


@bp.get("/schedules")
def schedules_page():
    """Periodic schedules: the list (from GET /api/schedules, kept live over the event streams)
    and a form to create or edit one from the catalog's job forms."""
    service = get_service()
    return render_template(
        "schedules.html",
        catalog=catalog_forms(),
        queues=list(service.queues),
        default_queue=current_app.config["DEFAULT_QUEUE"],
    )


def _wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def _enqueue_demo_job() -> tuple[dict, int]:
    """The demo's job, carrying a random number 0-9, and the number."""
    number = random.randint(0, 9)
    return get_service().submit(caller(), "task_get", [number]), number


def _publish_demo_number() -> int:
    number = random.randint(0, 9)
    get_redis().publish(current_app.config["DEMO_CHANNEL"], str(number))
    return number


@bp.get("/prodcons")
@changes_state
@not_audited(SUBMISSIONS)
def prodcons():
    """Producer/consumer demo: enqueue a job carrying a random number 0-9."""
    _enqueue_demo_job()
    return redirect(url_for("pages.index"))


@bp.get("/pubsub")
@changes_state
def pubsub():
    """Publish/subscribe demo: publish a random number 0-9 on the demo channel."""
    _publish_demo_number()
    return redirect(url_for("pages.index"))


@bp.post("/prodcons")
@not_audited(SUBMISSIONS)
def prodcons_post():
    """The home page's button: same as GET, from this site only; JSON for its script."""
    require_same_origin()
    job, number = _enqueue_demo_job()
    if _wants_json():
        url = url_for("pages.job_page", job_id=job["id"])
        response = jsonify({"id": job["id"], "number": number, "url": url})
        response.status_code = 202
        return response
    return redirect(url_for("pages.index"), 303)


@bp.post("/pubsub")
def pubsub_post():
    """The home page's button: same as GET, from this site only; JSON for its script."""
    require_same_origin()
    number = _publish_demo_number()
    if _wants_json():
        return jsonify({"channel": current_app.config["DEMO_CHANNEL"], "data": str(number)})
    return redirect(url_for("pages.index"), 303)
