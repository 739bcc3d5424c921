"""Pausing and resuming a queue against a real Redis and real worker processes: a paused queue
keeps its jobs queued (submissions still accepted), running jobs finish, other queues keep
running, resume wakes idle workers at once, the state survives a worker restart; roles,
events, audit entries, the CLI and RQ's own dequeue path."""

from __future__ import annotations

import json
import time

import pytest

from tests.keyed import ADMIN_KEY, OWNER_KEY, SAME_SITE, VIEWER_KEY, basic, bearer, keyed_app, sign_in
from tests.servers import RedisServer, listener_subscribed, start_worker
from webapp import create_app
from webapp.store import keys
from webapp.worker.rqworker import ServiceWorker


def submit(client, name, args, queue, headers=None):
    response = client.post("/api/jobs", json={"name": name, "args": args, "queue": queue}, headers=headers or {})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def statuses(redis_conn, ids) -> list[str]:
    with redis_conn.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(keys.job(job_id), "status")
        return [(value or b"").decode() for value in pipe.execute()]


def wait_until(condition, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def queue_view(client, name, headers=None) -> dict:
    queues = client.get("/api/queues", headers=headers or {}).get_json()["queues"]
    return next(queue for queue in queues if queue["name"] == name)


def queue_events(redis_conn) -> list[dict]:
    return [json.loads(fields[b"data"]) for _, fields in redis_conn.xrange(keys.QUEUE_EVENTS_STREAM)]


def started_at(redis_conn, job_id) -> float:
    """When the job's `started` event was written (its stream id, in seconds)."""
    for entry_id, fields in redis_conn.xrange(keys.job_events(job_id)):
        if json.loads(fields[b"data"])["event"] == "started":
            return int(entry_id.decode().split("-")[0]) / 1000
    raise AssertionError(f"job {job_id} has no started event")


# -- the API, roles, events, audit, CLI (in process) ----------------------------------------------


@pytest.fixture
def keyed(redis_server, redis_conn):
    return keyed_app(redis_server.url)


def test_roles_viewer_and_owner_403_admin_200_unknown_queue_404(keyed, redis_conn):
    client = keyed.test_client()
    for key in (VIEWER_KEY, OWNER_KEY):
        for action in ("pause", "resume"):
            response = client.post(f"/api/queues/low/{action}", json={}, headers={**bearer(key), **SAME_SITE})
            assert response.status_code == 403, (key, action)
    assert redis_conn.exists(keys.PAUSED_QUEUES) == 0
    response = client.post("/api/queues/low/pause", headers=bearer(ADMIN_KEY))
    assert response.status_code == 200
    view = response.get_json()
    assert (view["name"], view["paused"], view["paused_by"]) == ("low", True, "ops")
    assert view["paused_at"].endswith("Z")
    # every key may read the state
    assert queue_view(client, "low", bearer(VIEWER_KEY))["paused"] is True
    assert queue_view(client, "default", bearer(OWNER_KEY))["paused"] is False
    missing = client.post("/api/queues/nope/pause", headers=bearer(ADMIN_KEY))
    assert missing.status_code == 404 and "high, default, low" in missing.get_json()["error"]["message"]
    extra = client.post("/api/queues/low/resume", json={"now": True}, headers=bearer(ADMIN_KEY))
    assert extra.status_code == 422
    resumed = client.post("/api/queues/low/resume", json={}, headers=bearer(ADMIN_KEY))
    assert resumed.status_code == 200 and resumed.get_json()["paused"] is False
    assert resumed.get_json()["paused_at"] is None and resumed.get_json()["paused_by"] is None


def test_events_once_per_change_published_and_audited(keyed, redis_conn):
    client = keyed.test_client()
    channel = keys.queue_events_channel(keyed.config)
    pubsub = redis_conn.pubsub()
    pubsub.subscribe(channel)
    wait_until(lambda: pubsub.get_message(timeout=0.1), 5, "the subscription")  # its confirmation
    for action in ("pause", "pause", "resume", "resume"):  # the repeats change nothing
        assert client.post(f"/api/queues/default/{action}", headers=bearer(ADMIN_KEY)).status_code == 200
    events = queue_events(redis_conn)
    assert [(e["event"], e["queue"], e["by"]) for e in events] == [
        ("queue.paused", "default", "ops"),
        ("queue.resumed", "default", "ops"),
    ]
    published = []
    deadline = time.monotonic() + 5
    while len(published) < 2 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            published.append(json.loads(message["data"]))
    pubsub.close()
    assert [p["event"] for p in published] == ["queue.paused", "queue.resumed"]
    assert all(p["id"] for p in published)
    entries = keyed.extensions["audit_log"].page(limit=10)["entries"]
    assert [(e["action"], e["actor"], e["target"], e["status"]) for e in entries] == [
        ("resumeQueue", "ops", {"queue_name": "default"}, 200),
        ("resumeQueue", "ops", {"queue_name": "default"}, 200),
        ("pauseQueue", "ops", {"queue_name": "default"}, 200),
        ("pauseQueue", "ops", {"queue_name": "default"}, 200),
    ]


def test_the_cli_pauses_lists_and_resumes_as_the_operator(app, redis_conn):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["queues", "pause", "low"])
    assert result.exit_code == 0, result.output
    assert "low paused" in result.output
    listed = runner.invoke(args=["queues", "list", "--json"])
    low = next(q for q in json.loads(listed.output)["queues"] if q["name"] == "low")
    assert low["paused"] is True and low["paused_by"]  # the operator's login
    assert "paused since" in runner.invoke(args=["queues", "list"]).output
    unknown = runner.invoke(args=["queues", "resume", "nope"])
    assert unknown.exit_code != 0 and "no queue named 'nope'" in unknown.output
    assert runner.invoke(args=["queues", "resume", "low"]).exit_code == 0
    assert [e["event"] for e in queue_events(redis_conn)] == ["queue.paused", "queue.resumed"]
    actions = [e["action"] for e in app.extensions["audit_log"].page(limit=10)["entries"]]
    assert actions == ["queues resume", "queues resume", "queues pause"]


