"""Bulk actions (`POST /api/jobs/bulk`, `flask jobs bulk`) on a real private Redis: dry runs,
retry of 10,000 jobs that real worker processes failed, cancel and delete, the cursor and the
time budget, owners acting on their own jobs only, the audit entry, bad input."""

from __future__ import annotations

import json
import time

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from tests.keyed import ADMIN_KEY, OTHER_KEY, OWNER_KEY, VIEWER_KEY, bearer, sign_in
from tests.servers import start_worker
from webapp.service.access import OWNER, Principal


@pytest.fixture(autouse=True)
def empty_redis(redis_conn):
    """These tests count every job a filter matches: start from an empty Redis (the session's is
    flushed after each test that asks for it, and a module's running stack may leave jobs)."""
    redis_conn.flushall()


def post(client, body, headers=None):
    return client.post("/api/jobs/bulk", data=json.dumps(body), content_type="application/json",
                       headers=headers or {})  # fmt: skip


def submit_many(app, count: int, name: str = "add", args=(1, 2), queue: str | None = None, caller=None) -> list[str]:
    """`count` jobs through the service's own submit path, in batches of 1,000 (one round trip each)."""
    service = app.extensions["jobsvc"]
    body = {"name": name, "args": list(args)}
    if queue is not None:
        body["queue"] = queue
    ids = []
    for start in range(0, count, 1000):
        planned = [service.plan(service.planner.request(body)) for _ in range(min(1000, count - start))]
        ids += [entry["id"] for entry in service.enqueue(planned, caller).jobs]
    return ids


def drain(redis_url: str, timeout: float = 180) -> None:
    """Run real worker processes until the queues are empty."""
    worker = start_worker(redis_url, "--burst", "--processes", "2")
    try:
        worker.process.wait(timeout)
    finally:
        worker.stop()
    assert worker.process.returncode == 0, worker.output()


def statuses(redis_conn, ids) -> dict[str, int]:
    with redis_conn.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(f"rq:job:{job_id}", "status")
        found = pipe.execute()
    counts: dict[str, int] = {}
    for status in found:
        key = status.decode() if status else "gone"
        counts[key] = counts.get(key, 0) + 1
    return counts


def follow(client, body, headers=None) -> tuple[list[dict], dict]:
    """Call until next_cursor is null; the answers and their totals."""
    answers, cursor = [], None
    while True:
        response = post(client, {**body, **({"cursor": cursor} if cursor else {})}, headers)
        assert response.status_code == 200, response.get_json()
        answers.append(response.get_json())
        cursor = answers[-1]["next_cursor"]
        if cursor is None:
            break
    totals = {field: sum(answer[field] for answer in answers) for field in ("matched", "eligible", "done")}
    return answers, totals


