"""Webhooks: signed deliveries of a job's events, retried with backoff within a window, logged,
and durable across a worker.py restart; jobs without a webhook pay nothing for them.

The receiver is a real HTTP server in the test process; the jobs run in real worker.py
processes, whose delivery threads do the sending.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from tests.receiver import Receiver, readme_verify
from tests.servers import start_worker
from webapp import create_app
from webapp.service.webhooks import url_pattern
from webapp.store import keys
from webapp.store.webhooks import host_key

SECRET = "test-webhook-secret-0123456789"
SETTINGS = {
    "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "WEBHOOK_SECRETS": f"*:{SECRET}",
    "WEBHOOK_TIMEOUT": "1",
    "WEBHOOK_BACKOFF": "0.2",
    "WEBHOOK_MAX_BACKOFF": "0.5",
    "WEBHOOK_RETRY_WINDOW": "30",
}


verify = readme_verify()  # the README's snippet, as printed there


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def make_app(redis_server, **overrides):
    config = {key: value for key, value in SETTINGS.items()}
    config["WEBHOOK_ALLOWED_HOSTS"] = ["127.0.0.1"]
    config.update(overrides)
    return create_app({"REDIS_URL": redis_server.url, "RQ_DASHBOARD_PASSWORD": "x", "TESTING": True, **config})


@pytest.fixture
def hook_client(redis_server, redis_conn):
    return make_app(redis_server).test_client()


@pytest.fixture
def worker(redis_server, redis_conn):
    process = start_worker(redis_server.url, **SETTINGS)
    yield process
    process.stop()


def submit(client, body, status=202):
    response = client.post("/api/jobs", json=body)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def deliveries(client, job_id, count=1, states=("delivered", "failed"), timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        found = client.get(f"/api/jobs/{job_id}/deliveries").get_json()["deliveries"]
        if len(found) >= count and all(entry["state"] in states for entry in found):
            return found
        assert time.monotonic() < deadline, f"deliveries still {found}"
        time.sleep(0.05)


# -- submission --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/x", "http:// or https://"),
        ("http://user:pw@127.0.0.1/x", "credentials"),
        ("http://10.0.0.1/x", "not in this server's WEBHOOK_ALLOWED_HOSTS"),
        ("http://127.0.0.1.evil.example/x", "not in this server's WEBHOOK_ALLOWED_HOSTS"),
        ("http://127.0.0.1.:7452/ok", "an IP address takes no trailing dot"),
        ("http://127.0.0.1:99999/x", "port"),
        ("http:///x", "no host"),
        ("http://[::1/x", "not a valid URL"),
        ("http://127.0.0.1/a b", "no fragment, spaces"),
        ("http://127.0.0.1/caf\u00e9", "visible ASCII"),
    ],
)
def test_a_webhook_url_outside_the_allow_list_is_refused_before_redis(hook_client, redis_conn, url, reason):
    body = submit(hook_client, {"name": "add", "args": [1, 2], "webhook": {"url": url}}, status=422)
    assert reason in body["error"]["message"]
    assert redis_conn.dbsize() == 0


def test_a_trailing_dot_names_the_same_dns_host_and_no_ip_address(redis_server, redis_conn):
    """`127.0.0.1.` is no address to connect to (every attempt would fail to resolve it for the
    whole retry window): refused with the reason. `localhost.` is localhost: allowed, and one
    host for the per-host share of the senders."""
    client = make_app(redis_server, WEBHOOK_ALLOWED_HOSTS=["127.0.0.1", "localhost"]).test_client()
    body = submit(client, {"name": "add", "args": [1, 2], "webhook": {"url": "http://127.0.0.1.:7452/ok"}}, status=422)
    assert "an IP address takes no trailing dot: write 127.0.0.1" in body["error"]["message"]
    pattern = url_pattern(["127.0.0.1", "localhost"])  # the OpenAPI document's pattern agrees
    assert not re.fullmatch(pattern, "http://127.0.0.1.:7452/ok") and re.fullmatch(pattern, "http://127.0.0.1:7452/ok")
    assert re.fullmatch(pattern, "http://localhost.:7452/ok")
    assert redis_conn.dbsize() == 0
    urls = ["http://localhost.:7452/dot", "http://localhost:7452/plain"]
    for url in urls:
        later = submit(client, {"name": "add", "args": [1, 2], "enqueue_in": 600, "webhook": {"url": url}})
        assert client.post(f"/api/jobs/{later['id']}/cancel").status_code == 200  # records a delivery
    assert [host_key(url) for url in urls] == ["localhost", "localhost"]
    assert redis_conn.zrange(keys.WEBHOOK_DUE, 0, -1) == [b"localhost"]  # lib/webhooks.lua agrees
    assert redis_conn.zcard(keys.WEBHOOK_DUE_HOST_PREFIX + "localhost") == 2


def test_webhooks_are_off_without_an_allow_list_and_need_a_secret(redis_server, redis_conn):
    off = make_app(redis_server, WEBHOOK_ALLOWED_HOSTS=[]).test_client()
    body = submit(off, {"name": "add", "args": [1, 2], "webhook": {"url": "http://127.0.0.1/x"}}, status=422)
    assert "WEBHOOK_ALLOWED_HOSTS is empty" in body["error"]["message"]
    unsigned = make_app(redis_server, WEBHOOK_SECRETS="alice:" + SECRET, API_KEYS="alice:ka,bob:kb").test_client()
    refused = unsigned.post("/api/jobs", json={"name": "add", "args": [1, 2], "webhook": {"url": "http://127.0.0.1/x"}},
                            headers={"Authorization": "Bearer kb"})  # fmt: skip
    assert refused.status_code == 422 and "WEBHOOK_SECRETS" in refused.get_json()["error"]["message"]
    accepted = unsigned.post("/api/jobs", json={"name": "add", "args": [1, 2], "webhook": {"url": "http://127.0.0.1/x"}},
                             headers={"Authorization": "Bearer ka"})  # fmt: skip
    assert accepted.status_code == 202
    # A schedule's runs are bob's jobs too: its webhook is refused when it is made, not at each tick.
    scheduled_job = {"name": "add", "args": [1, 2], "webhook": {"url": "http://127.0.0.1/x"}}
    schedule = unsigned.post("/api/schedules", json={"name": "hooked", "job": scheduled_job, "interval": 60},
                             headers={"Authorization": "Bearer kb"})  # fmt: skip
    assert schedule.status_code == 422 and "WEBHOOK_SECRETS" in schedule.get_json()["error"]["message"]
    assert unsigned.post("/api/schedules", json={"name": "hooked", "job": scheduled_job, "interval": 60},
                         headers={"Authorization": "Bearer ka"}).status_code == 201  # fmt: skip


def test_the_job_keeps_its_webhook_and_a_job_type_default_applies_unless_null(redis_server, redis_conn):
    app = make_app(redis_server)
    catalog = app.extensions["jobsvc"].catalog
    catalog["add"] = type(catalog["add"])(
        **{**catalog["add"].__dict__, "options": {"webhook": {"url": "http://127.0.0.1/d"}}}
    )
    client = app.test_client()
    own = submit(
        client, {"name": "add", "args": [1, 2], "webhook": {"url": "http://127.0.0.1/o", "events": ["started"]}}
    )
    default = submit(client, {"name": "add", "args": [1, 2]})
    none = submit(client, {"name": "add", "args": [1, 2], "webhook": None})
    meta = {job["id"]: json.loads(redis_conn.hget(keys.job(job["id"]), "meta")) for job in (own, default, none)}
    assert meta[own["id"]]["webhook"] == {"url": "http://127.0.0.1/o", "events": ["started"]}
    assert meta[default["id"]]["webhook"] == {
        "url": "http://127.0.0.1/d",
        "events": ["finished", "failed", "stopped", "canceled"],
    }
    assert "webhook" not in meta[none["id"]]


# -- delivery -----------------------------------------------------------------------------------


def test_deliveries_are_signed_and_carry_the_event_and_the_job(hook_client, worker, receiver):
    url = receiver.base + "/hook"
    job = submit(
        hook_client, {"name": "add", "args": [2, 3], "webhook": {"url": url, "events": ["started", "finished"]}}
    )
    requests = receiver.wait_for("/hook", 2)
    for request in requests:
        assert verify(SECRET, request.headers["Jobsvc-Signature"], request.body)
        assert not verify("another-secret-0123456789", request.headers["Jobsvc-Signature"], request.body)
        assert request.headers["Content-Type"] == "application/json"
    bodies = [json.loads(request.body) for request in requests]
    assert sorted(body["event"]["event"] for body in bodies) == ["finished", "started"]
    finished = next(body for body in bodies if body["event"]["event"] == "finished")
    assert finished["job"]["id"] == job["id"] and finished["job"]["result"] == 5
    assert (
        finished["id"]
        == finished["event"]["id"]
        == next(request.headers["Jobsvc-Delivery"] for request in requests if json.loads(request.body) == finished)
    )
    # A forged or altered body fails the check.
    assert not verify(SECRET, requests[0].headers["Jobsvc-Signature"], requests[0].body + b" ")
    log = deliveries(hook_client, job["id"], 2)
    assert [entry["state"] for entry in log] == ["delivered", "delivered"]
    assert all(entry["attempts"][0]["status"] == 200 for entry in log)


def test_a_delivery_is_retried_after_500s_then_delivered(hook_client, worker, receiver):
    receiver.script["/flaky"] = [500, 503, 200]
    job = submit(hook_client, {"name": "add", "args": [1, 1], "webhook": {"url": receiver.base + "/flaky"}})
    requests = receiver.wait_for("/flaky", 3)
    assert len({request.headers["Jobsvc-Delivery"] for request in requests}) == 1
    assert len({request.body for request in requests}) == 1  # the same body every time
    assert [request.headers["Jobsvc-Attempt"] for request in requests] == ["1", "2", "3"]
    gaps = [later.at - earlier.at for earlier, later in zip(requests, requests[1:], strict=False)]
    assert all(gap >= 0.15 for gap in gaps), gaps  # backoff of 0.2 s (±10 %), then 0.4 s
    (entry,) = deliveries(hook_client, job["id"])
    assert entry["state"] == "delivered"
    assert [attempt["status"] for attempt in entry["attempts"]] == [500, 503, 200]
    assert entry["attempts"][0]["error"] == "HTTP 500"


def test_a_delivery_is_given_up_after_its_window_and_can_be_redelivered(redis_server, redis_conn, receiver):
    client = make_app(redis_server).test_client()
    worker = start_worker(redis_server.url, **{**SETTINGS, "WEBHOOK_RETRY_WINDOW": "1.5"})
    try:
        receiver.script["/down"] = [500]
        job = submit(client, {"name": "fail", "args": ["boom"], "webhook": {"url": receiver.base + "/down"}})
        (entry,) = deliveries(client, job["id"], states=("failed",), timeout=30)
        attempts = len(entry["attempts"])
        assert entry["event"] == "failed" and 3 <= attempts <= 8, entry
        assert len(receiver.at("/down")) == attempts
        time.sleep(1.0)
        assert len(receiver.at("/down")) == attempts  # given up: no attempt after the window
        receiver.script["/down"] = [200]
        again = client.post(f"/api/jobs/{job['id']}/deliveries/{entry['id']}/redeliver", json={})
        assert again.status_code == 202 and again.get_json()["state"] in ("pending", "delivering", "delivered")
        (entry,) = deliveries(client, job["id"], states=("delivered",))
        assert len(entry["attempts"]) == attempts + 1 and entry["attempts"][-1]["status"] == 200
        assert client.post(f"/api/jobs/{job['id']}/deliveries/1-0/redeliver", json={}).status_code == 404
    finally:
        worker.stop()


def test_a_redelivery_starts_a_fresh_series_and_keeps_the_log(redis_server, redis_conn, receiver):
    """Its first failure waits WEBHOOK_BACKOFF again, not the backoff after the old run's
    attempts (here more than the window: it would fail at once), and Jobsvc-Attempt counts from 1."""
    client = make_app(redis_server).test_client()
    worker = start_worker(redis_server.url, **{**SETTINGS, "WEBHOOK_RETRY_WINDOW": "2.5", "WEBHOOK_MAX_BACKOFF": "30"})
    try:
        receiver.script["/again"] = [500]
        job = submit(client, {"name": "add", "args": [1, 1], "webhook": {"url": receiver.base + "/again"}})
        (entry,) = deliveries(client, job["id"], states=("failed",), timeout=30)
        first_run = len(entry["attempts"])
        assert first_run >= 3, entry
        receiver.script["/again"] = [500, 200]
        assert client.post(f"/api/jobs/{job['id']}/deliveries/{entry['id']}/redeliver", json={}).status_code == 202
        (entry,) = deliveries(client, job["id"], states=("delivered",), timeout=10)
        requests = receiver.at("/again")[first_run:]
        assert [request.headers["Jobsvc-Attempt"] for request in requests] == ["1", "2"]
        # WEBHOOK_BACKOFF (0.2 s), and the delivery thread looks again within 1 s; not 0.2 × 2^4 s.
        assert requests[1].at - requests[0].at < 2.0
        # The log keeps the first run's attempts; each names its place in its series.
        assert [attempt["attempt"] for attempt in entry["attempts"]] == [*range(1, first_run + 1), 1, 2]
        assert [attempt["status"] for attempt in entry["attempts"]] == [500] * (first_run + 1) + [200]
    finally:
        worker.stop()


def test_redirects_are_not_followed(hook_client, worker, receiver):
    receiver.script["/moved"] = [("redirect", receiver.base + "/elsewhere"), 200]
    job = submit(hook_client, {"name": "add", "args": [1, 1], "webhook": {"url": receiver.base + "/moved"}})
    (entry,) = deliveries(hook_client, job["id"])
    assert entry["attempts"][0]["status"] == 302 and "not followed" in entry["attempts"][0]["error"]
    assert entry["state"] == "delivered"  # the second attempt got a 200
    assert receiver.at("/elsewhere") == []


def test_a_slow_endpoint_delays_neither_jobs_nor_other_deliveries(redis_server, redis_conn, receiver):
    """Two senders, so one per host: a host that holds every request gets one at a time, its
    backlog waits unread in Redis, and another host's delivery goes out at once."""
    hosts = {"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,localhost", "WEBHOOK_CONCURRENCY": "2", "WEBHOOK_TIMEOUT": "3"}
    client = make_app(redis_server, WEBHOOK_ALLOWED_HOSTS=["127.0.0.1", "localhost"]).test_client()
    worker = start_worker(redis_server.url, **{**SETTINGS, **hosts})
    try:
        receiver.script["/slow"] = [("sleep", 30)]
        slow = [submit(client, {"name": "add", "args": [i, 1], "webhook": {"url": receiver.base + "/slow"}})
                for i in range(10)]  # fmt: skip
        receiver.wait_for("/slow")
        began = time.monotonic()
        fast_url = receiver.base.replace("127.0.0.1", "localhost") + "/fast"
        fast = submit(client, {"name": "add", "args": [2, 2], "webhook": {"url": fast_url}})
        plain = [submit(client, {"name": "add", "args": [i, i]})["id"] for i in range(20)]
        receiver.wait_for("/fast", timeout=5)
        assert time.monotonic() - began < 2.0
        for job_id in plain:
            assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "finished"
        # While the slow host holds its one request, its nine others wait unread: the delivery
        # thread only looks again now and then (a claim and a due-time read every 0.2 s).
        scripts = lambda: redis_conn.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)  # noqa: E731
        calls_before = scripts()
        time.sleep(2.0)
        calls = scripts() - calls_before
        assert calls <= 25, f"{calls} scripts in 2 s while one host is busy: its backlog is being churned"
        assert len(receiver.at("/slow")) == 1  # one at a time to the slow host
        assert deliveries(client, fast["id"])[0]["state"] == "delivered"
        (entry,) = deliveries(client, slow[0]["id"], states=("retrying", "delivered"), timeout=10)
        assert entry["attempts"][0]["error"].startswith("no answer within 3 s")
        assert 2900 <= entry["attempts"][0]["duration_ms"] < 4500
    finally:
        worker.stop()


