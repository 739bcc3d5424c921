"""GET /api/jobs, the detail view's attempts, /api/queues, /api/workers and /api/functions."""

from __future__ import annotations

import itertools
import statistics
import time

import pytest
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from jobs.basic import sleep
from tests.bulk import write_finished_jobs
from tests.faults.faultkit import service_config
from tests.keyed import OTHER_KEY, OWNER_KEY, bearer
from tests.servers import free_port, start_worker
from webapp import create_app
from webapp.service.catalog import build_catalog, effective_options
from webapp.store import indexsweep, keys, listing
from webapp.worker.recovery import Recovery
from webapp.worker.rqworker import ServiceWorker


def submit(client, name, *args, queue=None):
    body = {"name": name, "args": list(args)}
    if queue:
        body["queue"] = queue
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def all_pages(client, query=""):
    """Every page of a listing, following next_cursor to the end."""
    pages, cursor = [], None
    while True:
        url = "/api/jobs?" + query + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def run_jobs(app, connection, queues=("high", "default", "low")):
    """Run every queued job in this process with the service's real worker class (burst mode)."""
    worker = ServiceWorker(list(queues), connection=connection, app=app)
    worker.work(burst=True)


LISTING_COMMANDS = {"zrevrangebyscore", "zrangebyscore", "hgetall", "xrevrange", "zrem", "eval"}

# -- listing ------------------------------------------------------------------------------------


def test_newest_first_in_pages_that_cover_every_job_once(client):
    ids = [submit(client, "add", n, 1) for n in range(45)]
    pages = all_pages(client, "limit=20")
    assert [len(page["jobs"]) for page in pages] == [20, 20, 5]
    listed = [job["id"] for page in pages for job in page["jobs"]]
    assert listed == list(reversed(ids))
    first = pages[0]["jobs"][0]
    assert first["name"] == "add" and first["queue"] == "default" and first["status"] == "queued"
    assert "attempts" not in first


def test_default_page_size_is_20(client):
    for n in range(25):
        submit(client, "add", n, 1)
    page = client.get("/api/jobs").get_json()
    assert len(page["jobs"]) == 20 and page["next_cursor"]


def test_pages_do_not_shift_when_jobs_are_enqueued_while_paging(client):
    older = [submit(client, "add", n, 1) for n in range(10)]
    first = client.get("/api/jobs?limit=4").get_json()
    newer = [submit(client, "add", n, 2) for n in range(5)]
    second = client.get(f"/api/jobs?limit=4&cursor={first['next_cursor']}").get_json()
    assert [job["id"] for job in first["jobs"]] == older[::-1][:4]
    assert [job["id"] for job in second["jobs"]] == older[::-1][4:8]
    assert not set(newer) & {job["id"] for job in second["jobs"]}


def test_jobs_created_in_the_same_microsecond_are_neither_lost_nor_repeated(client, redis_conn):
    ids = [submit(client, "add", n, 1) for n in range(6)]
    # Give them all one score, as a clock that does not move would.
    for job_id in ids:
        for key in listing.index_keys("default", "add"):
            redis_conn.zadd(key, {job_id: 1_700_000_000_000_000})
    listed = [job["id"] for page in all_pages(client, "limit=4") for job in page["jobs"]]
    assert sorted(listed) == sorted(ids) and len(listed) == 6


def test_filters_by_queue_name_and_status(app, client, redis_conn):
    high_add = submit(client, "add", 1, 1, queue="high")
    low_fail = submit(client, "fail", "boom", queue="low")
    default_add = submit(client, "add", 2, 2)
    run_jobs(app, redis_conn, queues=("high", "low"))

    def listed(query):
        return [job["id"] for page in all_pages(client, query) for job in page["jobs"]]

    assert listed("queue=high") == [high_add]
    assert listed("name=add") == [default_add, high_add]
    assert listed("name=add&queue=default") == [default_add]
    assert listed("status=failed") == [low_fail]
    assert listed("status=finished") == [high_add]
    assert listed("status=queued") == [default_add]
    assert listed("status=canceled") == []
    page = client.get("/api/jobs?status=failed").get_json()
    assert page["jobs"][0]["error"] == {"type": "RuntimeError", "message": "boom"}


