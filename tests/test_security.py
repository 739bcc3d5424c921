"""Security headers on every response; cross-site state changes refused before any view runs."""

from __future__ import annotations

import base64
import re

import pytest

from webapp import create_app

EVIL = "https://evil.example"


@pytest.fixture
def job_id(client):
    response = client.post("/api/jobs", json={"name": "add", "args": [1, 2]})
    assert response.status_code == 202
    return response.get_json()["id"]


@pytest.mark.parametrize("path", ["/", "/jobs", "/healthz", "/api/functions", "/api/jobs/nope", "/static/app.js"])
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert script_src == "'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    response.close()  # a static file is sent from an open file


def test_pages_carry_no_inline_script_or_event_handlers(client, job_id):
    for path in ("/", "/jobs", f"/jobs/{job_id}", "/jobs/no-such-job"):
        html = client.get(path).get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, f"inline script on {path}: {tag}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler on {path}"


def test_a_view_may_set_its_own_policy(redis_server, redis_conn):
    app = create_app({"REDIS_URL": redis_server.url, "RQ_DASHBOARD_PASSWORD": "x", "TESTING": True})

    @app.get("/own-policy")
    def own_policy():  # header names are case-insensitive: a view's own wins however it spells them
        return "ok", 200, {"content-security-policy": "default-src 'none'", "X-FRAME-OPTIONS": "SAMEORIGIN"}

    response = app.test_client().get("/own-policy")
    assert response.headers.getlist("Content-Security-Policy") == ["default-src 'none'"]
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]


def test_the_job_page_embeds_the_job_as_inert_json(client, redis_conn, job_id):
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f'"id": "{job_id}"' in html or f'"id":"{job_id}"' in html
    assert client.get("/jobs/bad:id").status_code == 404
    assert client.get("/jobs/no-such-job").status_code == 404


@pytest.mark.parametrize(
    "headers",
    [{"Origin": EVIL}, {"Origin": "null"}, {"Referer": EVIL + "/page"}, {"Origin": "http://localhost.evil.example"}],
)
def test_cross_site_api_posts_are_refused_before_anything_is_enqueued(client, redis_conn, headers):
    response = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}, headers=headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "cross_site_request"
    assert redis_conn.llen("rq:queue:default") == 0


MALFORMED = [{"Origin": "http://[::1"}, {"Referer": "http://[x/"}, {"Origin": "http://localhost:99999999"}]


@pytest.mark.parametrize("headers", MALFORMED)
@pytest.mark.parametrize(
    "path", ["/api/jobs", "/signin", "/signout", "/pubsub", "/rq/requeue/default", "/api/queues/default/pause"]
)
def test_a_malformed_origin_or_referer_is_a_cross_site_refusal_not_a_500(client, redis_conn, headers, path):
    dashboard = {"Authorization": "Basic " + base64.b64encode(b"admin:test-password").decode()}
    response = client.post(path, json={"name": "add", "args": [1, 2]}, headers={**dashboard, **headers})
    assert response.status_code == 403, response.get_json()
    assert response.get_json()["error"]["code"] == "cross_site_request"
    assert redis_conn.llen("rq:queue:default") == 0


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://localhost"}, {"Referer": "http://localhost/"}])
def test_same_site_and_non_browser_api_posts_pass(client, headers):
    response = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}, headers=headers)
    assert response.status_code == 202


def test_demo_buttons_post_only_from_this_site(client, redis_conn):
    assert client.post("/prodcons").status_code == 403  # no Origin, no Referer: not from our page
    assert client.post("/prodcons", headers={"Origin": EVIL}).status_code == 403
    assert redis_conn.llen("rq:queue:default") == 0
    same = {"Origin": "http://localhost", "Accept": "application/json"}
    response = client.post("/prodcons", headers=same)
    assert response.status_code == 202
    body = response.get_json()
    assert 0 <= body["number"] <= 9 and body["url"] == f"/jobs/{body['id']}"
    assert redis_conn.llen("rq:queue:default") == 1
    form_post = client.post("/prodcons", headers={"Referer": "http://localhost/"})
    assert form_post.status_code == 303 and form_post.headers["Location"] == "/"


def test_pubsub_button_publishes(client, redis_conn):
    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("task:pubsub:channel")
    response = client.post("/pubsub", headers={"Origin": "http://localhost", "Accept": "application/json"})
    assert response.status_code == 200
    data = response.get_json()["data"]
    message = None
    for _ in range(20):
        message = pubsub.get_message(timeout=0.2)
        if message:
            break
    assert message is not None and message["data"].decode() == data
    pubsub.close()


def test_the_api_docs_page_may_use_inline_styles_but_never_inline_script(client):
    csp = client.get("/api/docs").headers["Content-Security-Policy"]
    assert re.search(r"script-src ([^;]*)", csp).group(1) == "'self'"
    assert "style-src 'self' 'unsafe-inline'" in csp
    assert "style-src 'self';" in client.get("/").headers["Content-Security-Policy"]
