"""The write side of the jobs API through Flask's test client, on a real private Redis:
options and their maxima, idempotency keys, batches, cancel and retry, limits, round trips."""

from __future__ import annotations

import json
import threading

import pytest
from rq.job import Job
from rq.registry import CanceledJobRegistry, DeferredJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer

from webapp import create_app


def post(client, path, body=None, headers=None, raw=None, content_type="application/json"):
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    return client.post(path, data=data, content_type=content_type, headers=headers or {})


def fetch(redis_conn, job_id) -> Job:
    return Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)


def events_of(redis_conn, job_id):
    return [json.loads(f[b"data"])["event"] for _, f in redis_conn.xrange(f"jobsvc:job-events:{job_id}")]


@pytest.fixture
def make_client(redis_server, redis_conn):
    def build(**config):
        settings = {"REDIS_URL": redis_server.url, "TESTING": True, **config}
        return create_app(settings).test_client()

    return build


# -- options ---------------------------------------------------------------------------------


def test_options_reach_rq_and_rq_can_read_the_job(client, redis_conn):
    body = {
        "name": "add",
        "args": [1, 2],
        "queue": "low",
        "timeout": 30,
        "result_ttl": 60,
        "ttl": 120,
        "failure_ttl": 90,
        "retry": {"max": 2, "intervals": [1, 5]},
        "description": "nightly sum",
    }
    response = post(client, "/api/jobs", body)
    assert response.status_code == 202
    job = fetch(redis_conn, response.get_json()["id"])
    assert (job.origin, job.timeout, job.result_ttl, job.ttl, job.failure_ttl) == ("low", 30, 60, 120, 90)
    assert (job.retries_left, job.retry_intervals) == (2, [1, 5])
    assert job.description == "nightly sum"
    assert job.kwargs == {"a": 1, "b": 2}
    assert redis_conn.lrange("rq:queue:low", 0, -1) == [job.id.encode()]
    assert client.get(f"/api/jobs/{job.id}").get_json()["description"] == "nightly sum"


@pytest.mark.parametrize(
    ("option", "value", "setting"),
    [
        ("timeout", 7201, "MAX_JOB_TIMEOUT"),
        ("result_ttl", 10**9, "MAX_RESULT_TTL"),
        ("failure_ttl", 10**9, "MAX_FAILURE_TTL"),
        ("ttl", 10**9, "MAX_JOB_TTL"),
        ("retry", {"max": 11}, "MAX_RETRIES"),
        ("retry", {"max": 1, "intervals": [99999]}, "MAX_RETRY_INTERVAL"),
        ("enqueue_in", 10**9, "MAX_ENQUEUE_IN"),
    ],
)
def test_options_over_the_server_maximum_are_422_naming_it(client, redis_conn, option, value, setting):
    response = post(client, "/api/jobs", {"name": "add", "args": [1, 2], option: value})
    assert response.status_code == 422
    message = response.get_json()["error"]["message"]
    assert setting in message and "at most" in message
    assert redis_conn.keys("rq:job:*") == []


@pytest.mark.parametrize(
    ("when", "status"),
    [
        ("2999-01-01T00:00:00Z", "scheduled"),
        ("9999-12-31T23:59:59.5-05:00", "scheduled"),
        ("0001-01-01T00:00:00+05:00", "queued"),
    ],
)
def test_any_enqueue_at_a_date_time_can_say_is_taken(client, redis_conn, when, status):
    """The schema says `date-time`, so every date-time is accepted: far ahead is scheduled, before
    year 1 (in UTC) runs now."""
    response = post(client, "/api/jobs", {"name": "add", "args": [1, 2], "enqueue_at": when})
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == status


