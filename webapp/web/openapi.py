"""The OpenAPI 3.1 document, generated from the pydantic models of the API.

Each API view carries its operation next to it (`@spec(...)`: query model, body model,
responses by status); `build_document` walks the app's URL map, so a route without a spec is
noticed (`undocumented_routes`, a failing test) instead of silently missing. The schemas come
from the same models that validate requests (`webapp.service.submission`, `parse_query`) and
shape responses (`webapp.web.schemas`, `respond`), so the document cannot drift from what
the code does.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from flask import Flask, current_app, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from webapp.infra.errors import ValidationFailed
from webapp.service.deliveries import DELIVERY_ID_PATTERN
from webapp.service.schedule_models import NAME_PATTERN, ScheduledJob
from webapp.service.submission import SubmitRequest as SUBMISSION_MODEL
from webapp.service.validation import failed
from webapp.store.events import EVENT_NAMES
from webapp.web import contract, schemas
from webapp.web.routing import JOB_ID_SCHEMA_PATTERN

REF_TEMPLATE = "#/components/schemas/{model}"
REF_GAP = {"$ref": REF_TEMPLATE.format(model="Gap")}
EVENT_ID_PATTERN = r"^[0-9]{1,19}-[0-9]{1,19}$"  # a Redis stream id, as webapp.store.events parses it
RESUME_FROM_PATTERN = r"^(?:[0-9]{1,19}-[0-9]{1,19})?$"  # an event id, or empty: start afresh
IDEMPOTENCY_KEY_PATTERN = r"^[ -~]{1,200}$"

# Descriptions of the error statuses; every one has the ErrorBody shape.
ERRORS = {
    400: "Malformed request: invalid JSON or an invalid cursor.",
    401: "API keys are configured and the request has no valid 'Authorization: Bearer <key>' (nor sign-in session).",
    403: "The key's role may not do this (see x-required-role), or a session request came without its CSRF token.",
    404: "No such job (in the path, or named by depends_on): it never existed or has expired.",
    409: "Conflict: the job's current status does not allow this, or an Idempotency-Key was reused "
    "with a different body.",
    413: "The request body is larger than MAX_CONTENT_LENGTH (or the job's arguments than MAX_ARGS_BYTES).",
    415: "A POST body that is not declared as 'Content-Type: application/json'.",
    422: "Well-formed but refused: unknown fields, wrong types, out-of-range values.",
    429: "Too many requests from this client; see Retry-After.",
    503: "Redis is not answering or is full (maxmemory), or a queue is full; see Retry-After.",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}}
LOCATION = {"Location": {"description": "URL of the job.", "schema": {"type": "string"}}}

PATH_PARAMETERS = {
    "job_id": {
        "description": "A job id: 1 to 128 letters, digits, '-' and '_' (not the word `batch`).",
        "schema": {"type": "string", "pattern": JOB_ID_SCHEMA_PATTERN},
    },
    "name": {
        "description": "A schedule's name: letters, digits, '_', '.' and '-'.",
        "schema": {"type": "string", "pattern": NAME_PATTERN},
    },
    "queue_name": {
        "description": "A configured queue's name (`GET /api/queues` lists them); any other name is a 404.",
        "schema": {"type": "string", "minLength": 1},
    },
    "delivery_id": {
        "description": "A webhook delivery's id (its event's id, `<ms>-<seq>`).",
        "schema": {"type": "string", "pattern": DELIVERY_ID_PATTERN.pattern},
    },
}


@dataclass(frozen=True)
class Operation:
    """One API operation: what it reads and what it answers with."""

    operation_id: str
    responses: Mapping[int, type[BaseModel] | None]
    summary: str | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_required: bool = True
    headers: Mapping[str, dict] = field(default_factory=dict)
    # A Server-Sent Events stream answers 200 with `text/event-stream`: the model of its events' data.
    events: type[BaseModel] | None = None
    response_headers: Mapping[int, Mapping[str, dict]] = field(default_factory=dict)
    tag: str = "jobs"


def spec(operation_id: str, **details: Any) -> Callable:
    """Attach an Operation to a view function: `@spec("listJobs", query=..., responses={...})`."""

    def attach(view: Callable) -> Callable:
        view.openapi = Operation(operation_id, **details)
        return view

    return attach


IDEMPOTENCY_KEY = {
    "Idempotency-Key": {
        "description": "Repeat a submission safely: the same key and body return the original job. "
        "1 to 200 printable ASCII characters.",
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
    }
}


def openapi_path(rule: str) -> str:
    """Flask's `/api/jobs/<job_id>` (or `<string:job_id>`) as OpenAPI's `/api/jobs/{job_id}`."""
    return re.sub(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>", r"{\1}", rule)


def api_operations(app: Flask) -> tuple[dict[str, dict[str, Operation]], list[str]]:
    """Every /api route's Operation by path and method, and the routes that have none."""
    found: dict[str, dict[str, Operation]] = {}
    missing: list[str] = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.endpoint.startswith("docs."):
            continue
        path = openapi_path(rule.rule)
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = getattr(view, "openapi", None)
            if operation is None:
                missing.append(f"{method} {path}")
            else:
                found.setdefault(path, {})[method.lower()] = operation
    return found, missing


