"""rq-dashboard at /rq is never served without the configured credentials."""

from __future__ import annotations

import base64
import re
import time

import pytest
from rq import Queue, Worker
from rq.job import JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from tests.servers import start_worker
from webapp import create_app
from webapp.web.dashboard import CSRF_COOKIE


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("path", ["/rq", "/rq/", "/rq/static/js/rq-dashboard.js", "/rq/0/data/queues.json"])
def test_without_credentials_401_with_a_challenge(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("user", "password"), [("admin", "wrong"), ("root", "test-password"), ("", "")])
def test_wrong_credentials_401(client, user, password):
    assert client.get("/rq/", headers=basic(user, password)).status_code == 401


def test_right_credentials_serve_the_dashboard(client):
    response = client.get("/rq/", headers=basic("admin", "test-password"))
    assert response.status_code == 200
    assert b"RQ dashboard" in response.data or b"rq-dashboard" in response.data.lower()
    queues = client.get("/rq/0/data/queues.json", headers=basic("admin", "test-password"))
    assert queues.status_code == 200


def test_no_configured_password_refuses_everyone(redis_server, redis_conn):
    app = create_app({"REDIS_URL": redis_server.url, "RQ_DASHBOARD_PASSWORD": None, "TESTING": True})
    client = app.test_client()
    for headers in ({}, basic("admin", ""), basic("admin", "None")):
        response = client.get("/rq/", headers=headers)
        assert response.status_code == 401
    assert "RQ_DASHBOARD_PASSWORD" in response.get_json()["error"]["message"]


AUTH = basic("admin", "test-password")
SAME_SITE = {**AUTH, "Origin": "http://localhost"}


@pytest.fixture
def failed_job(redis_conn):
    """A job in the default queue's failed registry, as requeue finds it."""
    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue_call("jobs.basic.add", args=[1, 2])
    queue.remove(job.id)
    job.set_status(JobStatus.FAILED)
    FailedJobRegistry("default", connection=redis_conn, serializer=JSONSerializer).add(job, 600, exc_string="boom")
    return job


def test_the_state_changing_routes_are_all_known(app):
    assert app.extensions["dashboard_actions"] == {
        "rq_dashboard.delete_job_view",
        "rq_dashboard.requeue_job_view",
        "rq_dashboard.requeue_all",
        "rq_dashboard.empty_queue",
        "rq_dashboard.compact_queue",
    }


def test_a_state_changing_get_is_refused(client, redis_conn, failed_job):
    response = client.get("/rq/requeue/default", headers=AUTH)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert redis_conn.llen("rq:queue:default") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Referer": "https://evil.example/x"},
        {"X-CSRFToken": "guess"},
    ],
)
def test_cross_site_or_unproven_actions_are_refused(client, redis_conn, failed_job, headers):
    client.set_cookie(CSRF_COOKIE, "the-real-token", path="/rq")
    response = client.post("/rq/requeue/default", headers={**AUTH, **headers})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "cross_site_request"
    assert redis_conn.llen("rq:queue:default") == 0


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://localhost"}, {"Referer": "http://localhost/rq/"}, {"X-CSRFToken": "the-real-token"}],
)
def test_same_origin_or_token_actions_pass(client, redis_conn, failed_job, headers):
    client.set_cookie(CSRF_COOKIE, "the-real-token", path="/rq")
    response = client.post("/rq/requeue/default", headers={**AUTH, **headers})
    assert response.status_code == 200
    assert response.get_json() == {"status": "OK", "count": 1}
    assert redis_conn.llen("rq:queue:default") == 1


def test_actions_need_credentials_first(client, failed_job):
    assert client.post("/rq/requeue/default", headers={"Origin": "http://localhost"}).status_code == 401


def test_read_only_mode_refuses_every_action(redis_server, redis_conn, failed_job):
    app = create_app(
        {"REDIS_URL": redis_server.url, "RQ_DASHBOARD_PASSWORD": "test-password", "RQ_DASHBOARD_READ_ONLY": True}
    )
    client = app.test_client()
    for path in (
        "/rq/requeue/default",
        f"/rq/job/{failed_job.id}/requeue",
        f"/rq/job/{failed_job.id}/delete",
        "/rq/queue/default/failed/empty",
        "/rq/queue/default/compact",
    ):
        response = client.post(path, headers=SAME_SITE)
        assert response.status_code == 403, path
        assert response.get_json()["error"]["code"] == "read_only"
    assert client.get("/rq/", headers=AUTH).status_code == 200
    assert client.get("/rq/0/data/queues.json", headers=AUTH).status_code == 200
    assert redis_conn.llen("rq:queue:default") == 0
    assert redis_conn.exists(failed_job.key)


