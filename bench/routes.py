"""Baseline routes for the HTTP benchmark, served only by the bench app (bench/app.py).

They run on the same gunicorn server as the API, so `POST /api/jobs` is compared with
what a plain JSON route and a route doing one Redis command cost on that very server.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

bp = Blueprint("bench", __name__, url_prefix="/bench")
# Baselines measure what any route costs: not the audit log's write (submissions skip it too).
bp.not_audited = "benchmark baseline"

LIST_KEY = "bench:lpush"
VALUE_KEY = "bench:value"


@bp.post("/plain")
def plain():
    """Parse the JSON body and answer JSON: the floor of any API route."""
    body = request.get_json(force=True, silent=True) or {}
    return jsonify({"ok": True, "name": body.get("name")}), 202


@bp.post("/lpush")
def lpush():
    """Parse the JSON body, do one LPUSH, answer JSON: the cost of one Redis round trip."""
    request.get_json(force=True, silent=True)
    current_app.extensions["redis"].lpush(LIST_KEY, request.get_data())
    return jsonify({"ok": True}), 202


@bp.get("/get")
def get_value():
    """One Redis GET, answered as JSON: the baseline of GET /api/jobs/<id>."""
    value = current_app.extensions["redis"].get(VALUE_KEY)
    return jsonify({"value": value.decode() if value else None})
