"""The audit log: every state-changing action, by construction (web, dashboard, CLI), bounded, paged."""

from __future__ import annotations

import json
import time

import pytest
from flask import Blueprint, jsonify
from rq import Queue
from rq.job import JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from tests.keyed import (
    ADMIN_KEY,
    OWNER_KEY,
    SAME_SITE,
    VIEWER_KEY,
    basic,
    bearer,
    keyed_app,
    sign_in,
    state_changing_rules,
)
from webapp.store.audit import AuditLog
from webapp.web.audit import action_of, is_audited

# What the audit log leaves out, on purpose: submissions (their `queued` event records them).
NOT_AUDITED = {"jobs.submit_job", "jobs.submit_batch", "pages.prodcons", "pages.prodcons_post"}


@pytest.fixture
def app(redis_server, redis_conn):
    return keyed_app(redis_server.url)


@pytest.fixture
def client(app):
    return app.test_client()


def entries(app, **filters) -> list[dict]:
    return app.extensions["audit_log"].page(limit=200, **filters)["entries"]


def test_every_state_changing_rule_is_audited(app, client, redis_conn):
    """Walks the URL map: each state-changing route, whatever its answer, leaves exactly one
    entry naming the admin who called it, the action and the target from the URL; the only
    exceptions are the submissions, marked as such."""
    token = sign_in(admin := app.test_client(), ADMIN_KEY)
    redis_conn.delete("jobsvc:audit")
    skipped = set()
    for method, path, endpoint in state_changing_rules(app):
        if endpoint.startswith("signin."):
            continue  # covered below: they change who is signed in
        before = redis_conn.xlen("jobsvc:audit")
        if endpoint.startswith("rq_dashboard."):
            response = client.open(path, method=method, headers={**basic("admin", "test-password"), **SAME_SITE})
            who, via = "admin", "basic"
        elif endpoint.startswith("pages."):
            response = admin.open(path, method=method, headers={**SAME_SITE, "X-CSRF-Token": token})
            who, via = "ops", "session"
        else:
            response = client.open(path, method=method, json={"filter": {"status": "failed"}},
                                   headers={**bearer(ADMIN_KEY), **SAME_SITE})  # fmt: skip
            who, via = "ops", "bearer"
        added = redis_conn.xlen("jobsvc:audit") - before
        if not is_audited(method, endpoint, app):
            assert added == 0, (method, path)
            skipped.add(endpoint)
            continue
        assert added == 1, (method, path, response.status_code)
        [entry] = entries(app)[:1]
        assert (entry["actor"], entry["via"], entry["method"], entry["path"]) == (who, via, method, path)
        assert entry["action"] == action_of(endpoint, app) and entry["status"] == response.status_code
        assert entry["client"] == "127.0.0.1"
        if "job_id" in path or "0123456789abcdef" in path:
            assert entry["target"]["job_id"] == "0123456789abcdef"
    assert skipped == NOT_AUDITED


def test_a_route_added_later_is_audited_without_a_line_for_it(redis_server, redis_conn):
    """What issues 13 and 14 add (schedules, queue pause, bulk actions) is recorded as it is."""
    app = keyed_app(redis_server.url)
    extra = Blueprint("bulk_example", __name__, url_prefix="/api")

    @extra.post("/jobs/bulk-example")
    def bulk():
        return jsonify({"matched": 3, "done": 3})

    @extra.post("/queues/<queue_name>/pause")
    def pause(queue_name):
        return jsonify({"name": queue_name, "paused": True})

    app.register_blueprint(extra)
    client = app.test_client()
    body = {"action": "retry", "filter": {"status": "failed", "queue": "low"}, "dry_run": False, "extra": [1] * 3}
    assert client.post("/api/jobs/bulk-example", json=body, headers=bearer(ADMIN_KEY)).status_code == 200
    assert client.post("/api/queues/low/pause", headers=bearer(ADMIN_KEY), json={}).status_code == 200
    assert client.post("/api/jobs/bulk-example", json=body, headers=bearer(VIEWER_KEY)).status_code == 403
    refused, paused, bulk_entry = entries(app)
    assert bulk_entry["action"] == "bulk_example.bulk" and bulk_entry["actor"] == "ops"
    assert bulk_entry["details"] == {"action": "retry", "filter": {"status": "failed", "queue": "low"},
                                     "dry_run": False, "fields": ["extra"]}  # fmt: skip
    assert paused["target"] == {"queue_name": "low"}
    assert (refused["actor"], refused["role"], refused["status"], refused["ok"]) == ("watch", "viewer", 403, False)


@pytest.fixture
def failed_job(redis_conn):
    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue_call("jobs.basic.add", args=[1, 2])
    queue.remove(job.id)
    job.set_status(JobStatus.FAILED)
    FailedJobRegistry("default", connection=redis_conn, serializer=JSONSerializer).add(job, 600)
    return job