def undocumented_routes(app: Flask) -> list[str]:
    return api_operations(app)[1]


def _schemas(operations: list[Operation]) -> tuple[dict, dict]:
    """Component schemas for every model used, and how to refer to each (by model and mode)."""
    used: list[tuple[type[BaseModel], str]] = [(schemas.ErrorBody, "serialization"), (schemas.Gap, "serialization")]
    for operation in operations:
        if operation.body is not None:
            used.append((operation.body, "validation"))
        if operation.events is not None:
            used.append((operation.events, "serialization"))
        used += [(model, "serialization") for model in operation.responses.values() if model is not None]
    used = list(dict.fromkeys(used))
    refs, document = models_json_schema(used, ref_template=REF_TEMPLATE)
    return refs, document.get("$defs", {})


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = copy.deepcopy(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        # A query string has no null: an optional parameter is simply left out.
        branches = [branch for branch in prop.pop("anyOf", []) if branch != {"type": "null"}]
        if len(branches) == 1:
            prop.update(branches[0])
        if prop.get("default", 0) is None:
            del prop["default"]
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _operation_object(path: str, operation: Operation, refs: dict) -> dict:
    result: dict[str, Any] = {"operationId": operation.operation_id, "tags": [operation.tag]}
    if operation.summary:
        result["summary"] = operation.summary
    parameters = [
        {"name": name, "in": "path", "required": True, **copy.deepcopy(PATH_PARAMETERS[name])}
        for name in re.findall(r"{([^}]+)}", path)
    ]
    if operation.query is not None:
        parameters += _query_parameters(operation.query)
    parameters += [
        {"name": name, "in": "header", "required": False, **copy.deepcopy(header)}
        for name, header in operation.headers.items()
    ]
    if parameters:
        result["parameters"] = parameters
    if operation.body is not None:
        result["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": refs[(operation.body, "validation")]}},
        }
    responses: dict[str, dict] = {}
    statuses = dict(operation.responses)
    statuses.setdefault(503, None)
    if operation.body is not None:
        statuses.setdefault(400, None)
        statuses.setdefault(413, None)
    for status in sorted(statuses):
        model = statuses[status]
        if status == 200 and operation.events is not None:
            entry = _event_stream(refs[(operation.events, "serialization")])
        elif model is None and status < 400:
            entry = {"description": HTTPStatus(status).phrase}
        elif model is None:
            schema = refs[(schemas.ErrorBody, "serialization")]
            entry = {"description": ERRORS.get(status, "Error."), "content": {"application/json": {"schema": schema}}}
        else:
            schema = refs[(model, "serialization")]
            entry = {"description": HTTPStatus(status).phrase}
            entry["content"] = {"application/json": {"schema": schema}}
        headers = dict(operation.response_headers.get(status, {}))
        if status in (429, 503):
            headers.update(RETRY_AFTER)
        if headers:
            entry["headers"] = copy.deepcopy(headers)
        responses[str(status)] = entry
    result["responses"] = responses
    return result


def _event_stream(data_ref: dict) -> dict:
    """A 200 answering `text/event-stream`: each event as SSE frames it (`schema` describes one
    event, as OpenAPI 3.1 tools read a stream), its `data` a JSON object."""
    return {
        "description": "Server-Sent Events: `retry:` first, then one event per frame (`id:`, `event:`, `data:`), "
        "`: keep-alive` comments while idle; resume with Last-Event-ID. An `event: gap` frame (no id) says "
        "events after the requested id are no longer kept.",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": EVENT_ID_PATTERN},
                        "event": {"type": "string"},
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {"anyOf": [data_ref, REF_GAP]},
                        },
                        "retry": {"type": "integer", "minimum": 0},
                    },
                    "required": ["data"],
                }
            }
        },
    }


def build_document(app: Flask) -> dict:
    """The OpenAPI 3.1 document of the app's /api routes."""
    operations, _missing = api_operations(app)
    every = [operation for methods in operations.values() for operation in methods.values()]
    refs, schemas = _schemas(every)
    paths = {
        path: {method: _operation_object(path, operation, refs) for method, operation in sorted(methods.items())}
        for path, methods in sorted(operations.items())
    }
    _state_the_roles(paths, app, {"$ref": REF_TEMPLATE.format(model="ErrorBody")})
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "jobsvc",
            "version": "1",
            "description": "Submit allow-listed jobs to RQ workers and follow them. "
            'Every error is JSON: {"error": {"code", "message"}}. ' + ROLES_TEXT,
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }
    if app.extensions["jobsvc_keys"].enabled:  # an open API (no keys configured) asks for none
        document["security"] = [{"apiKey": []}, {"session": []}]
    return _with_this_apps_choices(document, app)


