"""The JSON API through Flask's test client, against a real private Redis."""

from __future__ import annotations

import json
import time

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from tests.servers import free_port
from webapp import create_app


def submit(client, body):
    return client.post("/api/jobs", data=json.dumps(body), content_type="application/json")


def test_submit_returns_202_with_id_and_location(client, redis_conn):
    response = submit(client, {"name": "add", "args": [2, 3]})
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued" and body["name"] == "add" and body["queue"] == "default"
    assert response.headers["Location"] == f"/api/jobs/{body['id']}"
    job = Job.fetch(body["id"], connection=redis_conn, serializer=JSONSerializer)
    assert job.func_name == "jobs.basic.add"
    assert job.kwargs == {"a": 2, "b": 3} and job.args == []
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [body["id"].encode()]


def test_status_of_a_queued_job(client):
    job_id = submit(client, {"name": "add", "args": [2, 3], "queue": "high"}).get_json()["id"]
    body = client.get(f"/api/jobs/{job_id}").get_json()
    assert body["id"] == job_id and body["name"] == "add" and body["queue"] == "high"
    assert body["status"] == "queued"
    assert body["result"] is None and body["error"] is None and body["progress"] is None
    assert body["enqueued_at"].endswith("Z") and body["started_at"] is None and body["ended_at"] is None
    assert body["last_event_id"]


def test_client_json_never_becomes_enqueue_options(client, redis_conn):
    # Keys that are RQ enqueue options elsewhere are just unknown arguments here.
    response = submit(client, {"name": "add", "args": [1, 2], "kwargs": {"job_timeout": 1}})
    assert response.status_code == 422
    response = submit(client, {"name": "add", "args": [1, 2], "job_id": "mine"})
    assert response.status_code == 422
    assert redis_conn.llen("rq:queue:default") == 0


def test_dotted_paths_are_not_job_names(client, redis_conn):
    response = submit(client, {"name": "os.system", "args": ["true"]})
    assert response.status_code == 422
    assert "/api/functions" in response.get_json()["error"]["message"]
    assert redis_conn.keys("rq:job:*") == []


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"name": "nope"}, 422, "unknown job name"),
        ({"name": 5}, 422, "unknown job name"),
        ({"name": "add", "args": [1]}, 422, "b"),
        ({"name": "add", "args": ["x", 1]}, 422, "a"),
        ({"name": "add", "args": [1, 2, 3]}, 422, "positional"),
        ({"name": "add", "args": {"a": 1}}, 422, "args"),
        ({"name": "add", "kwargs": [1]}, 422, "kwargs"),
        ({"name": "add", "args": [1, 2], "queue": "nope"}, 422, "queue"),
        ({"name": "add", "args": [1, 2], "queue": 3}, 422, "queue"),
        ({"name": "sleep", "args": [99999]}, 422, "seconds"),
        ({"args": [1, 2]}, 422, "unknown job name"),
    ],
)
def test_bad_submissions_get_json_4xx_and_enqueue_nothing(client, redis_conn, body, status, needle):
    response = submit(client, body)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert needle in error["message"]
    assert redis_conn.keys("rq:job:*") == []


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"name": "add",'])
def test_malformed_json_is_400(client, raw):
    response = client.post("/api/jobs", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"add"', b"null", b"3"])
def test_json_that_is_not_an_object_is_422(client, raw):
    response = client.post("/api/jobs", data=raw, content_type="application/json")
    # `null` parses to None, which reads as no body at all.
    assert response.status_code in (400, 422)
    assert "error" in response.get_json()


def test_oversized_body_is_413(client):
    body = {"name": "fail", "args": ["x" * 70000]}
    response = submit(client, body)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


@pytest.mark.parametrize("job_id", ["abc:def", "a b", "rq:job:x", "x" * 200, "%00", "..%2f"])
def test_ids_that_are_not_job_ids_are_404_without_reaching_redis(client, redis_conn, job_id):
    # Plant a job whose id is the prefix before ':' so a lax lookup would find it.
    redis_conn.hset("rq:job:abc", mapping={"status": "queued"})
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_unknown_id_is_404(client):
    response = client.get("/api/jobs/0123456789abcdef0123456789abcdef")
    assert response.status_code == 404
    assert "expired" in response.get_json()["error"]["message"]


def test_unknown_route_and_wrong_method_are_json(client):
    assert client.get("/api/nope").get_json()["error"]["code"] == "not_found"
    response = client.delete("/api/functions")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_catalog_lists_the_allowed_jobs_with_schemas(client):
    functions = {f["name"]: f for f in client.get("/api/functions").get_json()["functions"]}
    assert {"add", "sleep", "fail", "task_get"} <= set(functions)
    assert functions["add"]["parameters"]["required"] == ["a", "b"]


def test_redis_down_is_a_quick_503_not_a_500_or_a_hang():
    app = create_app({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "TESTING": True})
    client = app.test_client()
    started = time.monotonic()
    response = submit(client, {"name": "add", "args": [1, 2]})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "redis_unavailable"
    assert response.headers["Retry-After"] == "1"
    assert client.get("/api/jobs/abc").status_code == 503
    assert client.get("/healthz").status_code == 503
    assert time.monotonic() - started < 5
    # Validation still answers without Redis: bad input is the client's problem first.
    assert submit(client, {"name": "nope"}).status_code == 422