def test_flask_listen_prints_queue_events(app, redis_server, redis_conn):
    from tests.test_streams_cli import listen

    process = listen(redis_server.url, "--channel", "queues", "--count", "2")
    try:
        wait_until(lambda: listener_subscribed(redis_conn), 20, "the listener's subscription")
        app.extensions["jobsvc_queues"].set_paused(None, "low", True, by="maria")
        app.extensions["jobsvc_queues"].set_paused(None, "low", False)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    lines = out.splitlines()
    assert process.returncode == 0, err
    assert "queue.paused [low] by maria" in lines[0] and "queue.resumed [low] by the operator" in lines[1]


def test_rq_own_dequeue_leaves_a_paused_queue_alone(app, redis_conn):
    client = app.test_client()
    low = [submit(client, "add", [n, 1], "low") for n in range(3)]
    other = submit(client, "add", [1, 1], "default")
    app.extensions["jobsvc_queues"].set_paused(None, "low", True)
    ServiceWorker(["high", "default", "low"], connection=redis_conn, app=app).work(burst=True)
    assert statuses(redis_conn, [other]) == ["finished"]
    assert statuses(redis_conn, low) == ["queued"] * 3
    app.extensions["jobsvc_queues"].set_paused(None, "low", False)
    ServiceWorker(["high", "default", "low"], connection=redis_conn, app=app).work(burst=True)
    assert statuses(redis_conn, low) == ["finished"] * 3


