"""The real stack: gunicorn serving the app and worker.py processes, driven over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from tests.servers import listener_subscribed, start_web, start_worker


@pytest.fixture
def stack(redis_server, redis_conn):
    web, base = start_web(redis_server.url)
    worker = start_worker(redis_server.url, "--processes", "2")
    wait_until(lambda: redis_conn.scard("rq:workers") >= 2)  # measure a running stack, not its start
    yield base
    worker.stop()
    web.stop()


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def wait_finished(http, base, job_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(f"{base}/api/jobs/{job_id}").json()
        if body["status"] in ("finished", "failed"):
            return body
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not end: {body}")


def test_add_over_http_finishes_with_5(stack):
    with httpx.Client() as http:
        http.post(f"{stack}/api/jobs", json={"name": "add", "args": [0, 0]})  # warm both tiers
        started = time.monotonic()
        response = http.post(f"{stack}/api/jobs", json={"name": "add", "args": [2, 3]})
        assert response.status_code == 202
        assert response.headers["location"] == f"/api/jobs/{response.json()['id']}"
        body = wait_finished(http, stack, response.json()["id"])
        elapsed = time.monotonic() - started
    assert body["result"] == 5
    # Typically ~20 ms here; the bound only catches a hang (the suite runs on loaded CI machines).
    assert elapsed < 10.0, elapsed


def test_bad_input_over_http_is_json_4xx(stack):
    with httpx.Client() as http:
        cases = [
            (http.post(f"{stack}/api/jobs", content=b"{oops", headers={"content-type": "application/json"}), 400),
            (http.post(f"{stack}/api/jobs", json={"name": "nope"}), 422),
            (http.post(f"{stack}/api/jobs", json={"name": "add", "args": ["1", 2]}), 422),
            (http.get(f"{stack}/api/jobs/abc:def"), 404),
            (http.get(f"{stack}/api/jobs/doesnotexist"), 404),
            (http.get(f"{stack}/rq/"), 401),
        ]
        for response, status in cases:
            assert response.status_code == status
            assert response.headers["content-type"] == "application/json"
            assert "error" in response.json()
        assert http.get(f"{stack}/rq/", auth=("admin", "test-password")).status_code == 200


def siege(url: str, concurrent: int = 10, repetitions: int = 5) -> list[int]:
    """What `siege -c10 -r5 URL` does: 10 clients, 5 requests each, redirects not followed."""

    def one_client(_):
        with httpx.Client() as http:
            return [http.get(url).status_code for _ in range(repetitions)]

    with ThreadPoolExecutor(concurrent) as pool:
        return [code for codes in pool.map(one_client, range(concurrent)) for code in codes]


def test_siege_on_prodcons_gives_50_finished_jobs(stack, redis_conn):
    assert siege(f"{stack}/prodcons") == [302] * 50
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        finished = redis_conn.zcard("rq:finished:default")
        if finished == 50:
            break
        time.sleep(0.1)
    assert finished == 50
    assert redis_conn.llen("rq:queue:default") == 0


def test_siege_on_pubsub_publishes_50_messages(stack, redis_conn):
    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("task:pubsub:channel")
    pubsub.get_message(timeout=1)
    assert siege(f"{stack}/pubsub") == [302] * 50
    received = []
    deadline = time.monotonic() + 5
    while len(received) < 50 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message:
            received.append(int(message["data"]))
    pubsub.close()
    assert len(received) == 50 and all(0 <= n <= 9 for n in received)


@contextmanager
def flask_listen(redis_server, *options: str):
    """A `flask listen` process, subscribed before the block runs, always reaped after it."""
    from tests.servers import ROOT, service_env

    listener = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "webapp", "listen", *options],
        cwd=ROOT,
        env=service_env(redis_server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = redis_server.client()
        try:
            wait_until(lambda: listener_subscribed(client, channels=2))
        finally:
            client.close()
        yield listener
    finally:
        if listener.poll() is None:
            listener.kill()
        listener.communicate()


def test_listen_command_prints_job_events_and_demo_messages(stack, redis_server):
    with flask_listen(redis_server, "--count", "4") as listener:
        with httpx.Client() as http:
            http.get(f"{stack}/pubsub")
            job_id = http.post(f"{stack}/api/jobs", json={"name": "add", "args": [1, 2]}).json()["id"]
        out, err = listener.communicate(timeout=15)
    lines = out.strip().splitlines()
    assert any(line.startswith("[task:pubsub:channel] Task get ") for line in lines), out + err
    assert [line.split()[1] for line in lines if job_id in line] == ["queued", "started", "finished"], out


def test_listen_json_prints_the_published_objects(stack, redis_server):
    with flask_listen(redis_server, "--json", "--count", "3") as listener:
        with httpx.Client() as http:
            job_id = http.post(f"{stack}/api/jobs", json={"name": "add", "args": [1, 2]}).json()["id"]
        out, err = listener.communicate(timeout=15)
    events = [json.loads(line) for line in out.strip().splitlines()]
    assert [(e["job_id"], e["event"]) for e in events] == [
        (job_id, "queued"),
        (job_id, "started"),
        (job_id, "finished"),
    ], err