ROLES_TEXT = (
    "With API keys configured (API_KEYS, VIEWER_API_KEYS, ADMIN_API_KEYS), each operation needs a key of at least "
    "the role in its `x-required-role`, ranked viewer < owner < admin: viewer keys read everything and change "
    "nothing, owner keys read and change their own jobs, admin keys everything. Without keys the API is open."
)
SECURITY_SCHEMES = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer <key>`."},
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "jobsvc_session",
        "description": "The web UI's sign-in session (POST /signin); its writes also need the X-CSRF-Token header.",
    },
}


def _state_the_roles(paths: dict, app: Flask, error_ref: dict) -> None:
    """Each operation's least role, derived the way the gate derives it (webapp/web/auth.py):
    from the method and the view's `requires(...)` marker, never written per view."""
    from webapp.web import auth  # the gate's own rule; imported here, auth needs no OpenAPI

    for rule in app.url_map.iter_rules():
        path = openapi_path(rule.rule)
        for method, operation in paths.get(path, {}).items():
            if method.upper() not in (rule.methods or ()):
                continue
            write = auth.is_write(method.upper(), rule.endpoint, app)
            role = auth.required_role(rule.endpoint, write, app)
            operation["x-required-role"] = role
            operation["description"] = f"Needs a key of role {role} or above when API keys are configured."
            responses = operation["responses"]
            for status in (401, 403) if write or role != "viewer" else (401,):
                responses.setdefault(str(status), {
                    "description": ERRORS[status], "content": {"application/json": {"schema": error_ref}}})  # fmt: skip
            operation["responses"] = dict(sorted(responses.items()))


def _with_this_apps_choices(document: dict, app: Flask) -> dict:
    """This app's job names, queues and maxima in the document: the submission becomes the union
    of its job types (webapp/web/contract.py), and query parameters list the valid names."""
    service = app.extensions["jobsvc"]
    components = document["components"]["schemas"]
    for model, union in ((SUBMISSION_MODEL.__name__, "Submission"), (ScheduledJob.__name__, ScheduledJob.__name__)):
        base = components.pop(model, None)
        if base is None:
            continue
        components.update(
            contract.submission_components(base, service.catalog, app.config, service.queues, REF_TEMPLATE, union)
        )
        text = json.dumps(document).replace(REF_TEMPLATE.format(model=model), REF_TEMPLATE.format(model=union))
        document = json.loads(text)
        components = document["components"]["schemas"]
    _drop_unreferenced(document)
    choices = app_choices(app)

    def restrict(schema: dict, field: str) -> None:
        for branch in [schema, *schema.get("anyOf", [])]:
            if branch.get("type") == "string":
                branch["enum"] = choices[field]
                branch.pop("maxLength", None)

    for methods in document["paths"].values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "query":
                    continue
                listed = parameter["schema"].pop("x-comma-list", None)
                if listed is not None:
                    parameter["schema"]["pattern"] = comma_list_pattern(choices[listed])
                elif parameter["name"] in ("name", "queue"):
                    restrict(parameter["schema"], parameter["name"])
    # the bulk filter takes the listing's filters in a body: the same names and queues
    bulk_filter = components.get("BulkFilterBody", {}).get("properties", {})
    for filter_field in ("name", "queue"):
        if filter_field in bulk_filter:
            restrict(bulk_filter[filter_field], filter_field)
    return document


def app_choices(app: Flask) -> dict[str, list[str]]:
    """What a name, a queue or an event can be in this app."""
    service = app.extensions["jobsvc"]
    return {"name": sorted(service.catalog), "queue": list(service.queues), "event": list(EVENT_NAMES)}


def comma_list_pattern(choices: list[str]) -> str:
    """A regular expression for a comma-separated list of `choices` (or nothing at all)."""
    one = "(?:" + "|".join(re.sub(r"([\\^$.|?*+()\[\]{}-])", r"\\\1", choice) for choice in choices) + ")"
    return f"^(?:{one}(?:,{one})*)?$"


def _drop_unreferenced(document: dict) -> None:
    """Remove component schemas nothing refers to any more (the generic submission's parts)."""
    components = document["components"]["schemas"]
    while True:
        text = json.dumps(document)
        unused = [name for name in components if f'"{REF_TEMPLATE.format(model=name)}"' not in text]
        if not unused:
            return
        for name in unused:
            del components[name]


def document(app: Flask) -> dict:
    """The app's document, built once and kept in `app.extensions`."""
    if "openapi" not in app.extensions:
        app.extensions["openapi"] = build_document(app)
    return app.extensions["openapi"]


def parse_query(model: type[BaseModel]) -> BaseModel:
    """Validate the query string with `model`; a repeated or unknown parameter is a 422."""
    values = request.args.to_dict(flat=False)
    repeated = sorted(name for name, given in values.items() if len(given) > 1)
    if repeated:
        raise ValidationFailed(f"query parameter(s) given more than once: {', '.join(repeated)}")
    try:
        return model.model_validate({name: given[0] for name, given in values.items()})
    except ValidationError as exc:
        raise failed(exc, "invalid query: ", default="query") from None


def respond(model: type[BaseModel], data: Any, status: int = 200, **dump: Any):
    """A JSON response shaped by `model`: the body is validated against the documented schema
    (and serialized by pydantic's own encoder, in the model's field order)."""
    body = model.model_validate(data).model_dump_json(**dump)
    return current_app.response_class(body + "\n", status=status, mimetype="application/json")
