"""One authentication gate for the whole API, proved for every rule of the URL map.

With API keys set, every /api rule (event streams included, and any rule added later) answers
401 without a key, except the documented public ones (the OpenAPI document and its docs page);
every rule that addresses a job answers 404 for another owner's job; and `/api/events` carries
only the caller's own jobs (admins: all), over a real gunicorn server.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.servers import start_web, start_worker
from tests.sse import events_only, parse_frames
from webapp import create_app
from webapp.web.auth import is_api_path

ALICE, BOB, ADMIN = "alice-key-1", "bob-key-2", "root-key-3"
KEYS = {"API_KEYS": f"alice:{ALICE},bob:{BOB}", "ADMIN_API_KEYS": f"ops:{ADMIN}"}
PUBLIC = {"docs.openapi_document", "docs.docs_page", "docs.swagger_asset", "docs.static"}
SAMPLE_ARGS = {"name": "swagger-ui.css", "filename": "api-docs.js", "delivery_id": "1-0", "queue_name": "default"}


@pytest.fixture
def app(redis_server, redis_conn):
    return create_app({"REDIS_URL": redis_server.url, "TESTING": True, **KEYS})


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def api_rules(app):
    """Every (rule, method) under /api, with sample values for its arguments."""
    for rule in app.url_map.iter_rules():
        if not is_api_path(rule.rule):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD"}):
            values = {name: SAMPLE_ARGS.get(name, "0123456789abcdef") for name in rule.arguments}
            with app.test_request_context():
                path = app.url_for(rule.endpoint, **values)
            yield rule, method, path


def test_every_api_rule_needs_a_key_except_the_documented_public_ones(app):
    client = app.test_client()
    seen, public = 0, set()
    for rule, method, path in api_rules(app):
        with client.open(path, method=method, json={} if method in ("POST", "PUT", "PATCH") else None) as response:
            response.close()
        seen += 1
        if rule.endpoint in PUBLIC:
            public.add(rule.endpoint)
            assert response.status_code != 401, (method, path)
            continue
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.get_json()["error"]["code"] == "unauthorized"
    assert public == PUBLIC, "the public rules changed: update the README's API keys section and this test"
    assert seen >= 15


def test_every_rule_that_addresses_a_job_hides_another_owners_job(app, redis_conn):
    client = app.test_client()
    alice_job = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}, headers=bearer(ALICE)).get_json()["id"]
    checked = 0
    for rule, method, path in api_rules(app):
        if "job_id" not in rule.arguments or method == "OPTIONS":  # Flask's OPTIONS only lists the methods
            continue
        with app.test_request_context():
            path = app.url_for(
                rule.endpoint,
                **{**{name: SAMPLE_ARGS[name] for name in rule.arguments - {"job_id"}}, "job_id": alice_job},
            )
        body = {} if method in ("POST", "PUT", "PATCH") else None
        response = client.open(path, method=method, json=body, headers=bearer(BOB))
        assert response.status_code == 404, (method, path, response.status_code)
        checked += 1
        if method == "GET":
            assert client.open(path, method=method, headers=bearer(ADMIN)).status_code == 200, path
    assert checked >= 4  # read, cancel, retry, events
    # nothing Bob tried changed Alice's job
    assert client.get(f"/api/jobs/{alice_job}", headers=bearer(ALICE)).get_json()["status"] == "queued"


def collect(url: str, key: str, received: list, ready: threading.Event, stop: threading.Event) -> None:
    with httpx.stream("GET", url, headers=bearer(key), timeout=30) as response:
        assert response.status_code == 200
        for frame in parse_frames(response.iter_lines()):
            ready.set()
            if "data" in frame:
                received.append(json.loads(frame["data"]))
            if stop.is_set():
                return


def test_the_workers_list_names_only_the_callers_own_running_job(app, redis_server, redis_conn):
    worker = start_worker(redis_server.url, "--processes", "1")
    try:
        client = app.test_client()
        job_id = client.post("/api/jobs", json={"name": "sleep", "args": [5]}, headers=bearer(ALICE)).get_json()["id"]
        for _ in range(200):
            if client.get(f"/api/jobs/{job_id}", headers=bearer(ALICE)).get_json()["status"] == "started":
                break
            time.sleep(0.05)

        def current_jobs(key: str) -> list:
            return [w["current_job"] for w in client.get("/api/workers", headers=bearer(key)).get_json()["workers"]]

        assert current_jobs(ALICE) == [job_id]
        assert current_jobs(ADMIN) == [job_id]
        assert current_jobs(BOB) == [None]  # another owner's job id is not bob's to know
    finally:
        worker.stop()


def test_the_all_events_stream_carries_only_the_callers_jobs(redis_server, redis_conn):
    web, base = start_web(redis_server.url, **KEYS)
    worker = start_worker(redis_server.url)
    streams = {}
    try:
        stop = threading.Event()
        for who, key in (("alice", ALICE), ("bob", BOB), ("ops", ADMIN)):
            received, ready = [], threading.Event()
            thread = threading.Thread(target=collect, args=(base + "/api/events", key, received, ready, stop))
            thread.start()
            assert ready.wait(10), f"{who}'s stream did not open"
            streams[who] = (thread, received)
        jobs = {}
        for who, key in (("alice", ALICE), ("bob", BOB)):
            answer = httpx.post(base + "/api/jobs", json={"name": "add", "args": [1, 2]}, headers=bearer(key))
            jobs[who] = answer.json()["id"]
        # the admin's stream sees both jobs end; then the others have had every event too
        deadline = threading.Event()
        for _ in range(200):
            finished = {e["job_id"] for e in streams["ops"][1] if e["event"] == "finished"}
            if finished >= set(jobs.values()):
                break
            deadline.wait(0.1)
        httpx.post(base + "/api/jobs", json={"name": "add", "args": [0, 0]}, headers=bearer(ADMIN))  # wakes all
        deadline.wait(1.0)
        stop.set()
        for who in ("alice", "bob"):
            seen = {event["job_id"] for event in streams[who][1]}
            assert seen == {jobs[who]}, (who, seen)
            assert all(event["owner"] == who for event in streams[who][1])
            assert {"queued", "started", "finished"} <= {e["event"] for e in streams[who][1]}
        assert set(jobs.values()) <= {event["job_id"] for event in streams["ops"][1]}
    finally:
        worker.stop()
        web.stop()
        for thread, _ in streams.values():
            thread.join(10)


def test_event_streams_need_a_key_on_a_real_server(redis_server, redis_conn):
    web, base = start_web(redis_server.url, **KEYS)
    try:
        for path in ("/api/events", "/api/jobs/0123456789abcdef/events", "/api/demo/events"):
            response = httpx.get(base + path, timeout=5)
            assert response.status_code == 401, path
            assert response.headers["content-type"].startswith("application/json")
        alice_job = httpx.post(base + "/api/jobs", json={"name": "add", "args": [1, 2]}, headers=bearer(ALICE)).json()
        response = httpx.get(f"{base}/api/jobs/{alice_job['id']}/events", headers=bearer(BOB), timeout=5)
        assert response.status_code == 404
        with httpx.stream("GET", f"{base}/api/jobs/{alice_job['id']}/events", headers=bearer(ALICE), timeout=5) as ok:
            assert ok.status_code == 200
            first = next(events_only(parse_frames(ok.iter_lines())))
            assert json.loads(first["data"])["event"] == "queued"
    finally:
        web.stop()