def test_a_rare_status_is_found_by_following_cursors_through_short_pages(redis_server, redis_conn):
    app = create_app({"REDIS_URL": redis_server.url, "TESTING": True, "LISTING_SCAN_FACTOR": 2})
    client = app.test_client()
    failed = submit(client, "fail", "rare")
    run_jobs(app, redis_conn)
    for n in range(30):
        submit(client, "add", n, 1)
    pages = all_pages(client, "status=failed&limit=3")
    # Each request reads at most 2 * 3 index entries: the 31 jobs take several pages, most empty.
    assert len(pages) >= 5
    assert [job["id"] for page in pages for job in page["jobs"]] == [failed]
    assert pages[0]["jobs"] == [] and pages[0]["next_cursor"]


def test_expired_jobs_are_skipped_and_dropped_from_the_index(client, redis_conn):
    ids = [submit(client, "add", n, 1) for n in range(8)]
    for job_id in ids[2:6]:
        redis_conn.delete(f"rq:job:{job_id}")
    page = client.get("/api/jobs?limit=3").get_json()
    assert [job["id"] for job in page["jobs"]] == [ids[7], ids[6], ids[1]]
    remaining = {member.decode() for member in redis_conn.zrange(keys.INDEX, 0, -1)}
    assert remaining == {ids[0], ids[1], ids[6], ids[7]}
    assert redis_conn.zcard(keys.index_by_queue("default")) == 4
    assert redis_conn.zcard(keys.index_by_name("add")) == 4


def index_members(redis_conn, key):
    return {member.decode() for member in redis_conn.zrange(key, 0, -1)}


def test_the_reapers_sweep_drops_gone_ids_from_every_index_set(make_app, redis_server, redis_conn):
    indexsweep.forget_registrations()  # this process's memo outlives the previous test's Redis
    app = make_app(keyed=True)
    client = app.test_client()
    headers = bearer(OWNER_KEY)

    def submit_as_owner(n, queue):
        response = client.post("/api/jobs", json={"name": "add", "args": [n, 1], "queue": queue}, headers=headers)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    ids = [submit_as_owner(n, "high" if n % 2 else "default") for n in range(40)]
    gone, live = ids[::3], [job_id for job_id in ids if job_id not in ids[::3]]
    for job_id in gone:
        redis_conn.delete(keys.job(job_id))
    every = (keys.INDEX, keys.index_by_name("add"), keys.index_by_owner("alice"))
    assert all(set(gone) <= index_members(redis_conn, key) for key in every)
    assert set(gone) & set(ids[1::2]) <= index_members(redis_conn, keys.index_by_queue("high"))
    service = app.extensions["jobsvc"]
    reaper = Recovery(redis_conn, service_config(redis_server.url), service.names_by_path)
    reaper.run_pass()
    assert index_members(redis_conn, keys.INDEX) == set(live)
    assert index_members(redis_conn, keys.index_by_queue("default")) == set(live) & set(ids[::2])
    assert index_members(redis_conn, keys.index_by_queue("high")) == set(live) & set(ids[1::2])
    assert index_members(redis_conn, keys.index_by_name("add")) == set(live)
    assert index_members(redis_conn, keys.index_by_owner("alice")) == set(live)
    # The submissions only added: nothing was swept before the reaper's pass.
    assert redis_conn.hget(keys.INDEX_SWEEP_SIZES, keys.INDEX) == str(len(live)).encode()


