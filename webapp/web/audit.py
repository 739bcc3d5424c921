"""Every state-changing request is written to the audit log, by construction.

`record_request` is an app-wide `after_request`: any request that can change state (a method
other than GET/HEAD/OPTIONS, or a GET view marked `changes_state`) routed to a view of this app
(the API, the dashboard at /rq, the pages, sign-in and sign-out, and whatever later routes add)
is recorded with who made it (the gate's identity: key name and role, or the dashboard user),
what (the action: the OpenAPI operationId, else the endpoint; the target: the ids in the URL;
the details: what a JSON body says it acts on: `name`, `action`, `filter`, `dry_run`, `paused`,
..., and only the names of its other fields, never job arguments), when, from where (the client
address, as ProxyFix gives it behind TRUSTED_PROXIES) and the answer's status, refusals included.

Left out, on purpose:
- submissions (views marked `not_audited`): each job already has its `queued` event, with owner;
- requests nobody was identified for while keys are set (401s, refused sign-ins, also from a
  browser that holds another key's session): they are logged by the web process instead, so
  that someone without a key cannot push real entries out of the bounded log. Refusals of
  identified callers are recorded within a budget per caller and minute (webapp/store/audit.py).
tests/test_audit.py walks the URL map: every state-changing rule is recorded or marked.
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from redis.exceptions import RedisError

from webapp.store.audit import AuditLog
from webapp.web import auth

log = logging.getLogger("webapp.web.audit")
T = TypeVar("T")

# Body fields whose values say what an action acts on; other fields are recorded by name only.
DETAIL_FIELDS = ("name", "action", "filter", "dry_run", "paused", "queue", "cron", "interval", "concurrency", "rate")
MAX_DETAIL_CHARS = 2000
SUBMISSIONS = "a submission is recorded as its job's `queued` event, with the owner's key name"


def not_audited(reason: str):
    """Mark a state-changing view the audit log leaves out, saying why (submissions)."""

    def mark(view: T) -> T:
        view.not_audited = reason
        return view

    return mark


def audit_action(name: str):
    """Name the action of a view that has no OpenAPI operation (e.g. `signIn`)."""

    def mark(view: T) -> T:
        view.audit_action = name
        return view

    return mark


def action_of(endpoint: str, app: Flask | None = None) -> str:
    """A readable name: the view's `audit_action`, its OpenAPI operationId, else its endpoint."""
    app = app or current_app
    view = app.view_functions.get(endpoint)
    named = getattr(view, "audit_action", None)
    if named:
        return named
    operation = getattr(view, "openapi", None)
    if operation is not None:
        return operation.operation_id
    if endpoint.startswith("rq_dashboard."):
        return "dashboard." + endpoint.removeprefix("rq_dashboard.").removesuffix("_view")
    return endpoint


def is_audited(method: str, endpoint: str | None, app: Flask | None = None) -> bool:
    """Whether a request for `endpoint` with `method` is recorded (by state change, unless marked)."""
    if endpoint is None or not auth.is_write(method, endpoint, app):
        return False
    return not auth.marker(endpoint, "not_audited", app)


def note(**outcome: Any) -> None:
    """Add what a view found out to its request's audit entry (`details.outcome`: a bulk
    action's counts); recorded with the rest after the view returns."""
    g.audit_outcome = {**g.get("audit_outcome", {}), **outcome}


def body_details() -> dict[str, Any]:
    """What a JSON object body says the action is about; other fields by name only."""
    if not request.is_json:
        return {}
    body = request.get_json(silent=True, cache=True)
    if not isinstance(body, dict):
        return {}
    details = {field: body[field] for field in DETAIL_FIELDS if field in body}
    others = sorted(str(field) for field in body if field not in DETAIL_FIELDS)
    if others:
        details["fields"] = others
    if len(json.dumps(details, default=str)) > MAX_DETAIL_CHARS:
        details = {"fields": sorted(str(field) for field in body), "truncated": True}
    return details


def _dashboard_did_nothing(endpoint: str, response: Response) -> bool:
    """rq-dashboard answers an action it could not do (delete of a job that is gone) with 200
    and `{"status": "ERROR"}`."""
    if not endpoint.startswith("rq_dashboard.") or not response.is_json or response.direct_passthrough:
        return False
    body = response.get_json(silent=True)
    return isinstance(body, dict) and body.get("status") == "ERROR"


def record_request(response: Response) -> Response:
    endpoint = request.endpoint
    if not is_audited(request.method, endpoint):
        return response
    found = auth.identity()
    if found is None and auth.keyring().enabled:
        if response.status_code == 401:
            return response  # the credentials sent were refused (a sign-in with a wrong key): nobody to name
        # Refused before the gate ran (a cross-site request): name the session if there is one.
        try:
            found = auth.identify(strict=False)
        except RedisError:
            found = None
        if found is None:
            return response
    if found is None and response.status_code == 401:
        return response  # no credentials at all (the dashboard's password on an open API): nobody to name
    principal = found.principal if found is not None else None
    try:
        recorded = current_app.extensions["audit_log"].record(
            actor=principal.name if principal is not None else None,
            role=principal.role if principal is not None else "anonymous",
            via=found.via if found is not None else "open",
            action=action_of(endpoint),
            method=request.method,
            path=request.path,
            target={name: str(value) for name, value in (request.view_args or {}).items()},
            details={**body_details(), **({"outcome": g.audit_outcome} if g.get("audit_outcome") else {})},
            status=response.status_code,
            client=request.remote_addr,
            ok=False if _dashboard_did_nothing(endpoint, response) else None,
        )
        if recorded is None:
            log.info("audit: refusal over the caller's AUDIT_REFUSALS_PER_MINUTE, not recorded: %s %s (%s) by %s",
                     request.method, request.path, response.status_code,
                     principal.name if principal is not None else request.remote_addr)  # fmt: skip
    except RedisError as exc:
        log.error("audit log unavailable, action not recorded: %s %s (%s): %s",
                  request.method, request.path, response.status_code, exc)  # fmt: skip
    return response


def init_app(app: Flask) -> None:
    app.extensions["audit_log"] = AuditLog.from_config(app.extensions["redis"], app.config)
    app.after_request(record_request)