def test_bulk_retry_of_ten_thousand_failed_jobs(app, client, redis_server, redis_conn):
    started = time.monotonic()
    ids = submit_many(app, 10_000, name="fail", args=("boom",))
    submitted = time.monotonic()
    drain(redis_server.url)
    drained = time.monotonic()
    assert statuses(redis_conn, ids) == {"failed": 10_000}
    submit_many(app, 30)  # queued `add` jobs: matched by no failed filter, skipped by an unfiltered retry

    # Each call answers within its time budget: on a busy machine a walk may take more than one.
    _, dry = follow(client, {"action": "retry", "filter": {"status": "failed"}, "dry_run": True})
    assert dry == {"matched": 10_000, "eligible": 10_000, "done": 0}
    assert statuses(redis_conn, ids) == {"failed": 10_000}  # a dry run changes nothing
    answers, dry_all = follow(client, {"action": "retry", "filter": {}, "dry_run": True})
    assert dry_all == {"matched": 10_030, "eligible": 10_000, "done": 0}
    skipped = [entry for answer in answers for entry in answer["skipped"]]
    assert sum(entry["count"] for entry in skipped) == 30
    assert {(entry["reason"], entry["status"]) for entry in skipped} == {("status", "queued")}

    before = time.monotonic()
    answers, totals = follow(client, {"action": "retry", "filter": {"status": "failed", "name": "fail"}})
    retried = time.monotonic()
    assert totals == {"matched": 10_000, "eligible": 10_000, "done": 10_000}
    assert statuses(redis_conn, ids) == {"queued": 10_000}
    assert redis_conn.llen("rq:queue:default") == 10_030
    assert redis_conn.zcard("rq:failed:default") == 0
    sample = Job.fetch(ids[1234], connection=redis_conn, serializer=JSONSerializer)
    assert "error" not in sample.meta
    timeline = [json.loads(f[b"data"])["event"] for _, f in redis_conn.xrange(f"jobsvc:job-events:{ids[1234]}")]
    assert timeline[-2:] == ["failed", "queued"]

    drain(redis_server.url)  # the retried jobs really run again (and fail again: a second attempt each)
    assert statuses(redis_conn, ids) == {"failed": 10_000}
    assert len(Job.fetch(ids[0], connection=redis_conn, serializer=JSONSerializer).results()) == 2
    print(f"\n10,000 failed jobs: submitted in {submitted - started:.1f} s, failed by 2 worker processes in "
          f"{drained - submitted:.1f} s; bulk retry {retried - before:.2f} s in {len(answers)} call(s)")  # fmt: skip


def test_the_time_budget_ends_a_call_with_a_cursor_and_the_next_call_goes_on(make_app, redis_conn):
    app = make_app(BULK_PAGE_SIZE=10, BULK_TIME_BUDGET=0)
    client = app.test_client()
    queued = submit_many(app, 35, queue="low")
    submit_many(app, 5, queue="high")
    answers, totals = follow(client, {"action": "cancel", "filter": {"status": "queued", "queue": "low"}})
    assert len(answers) == 4  # a budget of 0 s: one page of 10 per call
    assert [answer["next_cursor"] is not None for answer in answers] == [True, True, True, False]
    assert totals == {"matched": 35, "eligible": 35, "done": 35}
    assert statuses(redis_conn, queued) == {"canceled": 35}
    assert redis_conn.llen("rq:queue:low") == 0 and redis_conn.llen("rq:queue:high") == 5
    last = [json.loads(f[b"data"]) for _, f in redis_conn.xrange(f"jobsvc:job-events:{queued[0]}")][-1]
    assert (last["event"], last["status"]) == ("canceled", "canceled")


def test_jobs_submitted_during_a_walk_are_not_part_of_it(make_app, redis_conn):
    app = make_app(BULK_PAGE_SIZE=10, BULK_TIME_BUDGET=0)
    client = app.test_client()
    old = submit_many(app, 20)
    first = post(client, {"action": "cancel", "filter": {}}).get_json()
    newer = submit_many(app, 5)
    second = post(client, {"action": "cancel", "filter": {}, "cursor": first["next_cursor"]}).get_json()
    third = post(client, {"action": "cancel", "filter": {}, "cursor": second["next_cursor"]}).get_json()
    assert first["done"] + second["done"] + third["done"] == 20 and third["next_cursor"] is None
    assert statuses(redis_conn, old) == {"canceled": 20}
    assert statuses(redis_conn, newer) == {"queued": 5}


def test_bulk_delete_removes_jobs_their_timelines_and_index_entries(app, client, redis_conn):
    low = submit_many(app, 12, queue="low")
    kept = submit_many(app, 3)
    answer = post(client, {"action": "delete", "filter": {"queue": "low"}}).get_json()
    assert (answer["matched"], answer["done"], answer["skipped"]) == (12, 12, [])
    assert statuses(redis_conn, low) == {"gone": 12}
    assert not any(redis_conn.exists(f"jobsvc:job-events:{job_id}") for job_id in low)
    assert redis_conn.llen("rq:queue:low") == 0
    listed = client.get("/api/jobs?limit=100").get_json()
    assert sorted(job["id"] for job in listed["jobs"]) == sorted(kept)
    assert client.get("/api/jobs?queue=low").get_json() == {"jobs": [], "next_cursor": None}
    deleted = [json.loads(f[b"data"]) for _, f in redis_conn.xrange("jobsvc:events")]
    assert sum(1 for event in deleted if event["event"] == "deleted") == 12