def test_an_owner_set_is_registered_once_and_swept_by_a_reaper_without_the_catalog(
    make_app, redis_server, redis_conn, monkeypatch
):
    indexsweep.forget_registrations()
    client = make_app(keyed=True).test_client()

    def submit_as(key, n):
        response = client.post("/api/jobs", json={"name": "add", "args": [n, 1]}, headers=bearer(key))
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    alice = [submit_as(OWNER_KEY, n) for n in range(10)]
    bob = [submit_as(OTHER_KEY, n) for n in range(10)]
    registered = {member.decode() for member in redis_conn.smembers(keys.INDEX_SETS)}
    assert registered == {keys.index_by_queue("default"), keys.index_by_name("add"), keys.index_by_owner("alice"),
                          keys.index_by_owner("bob")}  # fmt: skip
    # Registered with the first write of each set, not with every submission.
    assert indexsweep.registration([keys.INDEX, keys.index_by_owner("bob")]) == []
    assert indexsweep.registration([keys.index_by_owner("carol")]) == [
        ("SADD", keys.INDEX_SETS, keys.index_by_owner("carol"))
    ]
    for job_id in alice[:7] + bob[:3]:
        redis_conn.delete(keys.job(job_id))
    # Like the supervisor's reaper: no catalog, so the name set is found through the registry too.
    checked = Recovery(redis_conn, service_config(redis_server.url)).sweep_index()
    assert checked[keys.index_by_owner("alice")] == 10 and checked[keys.index_by_owner("bob")] == 10
    assert index_members(redis_conn, keys.index_by_owner("alice")) == set(alice[7:])
    assert index_members(redis_conn, keys.index_by_owner("bob")) == set(bob[3:])
    assert index_members(redis_conn, keys.index_by_name("add")) == set(alice[7:] + bob[3:])
    # A set that emptied leaves the registry; a registry lost (a Redis restart) heals on later writes.
    for job_id in alice[7:]:
        redis_conn.delete(keys.job(job_id))
    indexsweep.sweep(redis_conn)
    indexsweep.sweep(redis_conn)
    assert not redis_conn.exists(keys.index_by_owner("alice"))
    assert keys.index_by_owner("alice").encode() not in redis_conn.smembers(keys.INDEX_SETS)
    redis_conn.delete(keys.INDEX_SETS)
    monkeypatch.setattr(indexsweep, "REGISTER_EVERY", 3)
    submit_as(OTHER_KEY, 1)
    submit_as(OTHER_KEY, 2)
    assert keys.index_by_owner("bob").encode() in redis_conn.smembers(keys.INDEX_SETS)


def add_entries(redis_conn, ids, live=True, start=0):
    """Index entries (scored by position) for jobs whose hash exists (live) or not."""
    with redis_conn.pipeline(transaction=False) as pipe:
        for offset, job_id in enumerate(ids):
            pipe.zadd(keys.INDEX, {job_id: 1_700_000_000_000_000 + start + offset})
            if live:
                pipe.hset(keys.job(job_id), "status", "finished")
        pipe.execute()


def test_the_sweeps_budget_keeps_up_with_the_additions(redis_conn, monkeypatch):
    add_entries(redis_conn, [f"old-{n}" for n in range(5_000)])
    assert indexsweep.sweep(redis_conn)[keys.INDEX] == 5_000  # a set seen first: all of it
    assert indexsweep.sweep(redis_conn)[keys.INDEX] == indexsweep.SWEEP_MIN  # nothing added
    add_entries(redis_conn, [f"new-{n}" for n in range(1_500)], start=5_000)
    assert indexsweep.sweep(redis_conn)[keys.INDEX] == 3 * 1_500
    # Capped: one pass stays bounded however many were added.
    monkeypatch.setattr(indexsweep, "SWEEP_MAX", 2_500)
    add_entries(redis_conn, [f"more-{n}" for n in range(1_000)], start=6_500)
    assert indexsweep.sweep(redis_conn)[keys.INDEX] == 2_500


def test_a_pass_checks_each_job_hash_once_whatever_the_sets_it_is_in(redis_conn):
    ids = [f"job-{n}" for n in range(1_500)]
    add_entries(redis_conn, ids)
    with redis_conn.pipeline(transaction=False) as pipe:
        for offset, job_id in enumerate(ids):
            pipe.zadd(keys.index_by_queue("default"), {job_id: 1_700_000_000_000_000 + offset})
            pipe.zadd(keys.index_by_name("add"), {job_id: 1_700_000_000_000_000 + offset})
        pipe.execute()
    redis_conn.delete(*(keys.job(job_id) for job_id in ids[:300]))
    redis_conn.config_resetstat()
    sets = [keys.index_by_queue("default"), keys.index_by_name("add")]
    assert indexsweep.sweep(redis_conn, sets) == dict.fromkeys([keys.INDEX, *sets], 1_500)
    assert redis_conn.info("commandstats")["cmdstat_exists"]["calls"] == 1_500
    assert all(index_members(redis_conn, key) == set(ids[300:]) for key in [keys.INDEX, *sets])