def test_read_only_comes_from_the_environment():
    from webapp.infra.config import from_environ

    assert from_environ({"RQ_DASHBOARD_READ_ONLY": "1"})["RQ_DASHBOARD_READ_ONLY"] is True
    assert from_environ({})["RQ_DASHBOARD_READ_ONLY"] is False


def test_dashboard_pages_have_a_strict_policy_with_a_nonce_on_their_one_inline_script(client):
    response = client.get("/rq/", headers=AUTH)
    csp = response.headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src
    nonce = re.search(r"'nonce-([^']+)'", script_src).group(1)
    html = response.get_data(as_text=True)
    inline = [tag for tag in re.findall(r"<script\b[^>]*>", html) if "src=" not in tag and "text/template" not in tag]
    assert inline == [f'<script type="text/javascript" nonce="{nonce}">']
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    again = client.get("/rq/", headers=AUTH).headers["Content-Security-Policy"]
    assert again != csp  # a fresh nonce for every response


def test_the_dashboard_sets_the_csrf_cookie_its_script_sends_back(client):
    cookie = client.get("/rq/", headers=AUTH).headers["Set-Cookie"]
    assert cookie.startswith(CSRF_COOKIE + "=")
    assert "SameSite=Strict" in cookie and "Path=/rq" in cookie


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not met in time"
        time.sleep(0.05)


def test_the_workers_tab_shows_the_job_a_worker_runs(client, redis_server, redis_conn):
    """rq-dashboard reads a worker's current job with RQ's default serializer (pickle) unless told:
    every running job of the service (JSON) made its Workers tab a 500."""
    worker = start_worker(redis_server.url, "--processes", "1")
    try:
        job_id = client.post("/api/jobs", json={"name": "sleep", "args": [5]}).get_json()["id"]
        wait_for(lambda: client.get(f"/api/jobs/{job_id}").get_json()["status"] == "started")
        response = client.get("/rq/0/data/workers.json", headers=AUTH)
        assert response.status_code == 200
        [shown] = [w for w in response.get_json()["workers"] if w["current_job"]]
        assert shown["current_job"]["job_id"] == job_id
        assert shown["current_job"]["description"] == "jobs.basic.sleep(seconds=5.0)"
    finally:
        worker.stop()


class LeavesAMark:
    """Unpickling this creates a file: the proof that something unpickled a planted job."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_the_dashboard_never_unpickles_a_job_planted_in_redis(client, redis_conn, tmp_path):
    mark = tmp_path / "unpickled"
    # a job written by plain RQ with its default serializer (pickle), as anyone who can write to Redis can
    planted = Queue("default", connection=redis_conn).enqueue("jobs.basic.add", LeavesAMark(str(mark)), 1)
    holder = Worker(["default"], connection=redis_conn, name="holder")
    holder.register_birth()
    holder.prepare_execution(planted)  # RQ's own record of a worker running it
    FailedJobRegistry("default", connection=redis_conn).add(planted, 600, exc_string="planted")
    for path in (
        "/rq/0/data/workers.json",
        f"/rq/0/data/job/{planted.id}.json",
        f"/rq/0/view/job/{planted.id}",
        "/rq/0/data/jobs/default/queued/8/asc/1.json",
        "/rq/0/data/jobs/default/failed/8/asc/1.json",
        "/rq/0/view/workers",
        "/rq/0/data/queues.json",
    ):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 200, path
    workers = client.get("/rq/0/data/workers.json", headers=AUTH).get_json()["workers"]
    assert workers[0]["current_job"]["call_string"] == planted.description  # shown, not unpickled
    for path in (f"/rq/job/{planted.id}/requeue", "/rq/requeue/default", f"/rq/job/{planted.id}/delete"):
        assert client.post(path, headers=SAME_SITE).status_code in (200, 409), path
    assert not mark.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/rq/1/data/queues.json",  # one instance: the app's Redis
        "/rq/0/data/jobs/default/failed/x/x/x.json",
        "/rq/0/data/jobs/default/failed/0/asc/1.json",
        "/rq/0/data/jobs/default/nowhere/8/asc/1.json",
        "/rq/0/data/jobs/default/failed/8/sideways/1.json",
        "/rq/0/view/job/no-such-job",
        "/rq/0/data/job/no-such-job.json",
    ],
)
def test_pages_the_dashboard_cannot_serve_are_404s(client, path):
    response = client.get(path, headers=AUTH)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_its_own_link_to_page_0_of_an_empty_registry_is_served(client):
    assert client.get("/rq/0/data/jobs/default/failed/8/asc/0.json", headers=AUTH).status_code == 200


def test_requeue_of_a_missing_or_unfailed_job_is_a_4xx(client, redis_conn):
    queued = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}).get_json()["id"]
    response = client.post(f"/rq/job/{queued}/requeue", headers=SAME_SITE)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"
    missing = client.post("/rq/job/no-such-job/requeue", headers=SAME_SITE)
    assert missing.status_code == 404
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [queued.encode()]