def test_each_action_skips_the_statuses_it_does_not_take(app, client, redis_conn):
    ids = submit_many(app, 4)
    app.extensions["jobsvc"].cancel(ids[0], None)
    answer = post(client, {"action": "retry", "filter": {}}).get_json()
    assert (answer["matched"], answer["eligible"], answer["done"]) == (4, 1, 1)
    assert answer["skipped"] == [{"reason": "status", "status": "queued", "count": 3}]
    again = post(client, {"action": "cancel", "filter": {"status": "finished"}}).get_json()
    assert (again["matched"], again["done"], again["skipped"]) == (0, 0, [])


def test_owners_see_and_act_on_their_own_jobs_only(make_app, redis_conn):
    app = make_app(keyed=True)
    client = app.test_client()
    alices = submit_many(app, 6, caller=Principal("alice", OWNER))
    bobs = submit_many(app, 4, caller=Principal("bob", OWNER))
    dry = post(client, {"action": "cancel", "filter": {}, "dry_run": True}, bearer(OTHER_KEY)).get_json()
    assert (dry["matched"], dry["eligible"]) == (4, 4)
    answer = post(client, {"action": "cancel", "filter": {"status": "queued"}}, bearer(OWNER_KEY)).get_json()
    assert (answer["matched"], answer["done"]) == (6, 6)
    assert statuses(redis_conn, alices) == {"canceled": 6}
    assert statuses(redis_conn, bobs) == {"queued": 4}
    response = post(client, {"action": "cancel", "filter": {}, "dry_run": True}, bearer(VIEWER_KEY))
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    admin = post(client, {"action": "delete", "filter": {}}, bearer(ADMIN_KEY)).get_json()
    assert (admin["matched"], admin["done"]) == (10, 10)


def test_one_audit_entry_per_call_with_the_filter_and_the_counts(make_app, redis_conn):
    app = make_app(keyed=True)
    client = app.test_client()
    submit_many(app, 7, caller=Principal("alice", OWNER))
    body = {"action": "cancel", "filter": {"status": "queued", "name": "add"}, "dry_run": False}
    assert post(client, body, bearer(OWNER_KEY)).status_code == 200
    entries = client.get("/api/audit?action=bulkJobs", headers=bearer(ADMIN_KEY)).get_json()["entries"]
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["actor"], entry["role"], entry["path"], entry["status"]) == ("alice", "owner", "/api/jobs/bulk", 200)
    assert entry["details"]["action"] == "cancel" and entry["details"]["dry_run"] is False
    assert entry["details"]["filter"] == {"status": "queued", "name": "add"}
    outcome = entry["details"]["outcome"]
    assert (outcome["matched"], outcome["eligible"], outcome["done"], outcome["next_cursor"]) == (7, 7, 7, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "explode", "filter": {}}, "action"),
        ({"filter": {}}, "action"),
        ({"action": "retry"}, "filter"),
        ({"action": "retry", "filter": {"queue": "nowhere"}}, "filter.queue"),
        ({"action": "retry", "filter": {"name": "os.system"}}, "filter.name"),
        ({"action": "retry", "filter": {"status": "lost"}}, "filter.status"),
        ({"action": "retry", "filter": {"owner": "bob"}}, "filter.owner"),
        ({"action": "retry", "filter": {}, "dry_run": "yes"}, "dry_run"),
        ({"action": "retry", "filter": {}, "cursor": "not a cursor"}, "cursor"),
        ({"action": "retry", "filter": {}, "limit": 5}, "limit"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client, redis_conn, body, field):
    response = post(client, body)
    assert response.status_code == 422, response.get_json()
    assert field in json.dumps(response.get_json()["error"])