def test_a_dashboard_action_through_rq_is_audited(app, redis_conn, failed_job):
    admin = app.test_client()
    sign_in(admin, ADMIN_KEY)
    response = admin.post(f"/rq/job/{failed_job.id}/requeue", headers=SAME_SITE)
    assert response.status_code == 200
    assert failed_job.get_status(refresh=True) == JobStatus.QUEUED
    [entry] = entries(app, action="dashboard.requeue_job")
    assert entry["actor"] == "ops" and entry["role"] == "admin" and entry["via"] == "session"
    assert entry["target"] == {"job_id": failed_job.id} and entry["status"] == 200
    # The same through Basic auth names the dashboard user.
    script = app.test_client()
    assert script.post("/rq/queue/default/failed/empty", headers={**basic("admin", "test-password"), **SAME_SITE})
    [emptied] = entries(app, action="dashboard.empty_queue")
    assert (emptied["actor"], emptied["via"], emptied["target"]) == (
        "admin",
        "basic",
        {"queue_name": "default", "registry_name": "failed"},
    )


def test_actions_of_a_session_and_refusals_carry_the_key_name(app, client, redis_conn):
    job_id = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}, headers=bearer(OWNER_KEY)).get_json()["id"]
    token = sign_in(owner := app.test_client(), OWNER_KEY)
    assert owner.post(f"/api/jobs/{job_id}/cancel", headers={"X-CSRF-Token": token}).status_code == 200
    crossed_site = owner.post(f"/api/jobs/{job_id}/retry", headers={"Origin": "http://evil.example"}, json={})
    assert crossed_site.status_code == 403
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=bearer("not-a-key")).status_code == 401
    crossed, canceled, signed_in = entries(app)
    assert (signed_in["action"], signed_in["actor"]) == ("signIn", "alice")
    assert (canceled["action"], canceled["actor"], canceled["via"], canceled["status"]) == (
        "cancelJob",
        "alice",
        "session",
        200,
    )
    assert (crossed["action"], crossed["actor"], crossed["status"]) == ("retryJob", "alice", 403)
    # Nothing for the unknown key: whoever has no key cannot write to the log.


def test_cli_commands_are_audited_as_the_operator(app, redis_conn):
    runner = app.test_cli_runner()
    job_id = runner.invoke(args=["jobs", "submit", "add", "1", "2"]).output.strip()
    assert runner.invoke(args=["jobs", "cancel", job_id]).exit_code == 0
    assert runner.invoke(args=["jobs", "cancel", job_id]).exit_code == 1  # already ended
    assert runner.invoke(args=["jobs", "list"]).exit_code == 0
    again, first = entries(app)
    assert first["action"] == "jobs cancel" and first["via"] == "cli" and first["role"] == "operator"
    assert first["target"] == {"job_id": job_id} and first["status"] == 0 and first["ok"]
    assert again["status"] == 1 and not again["ok"]
    assert first["actor"] and first["client"]
    shown = runner.invoke(args=["audit", "--action", "jobs cancel"])
    assert shown.exit_code == 0 and shown.output.count("jobs cancel") == 2 and job_id in shown.output
    as_json = [json.loads(line) for line in runner.invoke(args=["audit", "--json", "--limit", "1"]).output.splitlines()]
    assert [entry["id"] for entry in as_json] == [again["id"]]