def test_an_answer_unfinished_at_the_deadline_is_a_timeout(hook_client, worker, receiver):
    """`HTTP/1.1 200 OK` at once, then headers trickled past WEBHOOK_TIMEOUT (1 s): the socket
    closed at the deadline does not end the headers, and a 200 begun is not one given."""
    receiver.script["/trickle"] = [("trickle", 3), 200]
    job = submit(hook_client, {"name": "add", "args": [1, 1], "webhook": {"url": receiver.base + "/trickle"}})
    (entry,) = deliveries(hook_client, job["id"])
    assert entry["state"] == "delivered" and len(entry["attempts"]) == 2, entry
    first, second = entry["attempts"]
    assert first["status"] is None and first["error"].startswith("no answer within 1 s"), first
    assert 900 <= first["duration_ms"] < 2500, first
    assert second["status"] == 200 and second["error"] is None
    assert [request.headers["Jobsvc-Attempt"] for request in receiver.at("/trickle")] == ["1", "2"]


def test_no_delivery_is_lost_when_worker_py_dies_mid_attempt(hook_client, redis_server, receiver):
    receiver.script["/held"] = [("sleep", 30), 200]
    # A 3 s timeout makes the claim's lease 2 × 3 + 5 = 11 s: the delivery comes due again then.
    first = start_worker(redis_server.url, **{**SETTINGS, "WEBHOOK_TIMEOUT": "3"})
    try:
        job = submit(hook_client, {"name": "add", "args": [1, 1], "webhook": {"url": receiver.base + "/held"}})
        (held,) = receiver.wait_for("/held")
        first.signal(signal.SIGKILL)  # the supervisor and, through PDEATHSIG, its workers
        first.process.wait(10)
        killed_at = time.monotonic()
    finally:
        first.stop()
    receiver.release.set()
    second = start_worker(redis_server.url, **SETTINGS)
    try:
        again = receiver.wait_for("/held", 2, timeout=30)
        assert again[1].headers["Jobsvc-Delivery"] == held.headers["Jobsvc-Delivery"]
        assert again[1].body == held.body
        assert again[1].at - killed_at < 12  # within the lease of the dead claimant
        (entry,) = deliveries(hook_client, job["id"], states=("delivered",))
        assert entry["attempts"][-1]["status"] == 200
    finally:
        second.stop()