def test_the_cli_prints_progress_and_is_audited(app, runner, redis_conn):
    app.config.update(BULK_PAGE_SIZE=10)
    ids = submit_many(app, 25, queue="low")
    dry = runner.invoke(args=["jobs", "bulk", "cancel", "--queue", "low", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "25 matched, 25 would be canceled" in dry.output
    assert statuses(redis_conn, ids) == {"queued": 25}
    result = runner.invoke(args=["jobs", "bulk", "cancel", "--status", "queued", "--queue", "low"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("10 matched, 10 canceled") and lines[1].startswith("20 matched, 20 canceled")
    assert lines[-1] == "25 matched, 25 canceled"
    assert statuses(redis_conn, ids) == {"canceled": 25}
    retry = runner.invoke(args=["jobs", "bulk", "retry", "--queue", "low", "--status", "queued"])
    assert retry.exit_code == 0 and retry.output.strip().splitlines()[-1] == "0 matched, 0 retried"
    audit = [(f[b"action"].decode(), json.loads(f[b"details"])) for _, f in redis_conn.xrange("jobsvc:audit")]
    bulk = [details for action, details in audit if action == "jobs bulk"]
    assert [entry["outcome"]["done"] for entry in bulk] == [0, 25, 0]
    bad = runner.invoke(args=["jobs", "bulk", "cancel", "--queue", "nowhere"])
    assert bad.exit_code != 0 and "unknown queue 'nowhere'" in bad.output


def test_the_job_list_offers_the_bulk_buttons_to_writers_only(make_app, redis_conn):
    app = make_app(keyed=True)
    owner, viewer = app.test_client(), app.test_client()
    sign_in(owner, OWNER_KEY)
    sign_in(viewer, VIEWER_KEY)
    page = owner.get("/jobs").get_data(as_text=True)
    assert 'id="bulk-retry"' in page and 'id="bulk-cancel"' in page
    assert "Retry all failed matching this filter" in page and "Cancel all queued matching" in page
    failed_only = owner.get("/jobs?status=failed").get_data(as_text=True)
    assert 'id="bulk-cancel" data-action="cancel" data-status="queued" hidden' in failed_only
    assert 'id="bulk-retry" data-action="retry" data-status="failed">' in failed_only
    read_only = viewer.get("/jobs").get_data(as_text=True)
    assert 'id="bulk' not in read_only and 'data-can-write="false"' in read_only


def test_a_job_retried_by_someone_else_meanwhile_is_counted_as_changed(app, redis_conn):
    service = app.extensions["jobsvc"]
    job_id = submit_many(app, 1)[0]
    service.cancel(job_id, None)
    stale = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)  # read while canceled
    service.retry(job_id, None)  # someone else retries it first
    with redis_conn.pipeline(transaction=False) as pipe:
        changed = service.requeue_ended([(stale, "canceled")], pipe)
        pipe.execute()
    assert changed == [stale]
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [job_id.encode()]  # queued once, not twice


def test_a_queued_job_a_worker_took_meanwhile_is_not_marked_canceled(app, redis_conn):
    service = app.extensions["jobsvc"]
    first, second = submit_many(app, 2)
    read = [
        (Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer), "queued") for job_id in [first, second]
    ]
    assert redis_conn.lpop("rq:queue:default") == first.encode()  # as a worker's claim takes it
    with redis_conn.pipeline(transaction=False) as pipe:
        changed = service.cancel_waiting(read, pipe)
        pipe.execute()
    assert [job.id for job in changed] == [first]
    assert statuses(redis_conn, [first, second]) == {"queued": 1, "canceled": 1}
    assert redis_conn.hget(f"rq:job:{second}", "status") == b"canceled"
    assert redis_conn.zscore("rq:canceled:default", second) is not None
    assert redis_conn.zscore("rq:canceled:default", first) is None
