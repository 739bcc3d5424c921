"""The home page, the health check and the tutorial's demos."""

from __future__ import annotations

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