def test_a_steady_stream_of_jobs_keeps_the_index_within_one_and_a_half_times_the_live_jobs(redis_conn):
    """Each pass 400 jobs arrive and the 400 oldest expire: the sweep keeps the dead ones below
    half the live ones (the documented bound), pass after pass."""
    window, per_pass, serial = 4_000, 400, itertools.count()
    live = [f"job-{next(serial)}" for _ in range(window)]
    add_entries(redis_conn, live)
    indexsweep.sweep(redis_conn)
    sizes = []
    for _ in range(40):
        arrived = [f"job-{next(serial)}" for _ in range(per_pass)]
        add_entries(redis_conn, arrived, start=int(arrived[0].split("-")[1]))
        expired, live = live[:per_pass], live[per_pass:] + arrived
        redis_conn.delete(*(keys.job(job_id) for job_id in expired))
        indexsweep.sweep(redis_conn)
        sizes.append(redis_conn.zcard(keys.INDEX))
    assert max(sizes) <= 1.5 * window, sizes
    assert set(live) <= index_members(redis_conn, keys.INDEX)


def test_a_submission_checks_no_index_entries(client, redis_conn):
    """The submit script only adds to the index: no ZRANGEBYSCORE, no EXISTS but its own retry
    guard (one per submission), four ZADDs per job (the index sets all, queue and name, and
    the reconciler's live-job set)."""
    for n in range(5):
        submit(client, "add", n, 1)
    redis_conn.config_resetstat()
    for n in range(50):
        submit(client, "add", n, 1)
    stats = redis_conn.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items()}
    assert calls["evalsha"] == 50
    assert "zrangebyscore" not in calls and "zrange" not in calls
    assert calls["exists"] == 50
    assert calls["zadd"] == 4 * 50
    assert redis_conn.zcard(keys.INDEX) == 55


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("limit=0", 422),
        ("limit=101", 422),
        ("limit=ten", 422),
        ("limit=5&limit=6", 422),
        ("status=sleeping", 422),
        ("queue=nowhere", 422),
        ("name=os.system", 422),
        ("colour=red", 422),
        ("cursor=not-a-cursor", 422),  # not the documented cursor pattern
        ("cursor=" + "A" * 40, 422),  # not the documented cursor pattern
        ("cursor=djE6MTIzOmEvYg", 422),  # not the documented cursor pattern
        ("cursor=" + "x" * 301, 422),
    ],
)
def test_bad_queries_are_refused_with_json(client, query, status):
    response = client.get("/api/jobs?" + query)
    assert response.status_code == status
    assert response.get_json()["error"]["message"]


def test_cursor_round_trips():
    assert listing.decode_cursor(listing.encode_cursor(1_700_000_000_123_456, "abc-DEF_1")) == (
        1_700_000_000_123_456,
        "abc-DEF_1",
    )


def test_cost_per_page_does_not_grow_with_100k_jobs(client, redis_conn):
    """100k finished jobs: pages stay correct and cost the same Redis commands as with 100 jobs."""

    def commands_for(url):
        """The listing's Redis commands for one request, by command (heartbeats of others aside)."""
        redis_conn.config_resetstat()
        assert client.get(url).status_code == 200
        stats = redis_conn.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items()}
        return {name: count for name, count in calls.items() if name in LISTING_COMMANDS}

    write_finished_jobs(redis_conn, 100)
    small = commands_for("/api/jobs?limit=50")
    assert small["hgetall"] == 51 and small["xrevrange"] == 100
    redis_conn.flushall()

    ids = write_finished_jobs(redis_conn, 100_000)
    assert commands_for("/api/jobs?limit=50") == small

    timings, cursor, listed = [], None, []
    for _ in range(50):
        started = time.perf_counter()
        page = client.get("/api/jobs?limit=50" + (f"&cursor={cursor}" if cursor else "")).get_json()
        timings.append(time.perf_counter() - started)
        listed += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
    assert listed == ids[::-1][:2500]
    started = time.perf_counter()
    page = client.get("/api/jobs?status=failed&limit=50").get_json()
    rare = time.perf_counter() - started
    assert page["jobs"] == [] and page["next_cursor"]
    print(
        f"\nlisting at 100k jobs: median {statistics.median(timings) * 1000:.1f} ms per page of 50 "
        f"(max {max(timings) * 1000:.1f} ms over 50 pages); status=failed page (none match): {rare * 1000:.1f} ms"
    )


