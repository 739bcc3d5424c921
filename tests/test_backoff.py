"""Retry with exponential backoff and jitter: the draws, the option's checks, the job's planned
delays, the catalog default, schedules, a retry through the API planning afresh, and real
workers retrying after the planned delays (measured from the job's attempts)."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from jobs.basic import fail
from tests.servers import start_worker
from webapp.service.backoff import backoff_delays, fixed_delays
from webapp.service.catalog import build_catalog, effective_options
from webapp.service.jobservice import JobService

NONE_1_2 = {"base": 1, "factor": 2, "jitter": "none"}


def post(client, path, body=None):
    return client.post(path, data=json.dumps(body) if body is not None else None, content_type="application/json")


def submit(client, retry, name="fail", args=("boom",)):
    response = post(client, "/api/jobs", {"name": name, "args": list(args), "retry": retry})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def fetch(redis_conn, job_id):
    return Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)


def nominal(base, factor, cap, count):
    """The delays before jitter: min(cap, base * factor**i)."""
    return [min(cap, base * factor**i) for i in range(count)]


# -- the draws -------------------------------------------------------------------------------


def test_delays_grow_by_the_factor_up_to_max_delay():
    assert backoff_delays(3, {"base": 1, "factor": 2, "max_delay": 3600, "jitter": "none"}) == [1, 2, 4]
    assert backoff_delays(5, {"base": 10, "factor": 3, "max_delay": 50, "jitter": "none"}) == [10, 30, 50, 50, 50]
    # Capped at every step: a huge count never overflows.
    assert backoff_delays(2000, {"base": 1, "factor": 10, "max_delay": 7, "jitter": "none"})[-1] == 7


@pytest.mark.parametrize(("jitter", "low"), [("full", 0.0), ("equal", 0.5)])
def test_jittered_delays_stay_within_their_bounds_and_vary(jitter, low):
    rng = random.Random(14)
    spec = {"base": 2, "factor": 2, "max_delay": 30, "jitter": jitter}
    bounds = nominal(2, 2, 30, 6)
    draws = [backoff_delays(6, spec, rng) for _ in range(500)]
    for delays in draws:
        for delay, d in zip(delays, bounds, strict=True):
            assert low * d - 0.001 <= delay <= d
    firsts = [delays[0] for delays in draws]
    assert len(set(firsts)) > 300  # each job draws its own (millisecond steps: some coincide)
    assert min(firsts) < low * 2 + 0.2 and max(firsts) > 1.8  # and they spread over the range


def test_fixed_intervals_give_one_delay_per_retry_the_last_repeating():
    assert fixed_delays(3, [5, 30]) == [5, 30, 30]
    assert fixed_delays(2, [5, 30, 60]) == [5, 30]
    assert fixed_delays(2, []) == [0, 0]


# -- the option ----------------------------------------------------------------------------


def test_backoff_submission_shows_its_planned_delays(client, redis_conn):
    job_id = submit(client, {"max": 3, "backoff": NONE_1_2})
    job = fetch(redis_conn, job_id)
    assert (job.retries_left, job.retry_intervals) == (3, [1, 2, 4])
    view = client.get(f"/api/jobs/{job_id}").get_json()
    assert view["retry"] == {
        "left": 3,
        "planned_delays": [1, 2, 4],
        "backoff": {"base": 1, "factor": 2, "max_delay": 3600, "jitter": "none"},  # MAX_RETRY_INTERVAL
    }
    listed = client.get("/api/jobs").get_json()["jobs"]
    assert [entry["id"] for entry in listed] == [job_id] and "retry" not in listed[0]


def test_each_job_draws_its_own_full_jitter_delays(client, redis_conn):
    bounds = nominal(4, 3, 60, 4)
    firsts = set()
    for _ in range(20):
        job_id = submit(client, {"max": 4, "backoff": {"base": 4, "factor": 3, "max_delay": 60}})  # full by default
        plan = client.get(f"/api/jobs/{job_id}").get_json()["retry"]
        assert plan["backoff"]["jitter"] == "full" and plan["left"] == 4
        for delay, d in zip(plan["planned_delays"], bounds, strict=True):
            assert 0 <= delay <= d
        assert fetch(redis_conn, job_id).retry_intervals == plan["planned_delays"]
        firsts.add(plan["planned_delays"][0])
    assert len(firsts) > 10


def test_fixed_intervals_are_planned_one_per_retry(client, redis_conn):
    job_id = submit(client, {"max": 3, "intervals": [5, 30]})
    assert client.get(f"/api/jobs/{job_id}").get_json()["retry"] == {
        "left": 3,
        "planned_delays": [5, 30, 30],
        "backoff": None,
    }
    no_retry = submit(client, None, name="add", args=(1, 2))  # add's default: DEFAULT_JOB_RETRIES
    assert client.get(f"/api/jobs/{no_retry}").get_json()["retry"]["planned_delays"] == [0]
    refused = submit(client, None)  # fail.retries = 0
    assert client.get(f"/api/jobs/{refused}").get_json()["retry"] is None


@pytest.mark.parametrize(
    ("retry", "argument", "words"),
    [
        ({"max": 2, "intervals": [1], "backoff": NONE_1_2}, "retry", "not both"),
        ({"max": 2, "intervals": [], "backoff": {}}, "retry", "not both"),
        ({"max": 2, "backoff": {"base": 0}}, "retry.backoff.base", "greater than 0"),
        ({"max": 2, "backoff": {"base": 3601}}, "retry.backoff.base", "MAX_RETRY_INTERVAL"),
        ({"max": 2, "backoff": {"max_delay": 99999}}, "retry.backoff.max_delay", "MAX_RETRY_INTERVAL"),
        ({"max": 2, "backoff": {"max_delay": 0}}, "retry.backoff.max_delay", "greater than 0"),
        ({"max": 2, "backoff": {"factor": 0.5}}, "retry.backoff.factor", "greater than or equal to 1"),
        ({"max": 2, "backoff": {"factor": 11}}, "retry.backoff.factor", "less than or equal to 10"),
        ({"max": 2, "backoff": {"jitter": "half"}}, "retry.backoff.jitter", "'full', 'equal' or 'none'"),
        ({"max": 2, "backoff": {"base": "1"}}, "retry.backoff.base", "valid number"),
        ({"max": 2, "backoff": {"seed": 1}}, "retry.backoff.seed", "Extra inputs"),
        ({"max": 11, "backoff": {}}, "retry.max", "MAX_RETRIES"),
    ],
)
def test_bad_backoffs_are_422_naming_the_field(client, redis_conn, retry, argument, words):
    response = post(client, "/api/jobs", {"name": "fail", "args": ["x"], "retry": retry})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert words in error["message"]
    assert argument in [detail["argument"] for detail in error["details"]]
    assert redis_conn.keys("rq:job:*") == []


def test_the_document_describes_backoff_beside_intervals(client):
    document = client.get("/api/openapi.json").get_json()
    retry = document["components"]["schemas"]["Submission_fail"]["properties"]["retry"]["anyOf"]
    intervals, backoff, null = retry
    assert null == {"type": "null"}
    assert set(intervals["properties"]) == {"max", "intervals", "backoff"}
    assert intervals["properties"]["backoff"] == {"type": "null"}
    assert backoff["required"] == ["max", "backoff"] and backoff["additionalProperties"] is False
    spec = backoff["properties"]["backoff"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["base"]["maximum"] == 3600 and spec["properties"]["factor"]["maximum"] == 10
    assert spec["properties"]["jitter"]["enum"] == ["full", "equal", "none"]


# -- the catalog default -------------------------------------------------------------------


def test_a_job_types_default_backoff_applies_when_the_submission_has_none(app, redis_conn):
    catalog = build_catalog({"fail": fail}, {"fail": {"retry": {"max": 2, "backoff": {"base": 5, "jitter": "none"}}}})
    assert effective_options(catalog["fail"], app.config)["retry"] == {
        "max": 2,
        "backoff": {"base": 5, "factor": 2, "max_delay": None, "jitter": "none"},
    }
    service = JobService(app.extensions["redis"], app.config, catalog)
    by_default = service.submit(None, "fail", ["x"])["id"]
    assert service.describe(by_default, None)["retry"] == {
        "left": 2,
        "planned_delays": [5, 10],
        "backoff": {"base": 5, "factor": 2, "max_delay": 3600, "jitter": "none"},
    }
    overridden = service.enqueue([service.plan(service.planner.request(
        {"name": "fail", "args": ["x"], "retry": {"max": 1, "intervals": [7]}}))], None).jobs[0]["id"]  # fmt: skip
    assert service.describe(overridden, None)["retry"] == {"left": 1, "planned_delays": [7], "backoff": None}
    with pytest.raises(TypeError, match="default retry"):
        build_catalog({"fail": fail}, {"fail": {"retry": {"max": 2, "backoff": {"factor": 0}}}})
    with pytest.raises(TypeError, match="not both"):
        build_catalog({"fail": fail}, {"fail": {"retry": {"max": 2, "intervals": [1], "backoff": {}}}})


# -- schedules -----------------------------------------------------------------------------


def test_a_schedules_job_takes_a_backoff_and_each_run_draws_its_own(client, redis_conn):
    job = {"name": "fail", "args": ["x"], "retry": {"max": 3, "backoff": {"base": 30, "factor": 2}}}
    both = {**job, "retry": {"max": 1, "intervals": [1], "backoff": {}}}
    bad = post(client, "/api/schedules", {"name": "both", "interval": 60, "job": both})
    assert bad.status_code == 422, bad.get_json()
    response = post(client, "/api/schedules", {"name": "flaky", "interval": 3600, "job": job})
    assert response.status_code == 201, response.get_json()
    plans = []
    for _ in range(2):
        ran = post(client, "/api/schedules/flaky/run")
        assert ran.status_code == 202, ran.get_json()
        plans.append(client.get(f"/api/jobs/{ran.get_json()['id']}").get_json()["retry"])
    for plan in plans:
        assert plan["left"] == 3 and plan["backoff"]["jitter"] == "full"
        assert all(0 <= delay <= d for delay, d in zip(plan["planned_delays"], (30, 60, 120), strict=True))
    assert plans[0]["planned_delays"] != plans[1]["planned_delays"]


# -- a retry through the API ---------------------------------------------------------------


def test_a_retry_through_the_api_plans_afresh(client, redis_conn):
    spec = {"base": 50, "factor": 2, "max_delay": 400, "jitter": "full"}
    job_id = submit(client, {"max": 3, "backoff": spec})
    first = client.get(f"/api/jobs/{job_id}").get_json()["retry"]
    assert post(client, f"/api/jobs/{job_id}/cancel").status_code == 200
    redis_conn.hset(f"rq:job:{job_id}", "retries_left", 0)  # as after its last retry
    assert post(client, f"/api/jobs/{job_id}/retry").status_code == 202
    again = client.get(f"/api/jobs/{job_id}").get_json()["retry"]
    assert again["left"] == 3 and again["backoff"] == first["backoff"]
    assert again["planned_delays"] != first["planned_delays"]
    assert all(0 <= delay <= d for delay, d in zip(again["planned_delays"], (50, 100, 200), strict=True))
    assert fetch(redis_conn, job_id).retry_intervals == again["planned_delays"]


# -- real workers ---------------------------------------------------------------------------


@pytest.fixture
def worker(redis_server, redis_conn):
    process = start_worker(redis_server.url, "--processes", "1", SCHEDULER_INTERVAL="0.2")
    yield process
    process.stop()


def finally_failed(client, job_id, tries, timeout=40.0):
    """The job's view once it has failed for good after `tries` attempts."""
    deadline = time.monotonic() + timeout
    view = None
    while time.monotonic() < deadline:
        view = client.get(f"/api/jobs/{job_id}").get_json()
        if view["status"] == "failed" and len(view["attempts"]) == tries:
            return view
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not fail {tries} times: {view}")


