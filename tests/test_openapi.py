"""The OpenAPI document comes from the models, covers every /api route, and /api/docs is offline."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from html.parser import HTMLParser

import pytest
import schemathesis
from flask import Blueprint, jsonify
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.failures import FailureGroup
from werkzeug.serving import make_server

from webapp import create_app
from webapp.web import openapi, schemas
from webapp.web.openapi import REF_TEMPLATE, spec


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def test_document_is_openapi_3_1_with_every_api_route(app, document):
    assert document["openapi"] == "3.1.0"
    assert openapi.undocumented_routes(app) == []
    operations = {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}
    assert operations == {
        ("GET", "/api/jobs"),
        ("POST", "/api/jobs"),
        ("GET", "/api/jobs/{job_id}"),
        ("GET", "/api/queues"),
        ("GET", "/api/workers"),
        ("GET", "/api/functions"),
        ("POST", "/api/jobs/batch"),
        ("POST", "/api/jobs/bulk"),
        ("POST", "/api/jobs/{job_id}/cancel"),
        ("DELETE", "/api/jobs/{job_id}"),
        ("POST", "/api/jobs/{job_id}/retry"),
        ("GET", "/api/jobs/{job_id}/events"),
        ("GET", "/api/events"),
        ("GET", "/api/demo/events"),
        ("GET", "/api/schedule-events"),
        ("GET", "/api/operator-events"),
        ("GET", "/api/schedules"),
        ("POST", "/api/schedules"),
        ("GET", "/api/schedules/{name}"),
        ("PATCH", "/api/schedules/{name}"),
        ("DELETE", "/api/schedules/{name}"),
        ("POST", "/api/schedules/{name}/run"),
        ("GET", "/api/audit"),
        ("GET", "/api/stats"),
        ("POST", "/api/queues/{queue_name}/pause"),
        ("POST", "/api/queues/{queue_name}/resume"),
        ("GET", "/api/limits"),
        ("GET", "/api/jobs/{job_id}/deliveries"),
        ("POST", "/api/jobs/{job_id}/deliveries/{delivery_id}/redeliver"),
    }
    assert not any(path.startswith("/rq") or "docs" in path or "openapi" in path for path in document["paths"])


def test_schemas_are_the_models_own(document):
    components = document["components"]["schemas"]
    for model in (schemas.JobPage, schemas.QueueList, schemas.WorkerList, schemas.FunctionList, schemas.ErrorBody):
        own = model.model_json_schema(ref_template=REF_TEMPLATE, mode="serialization")
        own.pop("$defs", None)
        assert components[model.__name__] == own, model.__name__
    submit = document["paths"]["/api/jobs"]["post"]
    body_ref = submit["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == REF_TEMPLATE.format(model="Submission")
    union = components["Submission"]
    assert union["discriminator"]["propertyName"] == "name"
    for job_name, ref in union["discriminator"]["mapping"].items():
        member = components[ref.rsplit("/", 1)[-1]]
        assert member["additionalProperties"] is False and member["required"] == ["name"]
        assert member["properties"]["name"] == {"const": job_name}
        assert "timeout" in member["properties"] and "anyOf" in member
    assert [p["name"] for p in submit["parameters"]] == ["Idempotency-Key"]


def test_list_query_parameters_come_from_the_query_model(document):
    parameters = {p["name"]: p for p in document["paths"]["/api/jobs"]["get"]["parameters"]}
    assert set(parameters) == set(schemas.JobListQuery.model_fields)
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert parameters["status"]["schema"]["enum"] == list(schemas.JobStatus.__args__)
    assert all(p["in"] == "query" and not p["required"] for p in parameters.values())


def test_every_operation_documents_its_errors(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert "503" in responses and "Retry-After" in responses["503"]["headers"], (method, path)
            if "{job_id}" in path:
                assert "404" in responses
                [parameter] = [p for p in operation["parameters"] if p["in"] == "path" and p["name"] == "job_id"]
                assert parameter["schema"]["pattern"] == "^(?!(?:batch|bulk)$)[A-Za-z0-9_-]{1,128}$"
            for status, response in responses.items():
                if int(status) >= 400:
                    assert response["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
            if path.endswith("/events"):
                assert "text/event-stream" in responses["200"]["content"], path


def test_the_document_asks_for_a_key_only_when_keys_are_configured(redis_server, document):
    assert "security" not in document  # the open API: a client needs nothing
    keyed = openapi.build_document(create_app({"REDIS_URL": redis_server.url, "API_KEYS": "alice:k1"}))
    assert keyed["security"] == [{"apiKey": []}, {"session": []}]
    assert set(keyed["components"]["securitySchemes"]) == {"apiKey", "session"}


def test_a_route_without_a_spec_is_reported(redis_server):
    app = create_app({"REDIS_URL": redis_server.url})
    extra = Blueprint("extra", __name__, url_prefix="/api")
    extra.add_url_rule("/secret", "secret", lambda: "")
    app.register_blueprint(extra)
    assert openapi.undocumented_routes(app) == ["GET /api/secret"]


def test_schemathesis_catches_a_response_that_breaks_the_document(redis_server):
    """The fuzzing checks are live: a view answering off-schema fails them."""
    app = create_app({"REDIS_URL": redis_server.url})
    broken = Blueprint("broken", __name__, url_prefix="/api")

    @spec("broken", responses={200: schemas.QueueList})
    def off_schema():
        return jsonify({"queues": "not a list"})

    broken.add_url_rule("/broken", "broken", off_schema)
    app.register_blueprint(broken)
    operation = schemathesis.openapi.from_wsgi("/api/openapi.json", app).find_operation_by_label("GET /api/broken")

    @given(case=operation.as_strategy())
    @settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call_and_validate(checks=[checks.response_schema_conformance])

    with pytest.raises((FailureGroup, AssertionError)):
        fuzz()


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        self._in_script = tag == "script"
        if tag == "script" and not attrs.get("src"):
            self.inline_scripts.append("")

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts.append(data)

    def handle_endtag(self, tag):
        self._in_script = False


def test_docs_page_uses_only_local_assets_and_no_inline_script(client):
    response = client.get("/api/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    parser = _Assets()
    parser.feed(page)
    assert parser.inline_scripts == []
    assert "on" not in {match.lower()[:2] for match in re.findall(r"\s(on[a-z]+)=", page)}
    assert len(parser.urls) == 4
    for url in parser.urls:
        assert url.startswith("/api/docs/"), url
        with client.get(url) as asset:
            assert asset.status_code == 200, url
            assert asset.mimetype in ("text/css", "text/javascript", "application/javascript"), url
    with client.get("/api/docs/swagger/swagger-ui-bundle.js") as response:
        bundle = response.get_data(as_text=True)
    assert "http://" not in page and "https://" not in page
    assert len(bundle) > 500_000 and "isOAS31" in bundle  # Swagger UI 5 (renders 3.1), from the wheel
    with client.get("/api/docs/static/api-docs.js") as response:
        init = response.get_data(as_text=True)
    assert "SwaggerUIBundle" in init and "specUrl" in init
    assert 'data-spec-url="/api/openapi.json"' in page


def test_docs_assets_outside_the_list_are_404(client):
    assert client.get("/api/docs/swagger/../__init__.py").status_code == 404
    assert client.get("/api/docs/swagger/plugins.py").status_code == 404


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs a Chromium binary")
def test_docs_render_in_a_browser_under_a_strict_csp(app):
    """Headless Chromium renders the operations with `script-src 'self'` and nothing from outside."""

    @app.after_request
    def strict_csp(response):
        response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; style-src 'self'"
        return response

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            rendered = subprocess.run(
                [
                    CHROMIUM,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    f"--user-data-dir={profile}",
                    "--virtual-time-budget=15000",
                    "--dump-dom",
                    f"http://127.0.0.1:{server.port}/api/docs",
                ],
                capture_output=True,
                text=True,
                timeout=90,
            ).stdout
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert "OAS 3.1" in rendered
    for operation in ("/api/jobs", "/api/jobs/{job_id}", "/api/queues", "/api/workers", "/api/functions"):
        assert operation in rendered, operation


def test_job_names_and_queues_are_listed_as_choices(document):
    components = document["components"]["schemas"]
    assert sorted(components["Submission"]["discriminator"]["mapping"]) == ["add", "fail", "sleep", "task_get"]
    add = components["Submission_add"]
    assert {"type": "string", "enum": ["high", "default", "low"]} in add["properties"]["queue"]["anyOf"]
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/api/jobs"]["get"]["parameters"]}
    assert parameters["queue"]["enum"] == ["high", "default", "low"]
    filters = {p["name"]: p["schema"] for p in document["paths"]["/api/events"]["get"]["parameters"]}
    assert re.fullmatch(filters["queue"]["pattern"], "high,low") and not re.fullmatch(filters["queue"]["pattern"], "x")