# -- detail view --------------------------------------------------------------------------------


def test_detail_view_lists_each_attempt(app, client, redis_conn):
    job_id = submit(client, "add", 2, 3)
    assert client.get(f"/api/jobs/{job_id}").get_json()["attempts"] == []
    run_jobs(app, redis_conn)
    body = client.get(f"/api/jobs/{job_id}").get_json()
    assert body["description"] == "jobs.basic.add(a=2, b=3)"
    [attempt] = body["attempts"]
    assert attempt["outcome"] == "finished" and attempt["error"] is None
    assert attempt["worker"] and attempt["started_at"] <= attempt["ended_at"]


def test_detail_view_shows_a_retried_failure_as_two_attempts(app, client, redis_conn):
    # Retries are a server-side option here: the job is enqueued by RQ directly, then indexed.
    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
    with redis_conn.pipeline() as pipe:
        job = queue.enqueue_call(
            "jobs.basic.fail", kwargs={"message": "try again"}, retry=Retry(max=1), meta={"name": "fail"}, pipeline=pipe
        )
        listing.index_job(pipe, job)
        pipe.execute()
    run_jobs(app, redis_conn)
    body = client.get(f"/api/jobs/{job.id}").get_json()
    assert body["status"] == "failed"
    assert [attempt["outcome"] for attempt in body["attempts"]] == ["retried", "failed"]
    for attempt in body["attempts"]:
        assert attempt["error"] == {"type": "RuntimeError", "message": "try again"}
    assert [job["id"] for job in client.get("/api/jobs?status=failed").get_json()["jobs"]] == [job.id]


def test_detail_view_of_an_unknown_job_is_404(client):
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/a:b").status_code == 404


# -- queues, workers, functions -----------------------------------------------------------------


def test_queue_counts_per_state(app, client, redis_conn):
    submit(client, "add", 1, 1, queue="high")
    submit(client, "fail", queue="high")
    submit(client, "add", 1, 1)
    submit(client, "add", 1, 2)
    run_jobs(app, redis_conn, queues=("high",))
    body = client.get("/api/queues").get_json()
    assert [queue["name"] for queue in body["queues"]] == ["high", "default", "low"]
    counts = {queue["name"]: queue["counts"] for queue in body["queues"]}
    assert counts["high"] == {
        "queued": 0,
        "started": 0,
        "finished": 1,
        "failed": 1,
        "canceled": 0,
        "scheduled": 0,
        "deferred": 0,
    }
    assert counts["default"]["queued"] == 2 and counts["default"]["finished"] == 0
    assert set(counts["low"].values()) == {0}


def test_workers_show_state_current_job_and_counts(client, redis_server):
    assert client.get("/api/workers").get_json() == {"workers": []}
    worker = start_worker(redis_server.url)
    try:
        job_id = submit(client, "sleep", 3.0)
        deadline = time.monotonic() + 30
        busy = None
        while time.monotonic() < deadline:
            workers = client.get("/api/workers").get_json()["workers"]
            busy = next((w for w in workers if w["current_job"] == job_id), None)
            if busy:
                break
            time.sleep(0.05)
        assert busy, f"no worker reported job {job_id}: {workers}"
        assert busy["state"] == "busy" and busy["queues"] == ["high", "default", "low"]
        assert busy["pid"] and busy["hostname"] and busy["last_heartbeat"].endswith("Z")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            [idle] = [w for w in client.get("/api/workers").get_json()["workers"] if w["name"] == busy["name"]]
            if idle["successful_jobs"] == 1:
                break
            time.sleep(0.05)
        assert idle["current_job"] is None and idle["successful_jobs"] == 1 and idle["failed_jobs"] == 0
    finally:
        worker.stop()


