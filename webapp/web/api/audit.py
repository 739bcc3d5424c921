"""The audit log API: who changed what, newest first, filtered, a page at a time (admin keys)."""

from __future__ import annotations

from datetime import UTC

from flask import Blueprint, current_app

from webapp.infra.errors import BadRequest
from webapp.service.access import ADMIN
from webapp.web import schemas
from webapp.web.auth import requires
from webapp.web.openapi import parse_query, respond, spec

bp = Blueprint("audit", __name__, url_prefix="/api")


def _utc(moment):
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@bp.get("/audit")
@requires(ADMIN)
@spec(
    "listAudit",
    summary="The audit log, newest first: every state-changing action with who, what, when, from where, outcome.",
    query=schemas.AuditQuery,
    responses={200: schemas.AuditPage, 400: None, 422: None},
    tag="ops",
)
def list_audit():
    """A page of audit entries; follow `next_cursor` until it is null (a filtered page may hold fewer)."""
    query = parse_query(schemas.AuditQuery)
    try:
        page = current_app.extensions["audit_log"].page(
            limit=query.limit,
            cursor=query.cursor,
            actor=query.actor,
            action=query.action,
            target=query.target,
            since=_utc(query.since),
            until=_utc(query.until),
        )
    except ValueError:
        raise BadRequest(f"invalid cursor {query.cursor!r}: pass the next_cursor of a previous page") from None
    return respond(schemas.AuditPage, page)
