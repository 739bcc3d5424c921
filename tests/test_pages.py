"""The home page, the health check and the tutorial's demos."""

from __future__ import annotations

import re
import time

from rq.job import Job
from rq.serializers import JSONSerializer


def test_home_page_links_the_api_the_dashboard_and_the_demos(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for link in ("/prodcons", "/pubsub", "/rq", "/api/functions", "/healthz"):
        assert link in html


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok", "redis": "ok"}


def test_prodcons_enqueues_a_random_number_job_and_redirects(client, redis_conn):
    response = client.get("/prodcons")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    (job_id,) = redis_conn.lrange("rq:queue:default", 0, -1)
    job = Job.fetch(job_id.decode(), connection=redis_conn, serializer=JSONSerializer)
    assert job.func_name == "jobs.demo.task_get"
    assert 0 <= job.kwargs["number"] <= 9


def test_pubsub_publishes_a_random_number_on_the_demo_channel(client, redis_conn):
    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("task:pubsub:channel")
    pubsub.get_message(timeout=1)
    response = client.get("/pubsub")
    assert response.status_code == 302
    deadline = time.monotonic() + 2
    message = None
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
    assert message is not None
    assert 0 <= int(message["data"]) <= 9
    pubsub.close()


def test_form_fields_follow_the_parameter_schema():
    from webapp.web.pages import form_fields

    schema = {
        "properties": {
            "a": {"title": "A", "type": "integer", "minimum": 1},
            "ratio": {"title": "Ratio", "type": "number", "default": 0.5, "maximum": 1},
            "loud": {"title": "Loud", "type": "boolean", "default": True},
            "tags": {"title": "Tags", "type": "array", "items": {"type": "string"}},
        },
        "required": ["a"],
    }
    fields = {field["name"]: field for field in form_fields(schema)}
    assert list(fields) == ["a", "ratio", "loud", "tags"]
    assert fields["a"]["kind"] == "integer" and fields["a"]["required"] and fields["a"]["minimum"] == 1
    assert fields["ratio"]["kind"] == "number" and fields["ratio"]["default"] == 0.5 and fields["ratio"]["maximum"] == 1
    assert fields["loud"]["kind"] == "boolean" and not fields["loud"]["required"]
    assert fields["tags"]["kind"] == "json"


def test_home_page_has_a_labelled_typed_form_per_job_type(client):
    html = client.get("/").get_data(as_text=True)
    for name in ("add", "sleep", "fail", "task_get"):
        assert f'data-job="{name}"' in html
    assert '<label for="f-add-a">' in html and 'id="f-add-a"' in html
    sleep_input = re.search(r'<input id="f-sleep-seconds"[^>]*>', html, re.S).group(0)
    for attribute in ('type="number"', 'min="0"', 'max="3600"', 'value="5.0"', 'step="any"'):
        assert attribute in sleep_input
    assert "(required)" in html  # add's a and b carry a required marker for screen readers too


def test_job_page_and_list_render(client):
    job_id = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}).get_json()["id"]
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="progress"' in html and 'id="timeline"' in html and f"/api/jobs/{job_id}/events" in html
    listing = client.get("/jobs?status=queued&queue=default&name=add")
    assert listing.status_code == 200
    assert '<option value="queued" selected>' in listing.get_data(as_text=True)
    missing = client.get("/jobs/does-not-exist")
    assert missing.status_code == 404 and b"Not found" in missing.data