def test_every_cli_command_is_either_audited_or_read_only(app):
    import click

    from webapp.cli.audit import READ_ONLY_NAMES

    def walk(group, prefix=""):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from walk(command, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", command

    for name, command in walk(app.cli):
        audited = getattr(command.callback, "audited", False)
        read_only = getattr(command, "read_only", False) or name.rsplit(" ", 1)[-1] in READ_ONLY_NAMES
        assert audited != read_only, name


def test_pages_filters_and_cursor(app, client, redis_conn):
    log: AuditLog = app.extensions["audit_log"]
    for number in range(30):
        log.record(actor="alice" if number % 3 else "bob", role="owner", via="bearer", action="cancelJob",
                   target={"job_id": f"job-{number}"}, status=200)  # fmt: skip
    seen, cursor = [], None
    while True:
        query = {"limit": 7, "actor": "bob", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/audit", query_string=query, headers=bearer(ADMIN_KEY)).get_json()
        seen += page["entries"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [entry["target"]["job_id"] for entry in seen] == [f"job-{n}" for n in range(27, -1, -3)]
    found = client.get("/api/audit?target=job-14", headers=bearer(ADMIN_KEY)).get_json()["entries"]
    assert [entry["target"] for entry in found] == [{"job_id": "job-14"}]
    assert client.get("/api/audit?cursor=nope", headers=bearer(ADMIN_KEY)).status_code == 422  # not an entry id
    # Times are RFC 3339 date-times, with their offset, as documented: not Unix times, not bare dates.
    for text in ("0.5", "2026-11-26", "2026-11-26T16:00:00"):
        assert client.get(f"/api/audit?until={text}", headers=bearer(ADMIN_KEY)).status_code == 422, text
    assert client.get("/api/audit?until=2026-11-26T16:00:00Z", headers=bearer(ADMIN_KEY)).status_code == 200
    assert client.get("/api/audit?cursor=0-0", headers=bearer(ADMIN_KEY)).get_json()["entries"] == []
    later = client.get("/api/audit?since=2999-01-01T00:00:00Z", headers=bearer(ADMIN_KEY)).get_json()
    assert later == {"entries": [], "next_cursor": None}


def test_retention_is_bounded_by_count_and_by_age(redis_conn):
    log = AuditLog(redis_conn, retention=3600, maxlen=100)
    for number in range(1000):
        log.record(actor="a", role="admin", via="bearer", action="x", status=200, target={"n": number})
    assert 100 <= redis_conn.xlen("jobsvc:audit") < 300  # approximate trimming: whole stream nodes
    newest = log.page(limit=1)["entries"][0]
    assert newest["target"] == {"n": "999"}
    # Entries older than the retention go on the next append (whole stream nodes, of 100 entries).
    redis_conn.delete("jobsvc:audit")
    for sequence in range(200):
        redis_conn.xadd("jobsvc:audit", {"actor": "old", "action": "x", "status": "200"}, id=f"1000-{sequence}")
    short = AuditLog(redis_conn, retention=60, maxlen=100000)
    short.record(actor="a", role="admin", via="bearer", action="x", status=200)
    assert [entry["actor"] for entry in log.page(limit=200)["entries"]] == ["a"]


def test_requests_without_any_credentials_are_not_audited(client, redis_conn):
    """Open API or not, nobody can fill the log without credentials: here the dashboard's password."""
    from webapp import create_app

    open_api = create_app({"REDIS_URL": client.application.config["REDIS_URL"], "RQ_DASHBOARD_PASSWORD": "pw"})
    for _ in range(3):
        response = open_api.test_client().post("/rq/job/0123456789abcdef/requeue", headers=SAME_SITE)
        assert response.status_code == 401
    assert client.post("/api/jobs/0123456789abcdef/retry", json={}).status_code == 401
    assert redis_conn.xlen("jobsvc:audit") == 0
    # On the open API, an anonymous action is recorded, with its client address.
    assert open_api.test_client().delete("/api/jobs/0123456789abcdef").status_code == 404
    [entry] = entries(open_api)
    assert (entry["actor"], entry["role"], entry["via"], entry["client"]) == (None, "anonymous", "open", "127.0.0.1")


def test_a_key_sending_refused_requests_in_a_loop_cannot_push_real_entries_out(make_app):
    """Refusals are recorded within a budget per caller and minute; the one that reaches it says so."""
    app = make_app(keyed=True, AUDIT_MAXLEN=200, AUDIT_REFUSALS_PER_MINUTE=5)
    if time.time() % 60 > 50:  # the budget is per clock minute: run it all within one
        time.sleep(61 - time.time() % 60)
    client = app.test_client()
    assert client.post("/api/queues/low/pause", headers=bearer(ADMIN_KEY)).status_code == 200
    for _ in range(400):
        assert client.post("/api/queues/low/resume", headers=bearer(VIEWER_KEY)).status_code == 403
    refused = entries(app, actor="watch")
    assert len(refused) == 6  # the budget, then the entry that says the rest are not recorded
    assert [entry["note"] is not None for entry in refused] == [True] + [False] * 5
    assert "AUDIT_REFUSALS_PER_MINUTE" in refused[0]["note"]
    [paused] = entries(app, action="pauseQueue")
    assert (paused["actor"], paused["status"]) == ("ops", 200)
    # another caller has a budget of its own; actions that succeed are never held back
    assert client.post("/api/queues/low/resume", headers=bearer(OWNER_KEY)).status_code == 403
    assert len(entries(app, actor="alice")) == 1
    for _ in range(10):
        assert client.post("/api/queues/low/resume", headers=bearer(ADMIN_KEY)).status_code == 200
    assert len(entries(app, action="resumeQueue", actor="ops")) == 10


def test_a_refused_sign_in_is_not_recorded_under_the_session_the_browser_holds(app, client, redis_conn):
    sign_in(client, OWNER_KEY)
    before = len(entries(app))
    refused = client.post("/signin", data={"key": "a-wrong-guess"}, headers=SAME_SITE)
    assert refused.status_code == 401
    assert len(entries(app)) == before  # README: refused sign-ins are logged by the web, not recorded


def test_a_dashboard_action_that_did_nothing_is_recorded_as_not_ok(app, redis_conn):
    admin = app.test_client()
    sign_in(admin, ADMIN_KEY)
    response = admin.post("/rq/job/0123456789abcdef/delete", headers=SAME_SITE)
    assert response.status_code == 200 and response.get_json() == {"status": "ERROR"}  # rq-dashboard's answer
    [entry] = entries(app, action="dashboard.delete_job")
    assert (entry["status"], entry["ok"]) == (200, False)
