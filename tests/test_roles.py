"""Roles: viewer keys read everything and change nothing, by construction; the OpenAPI document
states the role each operation needs, derived the way the gate decides it."""

from __future__ import annotations

import pytest

from tests.keyed import (
    ADMIN_KEY,
    OTHER_KEY,
    OWNER_KEY,
    SAME_SITE,
    VIEWER_KEY,
    basic,
    bearer,
    keyed_app,
    sign_in,
    state_changing_rules,
)
from webapp.service.access import ADMIN, OWNER, VIEWER, Principal
from webapp.web import auth


@pytest.fixture
def app(redis_server, redis_conn):
    return keyed_app(redis_server.url)


@pytest.fixture
def client(app):
    return app.test_client()


def test_every_state_changing_rule_answers_403_to_a_viewer(app, client, redis_conn):
    """Walks the whole URL map, whatever routes exist now or later: no write reaches a view."""
    rules = state_changing_rules(app)
    walked = set()
    token = sign_in(viewer_session := app.test_client(), VIEWER_KEY)
    for method, path, endpoint in rules:
        if auth.is_public(endpoint, app) and endpoint.startswith("signin."):
            continue  # signing in and out is not a change a role governs
        if endpoint.startswith("rq_dashboard."):
            response = viewer_session.open(path, method=method, headers={**SAME_SITE, "X-CSRF-Token": token})
            assert response.status_code == 403, (method, path, response.status_code)
            assert response.get_json()["error"]["code"] == "read_only"
        else:
            response = client.open(path, method=method, json={}, headers={**bearer(VIEWER_KEY), **SAME_SITE})
            assert response.status_code == 403, (method, path, response.status_code)
            assert response.get_json()["error"]["code"] == "forbidden", (method, path)
        walked.add(endpoint)
    assert {"jobs.submit_job", "jobs.cancel_job", "jobs.retry_job", "rq_dashboard.requeue_job_view"} <= walked
    assert redis_conn.keys("rq:job:*") == []  # nothing was written on the way


def test_admin_only_operations_refuse_owners_and_viewers(client):
    for key in (OWNER_KEY, VIEWER_KEY):
        response = client.get("/api/audit", headers=bearer(key))
        assert response.status_code == 403 and "needs an admin key" in response.get_json()["error"]["message"]
    assert client.get("/api/audit", headers=bearer(ADMIN_KEY)).status_code == 200


def test_a_viewer_sees_every_job_queue_and_worker(client):
    mine = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}, headers=bearer(OWNER_KEY)).get_json()["id"]
    theirs = client.post("/api/jobs", json={"name": "add", "args": [2, 3]}, headers=bearer(OTHER_KEY)).get_json()["id"]
    listed = {job["id"] for job in client.get("/api/jobs", headers=bearer(VIEWER_KEY)).get_json()["jobs"]}
    assert listed == {mine, theirs}
    assert client.get(f"/api/jobs/{theirs}", headers=bearer(VIEWER_KEY)).status_code == 200
    assert client.get("/api/queues", headers=bearer(VIEWER_KEY)).status_code == 200
    assert client.get("/api/workers", headers=bearer(VIEWER_KEY)).status_code == 200
    assert client.get("/api/stats", headers=bearer(VIEWER_KEY)).status_code == 200


def test_the_service_refuses_a_viewer_too(app, client):
    """Defence in depth: a caller that bypassed the web (a script using the service) is refused."""
    from webapp.infra.errors import Forbidden

    job_id = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}, headers=bearer(OWNER_KEY)).get_json()["id"]
    service = app.extensions["jobsvc"]
    viewer = Principal("watch", VIEWER)
    for operation in (lambda: service.cancel(job_id, viewer), lambda: service.retry(job_id, viewer),
                      lambda: service.submit(viewer, "add", [1, 2])):  # fmt: skip
        with pytest.raises(Forbidden):
            operation()


def test_pages_hide_what_a_viewer_may_not_do(client):
    job_id = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}, headers=bearer(OWNER_KEY)).get_json()["id"]
    sign_in(client, VIEWER_KEY)
    home = client.get("/").get_data(as_text=True)
    assert '<body class="read-only" data-can-write="false">' in home and 'id="read-only-note"' in home
    assert 'class="field field-inline needs-write"' in home and 'class="demo-buttons needs-write"' in home
    job = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert '<div class="actions needs-write">' in job
    nav = client.get("/jobs").get_data(as_text=True)
    assert 'href="/audit"' not in nav and 'href="/rq/"' in nav  # viewers read the dashboard, not the audit log


def test_an_admin_session_opens_the_dashboard_without_a_second_prompt(app):
    admin = app.test_client()
    sign_in(admin, ADMIN_KEY)
    assert admin.get("/rq/").status_code == 200
    assert admin.get("/rq/0/data/queues.json").status_code == 200
    owner = app.test_client()
    sign_in(owner, OWNER_KEY)
    refused = owner.get("/rq/")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
    assert "admin key" in refused.get_json()["error"]["message"]
    # Basic auth keeps working for scripts.
    assert app.test_client().get("/rq/", headers=basic("admin", "test-password")).status_code == 200


def test_the_document_states_each_operation_s_role_as_the_gate_decides_it(app):
    from webapp.web import openapi

    document = openapi.build_document(app)
    roles = {
        (method.upper(), path): operation["x-required-role"]
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert roles[("GET", "/api/jobs")] == VIEWER
    assert roles[("POST", "/api/jobs")] == OWNER
    assert roles[("DELETE", "/api/jobs/{job_id}")] == OWNER
    assert roles[("GET", "/api/audit")] == ADMIN
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert "401" in operation["responses"], (method, path)
            if operation["x-required-role"] != VIEWER:
                assert "403" in operation["responses"], (method, path)
    assert set(document["components"]["securitySchemes"]) == {"apiKey", "session"}
    # The document and the gate agree: each role is exactly the least key the gate lets through.
    client = app.test_client()
    keys = {VIEWER: VIEWER_KEY, OWNER: OWNER_KEY, ADMIN: ADMIN_KEY}
    below = {OWNER: VIEWER, ADMIN: OWNER}
    for (method, path), role in roles.items():
        url = path.replace("{job_id}", "0123456789abcdef")
        if role in below:
            refused = client.open(url, method=method, json={}, headers=bearer(keys[below[role]]))
            assert refused.status_code == 403, (method, path)
        allowed = client.open(url, method=method, json={}, headers=bearer(keys[role]))
        assert allowed.status_code != 403, (method, path, allowed.get_json())


def test_roles_rank_viewer_owner_admin():
    assert Principal("a", ADMIN).has(OWNER) and Principal("o", OWNER).has(VIEWER)
    assert not Principal("v", VIEWER).has(OWNER) and not Principal("o", OWNER).has(ADMIN)