def test_functions_show_schema_summary_and_default_options(client, app):
    body = client.get("/api/functions").get_json()
    functions = {function["name"]: function for function in body["functions"]}
    assert set(functions) == {"add", "sleep", "fail", "task_get"}
    assert functions["add"]["summary"] == "Add two integers."
    assert functions["add"]["parameters"]["required"] == ["a", "b"]
    assert functions["add"]["options"] == {
        "queue": "default",
        "timeout": 180,
        "result_ttl": 86400,
        "failure_ttl": 604800,
        "ttl": None,
        "retry": {"max": 1, "intervals": []},  # DEFAULT_JOB_RETRIES
    }
    # sleep declares its own timeout in jobs.DEFAULT_OPTIONS; the rest comes from config.
    assert functions["sleep"]["options"]["timeout"] == 3660
    assert functions["sleep"]["options"]["result_ttl"] == 86400
    # `fail` opts out of the default retry (fail.retries = 0), and submissions get what is shown.
    assert functions["fail"]["options"]["retry"] is None
    for name, args, retries in (("add", [1, 2], 1), ("fail", ["x"], None)):
        job_id = client.post("/api/jobs", json={"name": name, "args": args}).get_json()["id"]
        job = Job.fetch(job_id, connection=app.extensions["redis"], serializer=JSONSerializer)
        assert job.retries_left == retries


def test_default_options_follow_config_and_are_checked_at_start():
    catalog = build_catalog({"sleep": sleep}, {"sleep": {"queue": "low", "retry": {"max": 2}}})
    config = {"DEFAULT_QUEUE": "default", "JOB_TIMEOUT": 60, "RESULT_TTL": 10, "FAILURE_TTL": 20}
    assert effective_options(catalog["sleep"], config) == {
        "queue": "low",
        "timeout": 60,
        "result_ttl": 10,
        "failure_ttl": 20,
        "ttl": None,
        "retry": {"max": 2},
    }
    with pytest.raises(TypeError, match="unknown default option"):
        build_catalog({"sleep": sleep}, {"sleep": {"job_timeout": 5}})
    with pytest.raises(TypeError, match="not an allowed job"):
        build_catalog({"sleep": sleep}, {"add": {"timeout": 5}})


def test_read_routes_answer_503_when_redis_is_down():
    app = create_app({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "TESTING": True})
    client = app.test_client()
    for url in ("/api/jobs", "/api/jobs/abc", "/api/queues", "/api/workers"):
        response = client.get(url)
        assert response.status_code == 503, url
        assert response.headers["Retry-After"] and response.get_json()["error"]["code"] == "redis_unavailable"
    # The catalog and the document need no Redis.
    assert client.get("/api/functions").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200


def test_an_owner_lists_only_its_own_jobs(app, redis_conn):
    """With API keys the owner comes from the credentials; its jobs have their own index set."""
    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
    owned = {"alice": [], "bob": []}
    for number in range(6):
        owner = "alice" if number % 3 else "bob"
        with redis_conn.pipeline() as pipe:
            job = queue.enqueue_call(
                "jobs.basic.add", kwargs={"a": number, "b": 1}, meta={"name": "add", "owner": owner}, pipeline=pipe
            )
            listing.index_job(pipe, job)
            pipe.execute()
        owned[owner].append(job.id)
    service = app.extensions["jobsvc"]
    lister = listing.JobLister(redis_conn, service.names_by_path, service.queues, service.catalog)
    page = lister.page(limit=3, owner="alice")
    assert [job["id"] for job in page["jobs"]] == owned["alice"][::-1][:3]
    rest = lister.page(limit=3, owner="alice", cursor=page["next_cursor"])
    assert [job["id"] for job in rest["jobs"]] == owned["alice"][::-1][3:] and rest["next_cursor"] is None
    assert [job["id"] for job in lister.page(limit=10, owner="bob", name="add")["jobs"]] == owned["bob"][::-1]
    assert lister.page(limit=10, owner="bob", queue="high")["jobs"] == []
