"""The OpenAPI document and the interactive docs page, served with no outside requests.

Swagger UI's files come from the installed `flask-openapi3-swagger` wheel (Swagger UI 5, which
renders OpenAPI 3.1); only its static files are used, not flask-openapi3 itself. The page has
no inline script, so it works under a `script-src 'self'` Content-Security-Policy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, render_template, send_from_directory

from webapp.web import openapi
from webapp.web.auth import public

# Documentation only: readable without an API key (the one public part of /api).
bp = public(Blueprint("docs", __name__, url_prefix="/api", static_folder="docs_static", static_url_path="/docs/static"))

SWAGGER_FILES = {
    "swagger-ui.css": "css",
    "swagger-ui-bundle.js": "js",
    "swagger-ui-standalone-preset.js": "js",
}


def swagger_dir() -> Path:
    """Where the wheel keeps Swagger UI, found without importing flask-openapi3."""
    found = importlib.util.find_spec("flask_openapi3_swagger")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("flask-openapi3-swagger is not installed: run `make run` or pip install -r requirements.txt")
    return Path(next(iter(found.submodule_search_locations))) / "templates" / "swagger"


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document of the /api routes."""
    return jsonify(openapi.document(current_app._get_current_object()))


@bp.get("/docs")
def docs_page():
    """Swagger UI over /api/openapi.json."""
    return render_template("api_docs.html")


@bp.get("/docs/swagger/<name>")
def swagger_asset(name: str):
    """One of Swagger UI's own files, from the installed wheel."""
    if name not in SWAGGER_FILES:
        abort(404)
    return send_from_directory(swagger_dir() / SWAGGER_FILES[name], name, max_age=86400)
