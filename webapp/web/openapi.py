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
from webapp.service.validation import failed
from webapp.store.jobreads import JOB_ID_PATTERN
from webapp.web import schemas

REF_TEMPLATE = "#/components/schemas/{model}"

# Descriptions of the error statuses; every one has the ErrorBody shape.
ERRORS = {
    400: "Malformed request: invalid JSON or an invalid cursor.",
    401: "API keys are configured and the request has no valid 'Authorization: Bearer <key>'.",
    404: "No such job: it never existed or has expired.",
    409: "Conflict: the job's current status does not allow this, or an Idempotency-Key was reused "
    "with a different body.",
    413: "The request body is larger than MAX_CONTENT_LENGTH (or the job's arguments than MAX_ARGS_BYTES).",
    415: "A POST body that is not declared as 'Content-Type: application/json'.",
    422: "Well-formed but refused: unknown fields, wrong types, out-of-range values.",
    429: "Too many requests from this client; see Retry-After.",
    503: "Redis is not answering (or a queue is full); see Retry-After.",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}}
LOCATION = {"Location": {"description": "URL of the job.", "schema": {"type": "string"}}}

PATH_PARAMETERS = {
    "job_id": {
        "description": "A job id: letters, digits, '-' and '_'.",
        "schema": {"type": "string", "pattern": JOB_ID_PATTERN.pattern},
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
    headers: Mapping[str, dict] = field(default_factory=dict)
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
        "description": "Repeat a submission safely: the same key and body return the original job.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
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
        # Event streams (streams.*) are text/event-stream, described in the README: OpenAPI
        # has no way to say "a stream of these", and a fuzzer would hold them open.
        if not rule.rule.startswith("/api/") or rule.endpoint.startswith(("docs.", "streams.")):
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
    used: list[tuple[type[BaseModel], str]] = [(schemas.ErrorBody, "serialization")]
    for operation in operations:
        if operation.body is not None:
            used.append((operation.body, "validation"))
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
            "required": True,
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
        if model is None:
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


def build_document(app: Flask) -> dict:
    """The OpenAPI 3.1 document of the app's /api routes."""
    operations, _missing = api_operations(app)
    every = [operation for methods in operations.values() for operation in methods.values()]
    refs, schemas = _schemas(every)
    paths = {
        path: {method: _operation_object(path, operation, refs) for method, operation in sorted(methods.items())}
        for path, methods in sorted(operations.items())
    }
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "jobsvc",
            "version": "1",
            "description": "Submit allow-listed jobs to RQ workers and follow them. "
            'Every error is JSON: {"error": {"code", "message"}}.',
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    _name_the_choices(document, app)
    return document


def _name_the_choices(document: dict, app: Flask) -> None:
    """Job names and queues are plain strings in the models; this app's document lists them."""
    service = app.extensions.get("jobsvc")
    if service is None:
        return
    choices = {"name": sorted(service.catalog), "queue": list(service.queues)}

    def restrict(schema: dict, field: str) -> None:
        for branch in [schema, *schema.get("anyOf", [])]:
            if branch.get("type") == "string":
                branch["enum"] = choices[field]
                branch.pop("maxLength", None)

    for name, schema in document["components"]["schemas"].items():
        if name.startswith("SubmitRequest"):
            for field in choices:
                restrict(schema["properties"][field], field)
    for methods in document["paths"].values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter["name"] in choices:
                    restrict(parameter["schema"], parameter["name"])


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
