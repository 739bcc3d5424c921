"""The OpenAPI document and the interactive docs page, served with no outside requests.

Swagger UI's files (Swagger UI 5, which renders OpenAPI 3.1) are kept in the repo under
`webapp/web/swagger_ui/`, as npm's swagger-ui-dist ships them, with their license; `make
swagger-ui` replaces them with another release. Three static files kept here spare the service
a Python package for them (the one used before pulled in a whole unused framework,
flask-openapi3). The page has no inline script, so it works under a `script-src 'self'`
Content-Security-Policy.
"""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, abort, current_app, jsonify, render_template, send_from_directory

from webapp.web import openapi
from webapp.web.auth import public

# Documentation only: readable without an API key (the one public part of /api).
bp = public(Blueprint("docs", __name__, url_prefix="/api", static_folder="docs_static", static_url_path="/docs/static"))

# Found from the package root, not from this module's own folder, so modules can move.
SWAGGER_DIR = files("webapp") / "web" / "swagger_ui"
SWAGGER_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"})


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
    """One of Swagger UI's own files (only those: not its license or version notes)."""
    if name not in SWAGGER_FILES:
        abort(404)
    return send_from_directory(str(SWAGGER_DIR), name, max_age=86400)
