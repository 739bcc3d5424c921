"""The schedules' contract: what the OpenAPI document says is valid is what POST /api/schedules takes.

The cron pattern is standard cron, and croniter takes every expression it admits; time zones
are the server's own list; rules across fields (cron or interval, jitter for intervals) are in
the schema, and whatever depends on a stored schedule is a 409, not a 422.
"""

from __future__ import annotations

import re

import jsonschema_rs
import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.service.schedule_timing import CRON_PATTERN

JOB = {"name": "add", "args": [1, 2]}


@settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None, derandomize=True)
@given(st.from_regex(CRON_PATTERN, fullmatch=True))
def test_croniter_takes_every_expression_the_pattern_admits(expression):
    if not expression.startswith("@"):
        croniter(expression)


@pytest.fixture
def create_schema(client):
    document = client.get("/api/openapi.json").get_json()
    schema = {"$ref": "#/components/schemas/ScheduleCreate", "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


VALID = [
    {"name": "a", "job": JOB, "interval": 60},
    {"name": "b.c-d_e", "job": JOB, "cron": "*/15 9-17 * * MON-fri", "timezone": "Europe/Paris"},
    {"name": "f", "job": JOB, "cron": "@daily", "misfire": "skip", "no_overlap": True},
    {"name": "g", "job": JOB, "interval": 10, "jitter": 30},  # jitter is kept under the interval
    {"name": "h", "job": JOB, "cron": "0 0 31 2 *"},  # never fires, as cron itself takes it
    {"name": "i", "job": {"name": "sleep", "kwargs": {"seconds": 1}}, "interval": 5, "cron": None, "paused": True},
]
INVALID = [
    {"name": "a", "job": JOB},  # no timing
    {"name": "a", "job": JOB, "interval": 5, "cron": "* * * * *"},
    {"name": "a", "job": JOB, "cron": "* * * * *", "jitter": 5},
    {"name": "a", "job": JOB, "cron": "0 0 L * *"},
    {"name": "a", "job": JOB, "cron": "0  0 * * *"},
    {"name": "a", "job": JOB, "cron": "* * * * *", "timezone": "Mars/Base"},
    {"name": "a", "job": {**JOB, "enqueue_in": 5}, "interval": 5},  # a schedule's job has no timing options
    {"name": "a", "job": {"name": "add", "args": [1]}, "interval": 5},
    {"name": " a", "job": JOB, "interval": 5},
]


@pytest.mark.parametrize("body", VALID)
def test_a_schema_valid_schedule_is_created(client, redis_conn, create_schema, body):
    assert create_schema.is_valid(body)
    response = client.post("/api/schedules", json=body)
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("body", INVALID)
def test_a_schema_invalid_schedule_is_refused(client, redis_conn, create_schema, body):
    assert not create_schema.is_valid(body)
    response = client.post("/api/schedules", json=body)
    assert response.status_code == 422, (body, response.get_json())


def test_what_depends_on_the_stored_schedule_is_a_conflict(client, redis_conn):
    assert client.post("/api/schedules", json={"name": "c", "job": JOB, "cron": "0 2 * * *"}).status_code == 201
    response = client.patch("/api/schedules/c", json={"jitter": 5})  # valid alone; not on a cron schedule
    assert response.status_code == 409 and "jitter" in response.get_json()["error"]["message"]
    assert client.patch("/api/schedules/c", json={"cron": None}).status_code == 409  # would leave no timing


def test_a_null_job_in_a_patch_changes_nothing(client, redis_conn):
    assert client.post("/api/schedules", json={"name": "n", "job": JOB, "interval": 60}).status_code == 201
    response = client.patch("/api/schedules/n", json={"job": None, "paused": True, "timezone": "Australia/Melbourne"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["paused"] is True and response.get_json()["job"]["name"] == JOB["name"]


def test_jitter_never_pushes_a_run_into_the_next_tick(client, redis_conn, app):
    body = {"name": "j", "job": JOB, "interval": 2, "jitter": 600}
    assert client.post("/api/schedules", json=body).status_code == 201
    stored = app.extensions["jobsvc_schedules"].store.read("j")
    assert 0 <= stored.next_run - stored.next_due < 2000
    assert re.fullmatch(CRON_PATTERN, "@hourly")