def test_depending_on_an_unknown_job_is_a_404_naming_it(client, redis_conn):
    response = post(client, "/api/jobs", {"name": "add", "args": [1, 2], "depends_on": ["0123456789abcdef"]})
    assert response.status_code == 404
    assert response.get_json()["error"]["details"][0]["argument"] == "depends_on"
    assert "0123456789abcdef" in response.get_json()["error"]["message"]
    assert redis_conn.keys("rq:job:*") == []


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"priority": 1}, "priority"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "10"}, "timeout"),
        ({"enqueue_in": 1, "enqueue_at": "2030-01-01T00:00:00Z"}, "not both"),
        ({"enqueue_at": "tomorrow"}, "enqueue_at"),
        ({"retry": {"max": 1, "backoff": 2}}, "retry.backoff"),
        ({"depends_on": ["no:such"]}, "depends_on"),
        ({"depends_on": []}, "depends_on"),
        ({"description": "x" * 501}, "description"),
        ({"queue": "urgent"}, "queue"),
    ],
)
def test_bad_options_are_422_naming_the_field(client, redis_conn, extra, needle):
    response = post(client, "/api/jobs", {"name": "add", "args": [1, 2], **extra})
    assert response.status_code == 422, response.get_json()
    assert needle in response.get_json()["error"]["message"]
    assert redis_conn.keys("rq:job:*") == []


def test_scheduled_job_sits_in_rqs_scheduled_registry(client, redis_conn):
    response = post(client, "/api/jobs", {"name": "add", "args": [1, 2], "enqueue_in": 3600})
    job_id = response.get_json()["id"]
    assert response.get_json()["status"] == "scheduled"
    registry = ScheduledJobRegistry("default", connection=redis_conn, serializer=JSONSerializer)
    assert registry.get_job_ids() == [job_id]
    assert redis_conn.llen("rq:queue:default") == 0
    assert fetch(redis_conn, job_id).get_status().value == "scheduled"
    assert events_of(redis_conn, job_id) == ["scheduled"]


def test_dependency_on_an_unfinished_job_is_deferred(client, redis_conn):
    first = post(client, "/api/jobs", {"name": "add", "args": [1, 2]}).get_json()["id"]
    response = post(client, "/api/jobs", {"name": "add", "args": [3, 4], "depends_on": {"ids": [first]}})
    assert response.status_code == 202
    second = response.get_json()["id"]
    assert response.get_json()["status"] == "deferred"
    assert DeferredJobRegistry("default", connection=redis_conn).get_job_ids() == [second]
    assert fetch(redis_conn, second).dependency_ids == [first]
    assert events_of(redis_conn, second) == ["deferred"]


# -- idempotency -----------------------------------------------------------------------------


def test_same_idempotency_key_and_body_returns_the_original_job(client, redis_conn):
    headers = {"Idempotency-Key": "order-42"}
    first = post(client, "/api/jobs", {"name": "add", "args": [1, 2]}, headers)
    assert first.status_code == 202
    # Same body, other key order and spacing: still the same request.
    again = post(client, "/api/jobs", headers=headers, raw='{"args":[1,2],   "name":"add"}')
    assert again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert redis_conn.llen("rq:queue:default") == 1
    assert len(redis_conn.keys("rq:job:*")) == 1


def test_same_idempotency_key_with_another_body_is_409(client, redis_conn):
    headers = {"Idempotency-Key": "order-43"}
    assert post(client, "/api/jobs", {"name": "add", "args": [1, 2]}, headers).status_code == 202
    response = post(client, "/api/jobs", {"name": "add", "args": [1, 3]}, headers)
    assert response.status_code == 409
    assert "different request body" in response.get_json()["error"]["message"]
    assert redis_conn.llen("rq:queue:default") == 1


def test_idempotency_keys_expire(make_client, redis_conn):
    client = make_client(IDEMPOTENCY_TTL=1)
    headers = {"Idempotency-Key": "short-lived"}
    first = post(client, "/api/jobs", {"name": "add", "args": [1, 2]}, headers).get_json()["id"]
    (key,) = redis_conn.keys("jobsvc:idempotency:*")
    assert 0 < redis_conn.ttl(key) <= 1
    redis_conn.delete(key)  # what expiry does, without sleeping through it
    second = post(client, "/api/jobs", {"name": "add", "args": [1, 2]}, headers)
    assert second.status_code == 202 and second.get_json()["id"] != first