def test_the_overview_page_offers_pause_and_resume_to_admins_only(keyed):
    pages = {}
    for key in (ADMIN_KEY, VIEWER_KEY, OWNER_KEY):
        session = keyed.test_client()
        sign_in(session, key)
        pages[key] = session.get("/overview").get_data(as_text=True)
    assert 'data-admin="true"' in pages[ADMIN_KEY] and ">Action</th>" in pages[ADMIN_KEY]
    for key in (VIEWER_KEY, OWNER_KEY):
        assert 'id="queues-table"' in pages[key]
        assert 'data-admin="false"' in pages[key] and ">Action</th>" not in pages[key]


def test_the_pause_survives_a_redis_restart_and_a_new_web_process():
    server = RedisServer(appendonly=True).start()
    try:
        first = create_app({"REDIS_URL": server.url, "TESTING": True}).test_client()
        assert first.post("/api/queues/high/pause").status_code == 200
        server.kill()  # SIGKILL: only what the append-only file holds comes back
        server.start()
        again = create_app({"REDIS_URL": server.url, "TESTING": True}).test_client()
        view = queue_view(again, "high")
        assert view["paused"] is True and view["paused_at"] is not None
    finally:
        server.cleanup()


# -- real worker processes ------------------------------------------------------------------------


def test_a_paused_queue_keeps_its_jobs_through_a_worker_restart_and_runs_them_on_resume(redis_server, redis_conn):
    """100 jobs submitted to a paused queue stay queued for 5 s and across a worker restart,
    while the job already running on it finishes and other queues keep running; resume starts
    them at once (the workers wait 30 s between looks, so only the wake-up can start them within 5 s)."""
    app = create_app({"REDIS_URL": redis_server.url, "TESTING": True, "RQ_DASHBOARD_PASSWORD": "test-password"})
    client = app.test_client()
    env = {"WORKER_WAKE_TIMEOUT": "30"}
    worker = start_worker(redis_server.url, "--processes", "2", **env)
    try:
        running = submit(client, "sleep", [1.5], "low")
        wait_until(lambda: statuses(redis_conn, [running]) == ["started"], 20, "the sleep job to start")
        assert client.post("/api/queues/low/pause").status_code == 200
        held = [submit(client, "add", [n, 1], "low") for n in range(100)]
        other = submit(client, "add", [2, 2], "default")
        wait_until(lambda: statuses(redis_conn, [other]) == ["finished"], 10, "a job of another queue")
        wait_until(lambda: statuses(redis_conn, [running]) == ["finished"], 10, "the running job to finish")
        hold_until = time.monotonic() + 5
        while time.monotonic() < hold_until:
            assert set(statuses(redis_conn, held)) == {"queued"}
            assert redis_conn.llen(keys.queue("low")) == 100
            time.sleep(0.25)
        assert queue_view(client, "low")["depth"] == 100
        # rq-dashboard shows the paused queue as usual, its jobs waiting
        dashboard = client.get("/rq/0/data/queues.json", headers=basic("admin", "test-password")).get_json()
        assert {q["name"]: q["count"] for q in dashboard["queues"]}["low"] == 100
    finally:
        worker.stop()
    worker = start_worker(redis_server.url, "--processes", "2", **env)
    try:
        # the new workers are up once they have run a job of an unpaused queue
        probe = submit(client, "add", [3, 3], "high")
        wait_until(lambda: statuses(redis_conn, [probe]) == ["finished"], 20, "the restarted worker")
        hold_until = time.monotonic() + 2
        while time.monotonic() < hold_until:  # their claims after that one skip the paused queue
            assert set(statuses(redis_conn, held)) == {"queued"}
            time.sleep(0.25)
        resumed_at = time.time()
        assert client.post("/api/queues/low/resume").status_code == 200
        wait_until(lambda: set(statuses(redis_conn, held)) == {"finished"}, 30, "all 100 jobs to run", every=0.1)
        first_start = min(started_at(redis_conn, job_id) for job_id in held)
        assert first_start - resumed_at < 5.0, f"first job started {first_start - resumed_at:.2f} s after resume"
        assert queue_view(client, "low")["depth"] == 0
    finally:
        worker.stop()