def test_a_redis_freeze_while_an_outcome_is_reported_is_one_warning(hook_client, redis_server, receiver):
    """Redis frozen past the delivery thread's 10 s socket timeout just as an answer comes: the
    report is lost to a timeout, which is an outage (one line), not a defect (a traceback), and
    the delivery ends delivered all the same (the report landed, or it is sent again)."""
    receiver.script["/frozen"] = [("sleep", 30), 200]
    worker = start_worker(redis_server.url, **{**SETTINGS, "WEBHOOK_TIMEOUT": "5"})
    frozen = False
    try:
        job = submit(hook_client, {"name": "add", "args": [1, 1], "webhook": {"url": receiver.base + "/frozen"}})
        receiver.wait_for("/frozen")
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        frozen = True
        receiver.release.set()  # the answer comes now, and its report meets the frozen Redis
        time.sleep(11)
        os.kill(redis_server.process.pid, signal.SIGCONT)
        frozen = False
        (entry,) = deliveries(hook_client, job["id"], states=("delivered",), timeout=30)
        assert entry["attempts"][-1]["status"] == 200
        output = worker.output()
        (warning,) = [line for line in output.splitlines() if "outcome may not be recorded" in line]
        assert "WARNING" in warning and "Redis unavailable" in warning and entry["id"] in warning, warning
        assert "Traceback" not in output and "attempt failed" not in output, output
        assert output.count("webhooks: Redis unavailable") <= 1, output  # the claim loop's outage: one line too
    finally:
        if frozen:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        worker.stop()