def test_bad_idempotency_key_is_422(client):
    response = post(client, "/api/jobs", {"name": "add", "args": [1, 2]}, {"Idempotency-Key": "x" * 300})
    assert response.status_code == 422 and "Idempotency-Key" in response.get_json()["error"]["message"]


def test_concurrent_duplicates_in_threads_make_one_job(app, redis_conn):
    results = []

    def one():
        response = post(app.test_client(), "/api/jobs", {"name": "add", "args": [5, 5]}, {"Idempotency-Key": "dup"})
        results.append((response.status_code, response.get_json()["id"]))

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(code for code, _ in results) == [200] * 19 + [202]
    assert len({job_id for _, job_id in results}) == 1
    assert len(redis_conn.keys("rq:job:*")) == 1


# -- batches ---------------------------------------------------------------------------------


def test_batch_enqueues_all_and_returns_their_ids(client, redis_conn):
    jobs = [{"name": "add", "args": [i, i]} for i in range(5)] + [{"name": "sleep", "args": [1], "queue": "high"}]
    response = post(client, "/api/jobs/batch", {"jobs": jobs})
    assert response.status_code == 202
    created = response.get_json()["jobs"]
    assert [job["name"] for job in created] == ["add"] * 5 + ["sleep"]
    assert all(job["url"] == f"/api/jobs/{job['id']}" for job in created)
    assert redis_conn.llen("rq:queue:default") == 5 and redis_conn.llen("rq:queue:high") == 1
    assert fetch(redis_conn, created[3]["id"]).kwargs == {"a": 3, "b": 3}


def test_batch_is_all_or_nothing_and_names_each_bad_item(client, redis_conn):
    jobs = [{"name": "add", "args": [1, 2]}, {"name": "add", "args": ["x", 2]}, {"name": "nope"}, {"name": "add"}]
    response = post(client, "/api/jobs/batch", {"jobs": jobs})
    assert response.status_code == 422
    error = response.get_json()["error"]
    arguments = [detail["argument"] for detail in error["details"]]
    assert "jobs[1].a" in arguments and "jobs[2]" in arguments and "jobs[3].a" in arguments
    assert not any(argument.startswith("jobs[0]") for argument in arguments)
    assert redis_conn.keys("rq:*") == []


def test_batch_bounds(make_client, redis_conn):
    client = make_client(MAX_BATCH=3)
    response = post(client, "/api/jobs/batch", {"jobs": [{"name": "add", "args": [1, 1]}] * 4})
    assert response.status_code == 422 and "MAX_BATCH" in response.get_json()["error"]["message"]
    assert post(client, "/api/jobs/batch", {"jobs": []}).status_code == 422
    assert post(client, "/api/jobs/batch", {"jobs": [{"name": "add", "args": [1, 1], "x": 1}]}).status_code == 422
    assert redis_conn.keys("rq:*") == []


# -- cancel and retry ------------------------------------------------------------------------