def gaps(attempts):
    """Seconds from the end of each attempt to the start of the next."""
    moments = [(datetime.fromisoformat(a["started_at"]), datetime.fromisoformat(a["ended_at"])) for a in attempts]
    return [(moments[i + 1][0] - moments[i][1]).total_seconds() for i in range(len(moments) - 1)]


# A retry never starts before its delay has passed (times are kept to the millisecond), and
# starts within the scheduler's interval (0.2 s here) plus what a loaded machine takes to move
# and start it.
EARLY, LATE = 0.002, 1.5


def test_a_worker_retries_after_1_2_4_seconds(client, worker):
    job_id = submit(client, {"max": 3, "backoff": NONE_1_2})
    view = finally_failed(client, job_id, 4)
    assert [a["outcome"] for a in view["attempts"]] == ["retried", "retried", "retried", "failed"]
    assert view["retry"]["planned_delays"] == [1, 2, 4] and view["retry"]["left"] == 0
    measured = gaps(view["attempts"])
    for gap, delay in zip(measured, [1, 2, 4], strict=True):
        assert delay - EARLY <= gap <= delay + LATE, measured


def test_a_worker_retries_within_the_full_jitter_draws(client, worker):
    job_id = submit(client, {"max": 2, "backoff": {"base": 2, "factor": 2, "jitter": "full"}})
    view = finally_failed(client, job_id, 3)
    planned = view["retry"]["planned_delays"]
    assert 0 <= planned[0] <= 2 and 0 <= planned[1] <= 4
    for gap, delay in zip(gaps(view["attempts"]), planned, strict=True):
        assert delay - EARLY <= gap <= delay + LATE, (gap, planned)


def test_the_job_page_shows_the_planned_waits(client, redis_conn):
    job_id = submit(client, {"max": 3, "backoff": NONE_1_2})
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    plan = '<dd id="retry-plan">1 s, 2 s, 4 s <span class="hint">(backoff from 1 s, ×2, at most 3600 s, jitter none)'
    assert plan in html
    fixed = submit(client, {"max": 2, "intervals": [5]})
    assert '<dd id="retry-plan">5 s, 5 s</dd>' in client.get(f"/jobs/{fixed}").get_data(as_text=True)