def test_deliveries_follow_the_jobs_ownership(redis_server, redis_conn, receiver):
    app = make_app(redis_server, API_KEYS="alice:ka,bob:kb", WEBHOOK_SECRETS=f"*:{SECRET}")
    client = app.test_client()
    alice, bob = {"Authorization": "Bearer ka"}, {"Authorization": "Bearer kb"}
    response = client.post("/api/jobs", json={"name": "add", "args": [1, 1], "webhook": {"url": receiver.base + "/x"}},
                           headers=alice)  # fmt: skip
    job_id = response.get_json()["id"]
    assert client.get(f"/api/jobs/{job_id}/deliveries", headers=alice).get_json() == {"deliveries": []}
    assert client.get(f"/api/jobs/{job_id}/deliveries", headers=bob).status_code == 404
    assert client.post(f"/api/jobs/{job_id}/deliveries/1-0/redeliver", json={}, headers=bob).status_code == 404


def test_jobs_without_a_webhook_write_nothing_for_webhooks(hook_client, worker, redis_conn):
    ids = [submit(hook_client, {"name": "add", "args": [i, 1]})["id"] for i in range(5)]
    deadline = time.monotonic() + 15
    while any(hook_client.get(f"/api/jobs/{job_id}").get_json()["status"] != "finished" for job_id in ids):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert list(redis_conn.scan_iter("jobsvc:webhook*")) == []


def test_the_webs_events_are_delivered_too_and_only_subscribed_ones(hook_client, worker, receiver):
    url = receiver.base + "/web"
    later = submit(hook_client, {"name": "add", "args": [1, 1], "enqueue_in": 600, "webhook": {"url": url}})
    assert hook_client.post(f"/api/jobs/{later['id']}/cancel").status_code == 200  # the web writes `canceled`
    (request,) = receiver.wait_for("/web")
    assert json.loads(request.body)["event"]["event"] == "canceled"
    started_only = submit(hook_client, {"name": "add", "args": [1, 2], "webhook": {"url": url, "events": ["started"]}})
    receiver.wait_for("/web", 2)
    deadline = time.monotonic() + 15
    while hook_client.get(f"/api/jobs/{started_only['id']}").get_json()["status"] != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    assert [json.loads(r.body)["event"]["event"] for r in receiver.at("/web")] == ["canceled", "started"]