def test_cancel_a_queued_job(client, redis_conn):
    job_id = post(client, "/api/jobs", {"name": "add", "args": [1, 2]}).get_json()["id"]
    response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.get_json()["status"] == "canceled"
    assert redis_conn.llen("rq:queue:default") == 0
    assert CanceledJobRegistry("default", connection=redis_conn).get_job_ids() == [job_id]
    assert events_of(redis_conn, job_id) == ["queued", "canceled"]
    again = client.post(f"/api/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "canceled" in again.get_json()["error"]["message"]


@pytest.mark.parametrize("extra", [{"enqueue_in": 600}, {"depends_on": "FIRST"}])
def test_cancel_a_scheduled_or_deferred_job(client, redis_conn, extra):
    first = post(client, "/api/jobs", {"name": "add", "args": [1, 2]}).get_json()["id"]
    if extra.get("depends_on") == "FIRST":
        extra = {"depends_on": [first]}
    job_id = post(client, "/api/jobs", {"name": "add", "args": [3, 4], **extra}).get_json()["id"]
    assert client.post(f"/api/jobs/{job_id}/cancel").get_json()["status"] == "canceled"
    assert redis_conn.zcard("rq:scheduled:default") == 0 and redis_conn.zcard("rq:deferred:default") == 0
    assert fetch(redis_conn, job_id).get_status().value == "canceled"


def test_cancel_or_retry_of_a_finished_job_is_409_with_its_status(client, redis_conn):
    job_id = post(client, "/api/jobs", {"name": "add", "args": [1, 2]}).get_json()["id"]
    redis_conn.hset(f"rq:job:{job_id}", "status", "finished")
    response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 409 and "finished" in response.get_json()["error"]["message"]
    response = post(client, f"/api/jobs/{job_id}/retry")
    assert response.status_code == 409 and "finished" in response.get_json()["error"]["message"]


def test_retry_a_canceled_job_requeues_it(client, redis_conn):
    job_id = post(client, "/api/jobs", {"name": "add", "args": [1, 2]}).get_json()["id"]
    client.post(f"/api/jobs/{job_id}/cancel")
    response = post(client, f"/api/jobs/{job_id}/retry")
    assert response.status_code == 202 and response.get_json()["status"] == "queued"
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [job_id.encode()]
    assert events_of(redis_conn, job_id) == ["queued", "canceled", "queued"]
    assert post(client, f"/api/jobs/{job_id}/retry").status_code == 409


@pytest.mark.parametrize("method", ["delete", "retry"])
def test_cancel_and_retry_of_unknown_ids_are_404(client, method):
    for job_id in ("0123456789abcdef", "bad:id"):
        if method == "delete":
            response = client.post(f"/api/jobs/{job_id}/cancel")
        else:
            response = post(client, f"/api/jobs/{job_id}/retry")
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


# -- content type and limits -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_posts_must_be_declared_json(client, redis_conn, content_type):
    response = client.post("/api/jobs", data='{"name": "add", "args": [1, 2]}', content_type=content_type)
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"
    assert redis_conn.keys("rq:*") == []


def test_json_with_a_charset_is_fine(client):
    response = post(
        client, "/api/jobs", {"name": "add", "args": [1, 2]}, content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 202


def test_arguments_over_max_args_bytes_are_413(make_client, redis_conn):
    client = make_client(MAX_ARGS_BYTES=100)
    response = post(client, "/api/jobs", {"name": "fail", "args": ["x" * 200]})
    assert response.status_code == 413
    assert "MAX_ARGS_BYTES" in response.get_json()["error"]["message"]
    assert post(client, "/api/jobs", {"name": "fail", "args": ["x" * 50]}).status_code == 202


def test_rate_limit_is_429_with_retry_after(make_client, redis_conn):
    client = make_client(SUBMIT_RATE_LIMIT="3/minute")
    codes = [post(client, "/api/jobs", {"name": "add", "args": [1, 2]}).status_code for _ in range(3)]
    assert codes == [202, 202, 202]
    response = post(client, "/api/jobs", {"name": "add", "args": [1, 2]})
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.get_json()["error"]["code"] == "rate_limited"
    assert redis_conn.llen("rq:queue:default") == 3
    # A batch counts each of its jobs.
    redis_conn.delete(*redis_conn.keys("jobsvc:rate:*"))
    assert post(client, "/api/jobs/batch", {"jobs": [{"name": "add", "args": [1, 1]}] * 4}).status_code == 429


def test_rate_limit_setting_is_checked_at_start(redis_server):
    with pytest.raises(ValueError, match="SUBMIT_RATE_LIMIT"):
        create_app({"REDIS_URL": redis_server.url, "SUBMIT_RATE_LIMIT": "lots"})


def test_queue_depth_cap_is_503_with_retry_after(make_client, redis_conn):
    client = make_client(MAX_QUEUE_DEPTH=2)
    assert [post(client, "/api/jobs", {"name": "add", "args": [1, 2]}).status_code for _ in range(2)] == [202, 202]
    response = post(client, "/api/jobs", {"name": "add", "args": [1, 2]})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "MAX_QUEUE_DEPTH" in response.get_json()["error"]["message"]
    # Other queues are not full.
    assert post(client, "/api/jobs", {"name": "add", "args": [1, 2], "queue": "high"}).status_code == 202
    assert redis_conn.llen("rq:queue:default") == 2


# -- one round trip per submission -----------------------------------------------------------


def commands_sent(redis_server, action) -> list[str]:
    """The commands clients sent to Redis while `action` ran (not those run inside scripts)."""
    sentinel = "end-of-action-7f3a"
    marker = redis_server.client()
    marker.ping()  # connected (HELLO and all) before the monitor starts
    with redis_server.client().monitor() as monitor:
        action()
        marker.echo(sentinel)
        sent = []
        while True:
            command = monitor.next_command()
            if sentinel in command["command"]:
                marker.close()
                return sent
            if command.get("client_type") != "lua":
                sent.append(command["command"])


@pytest.mark.parametrize(
    "config",
    [{}, {"SUBMIT_RATE_LIMIT": "1000/second", "MAX_QUEUE_DEPTH": 1000}],
    ids=["plain", "with-limits"],
)
def test_a_submission_is_one_round_trip(make_client, redis_server, config):
    client = make_client(**config)
    post(client, "/api/jobs", {"name": "add", "args": [0, 0]})  # warm up: RQ asks the server version once
    body = {"name": "add", "args": [1, 2]}
    sent = commands_sent(redis_server, lambda: post(client, "/api/jobs", body))
    assert len(sent) == 1 and sent[0].startswith("EVALSHA"), sent
    sent = commands_sent(redis_server, lambda: post(client, "/api/jobs", body, {"Idempotency-Key": "k"}))
    assert len(sent) == 1, sent
    batch = {"jobs": [body] * 10}
    sent = commands_sent(redis_server, lambda: post(client, "/api/jobs/batch", batch))
    assert len(sent) == 1, sent


def test_the_script_is_reloaded_after_script_flush(client, redis_conn):
    assert post(client, "/api/jobs", {"name": "add", "args": [1, 2]}).status_code == 202
    redis_conn.script_flush()
    assert post(client, "/api/jobs", {"name": "add", "args": [1, 2]}).status_code == 202
    assert redis_conn.llen("rq:queue:default") == 2


def test_rqs_ready_to_enqueue_step_reads_as_deferred_and_can_be_canceled(client, redis_conn):
    first = post(client, "/api/jobs", {"name": "add", "args": [1, 2]}).get_json()["id"]
    job_id = post(client, "/api/jobs", {"name": "add", "args": [3, 4], "depends_on": [first]}).get_json()["id"]
    redis_conn.hset(f"rq:job:{job_id}", "status", "ready_to_enqueue")  # what RQ writes when the dependency ends
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "deferred"
    assert client.post(f"/api/jobs/{job_id}/cancel").get_json()["status"] == "canceled"


def test_rq_dashboard_reads_jobs_written_in_one_round_trip(client, redis_conn):
    import base64

    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:test-password").decode()}
    job_id = post(client, "/api/jobs", {"name": "add", "args": [1, 2], "description": "seen by the dashboard"})
    job_id = job_id.get_json()["id"]
    post(client, "/api/jobs", {"name": "add", "args": [1, 2], "enqueue_in": 600})
    detail = client.get(f"/rq/0/data/job/{job_id}.json", headers=auth)
    assert detail.status_code == 200
    assert detail.get_json()["description"] == "seen by the dashboard"
    queues = {q["name"]: q["count"] for q in client.get("/rq/0/data/queues.json", headers=auth).get_json()["queues"]}
    assert queues["default"] == 1
    scheduled = client.get("/rq/0/data/jobs/default/scheduled/10/asc/1.json", headers=auth).get_json()
    assert len(scheduled["jobs"]) == 1
