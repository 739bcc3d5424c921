"""The submission contract: what the OpenAPI document says is valid is exactly what the API takes.

Each case is checked twice, against the served document's schema (jsonschema-rs, as the fuzzer
does) and against the API itself: a schema-valid submission is accepted (202), a schema-invalid
one is refused with a 4xx that names the problem, and nothing is written for it.
"""

from __future__ import annotations

import jsonschema_rs
import pytest

VALID = [
    {"name": "add", "args": [1, 2]},
    {"name": "add", "kwargs": {"a": 1, "b": 2}},
    {"name": "add", "args": [1], "kwargs": {"b": 2}},
    {"name": "add", "args": [1.0, 2], "timeout": 60.0},  # JSON's whole numbers are integers
    {"name": "sleep"},
    {"name": "sleep", "args": [0.5], "queue": "low", "retry": {"max": 2, "intervals": [1, 5]}},
    {"name": "fail", "kwargs": {"message": "boom"}, "enqueue_at": "2999-01-01T00:00:00Z"},
    {"name": "task_get", "args": [3], "enqueue_in": 60, "description": "later"},
]
INVALID = [
    {"name": "add", "args": [1]},  # b missing
    {"name": "add", "args": [1], "kwargs": {"a": 1, "b": 2}},  # a given twice
    {"name": "add", "args": [1, 2, 3]},  # too many
    {"name": "add", "kwargs": {"a": 1, "b": 2, "c": 3}},  # unknown argument
    {"name": "add", "args": ["1", 2]},  # a string is not an int
    {"name": "add", "args": [1.5, 2]},
    {"name": "add", "args": [True, 2]},
    {"name": "sleep", "args": [3601]},  # over the bound in its signature
    {"name": "nope"},
    {"name": "add", "args": [1, 2], "timeout": 7201},  # over MAX_JOB_TIMEOUT
    {"name": "add", "args": [1, 2], "retry": {"max": 11}},
    {"name": "add", "args": [1, 2], "enqueue_in": 1, "enqueue_at": "2030-01-01T00:00:00Z"},
    {"name": "add", "args": [1, 2], "depends_on": ["x"], "enqueue_in": 5},
    {"name": "add", "args": [1, 2], "queue": "urgent"},
    {"name": "add", "args": [1, 2], "priority": 1},
    {"args": [1, 2]},
]


@pytest.fixture
def submission_schema(client):
    document = client.get("/api/openapi.json").get_json()
    schema = {"$ref": "#/components/schemas/Submission", "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


@pytest.mark.parametrize("body", VALID)
def test_a_schema_valid_submission_is_accepted(client, redis_conn, submission_schema, body):
    assert submission_schema.is_valid(body)
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 202, response.get_json()


@pytest.mark.parametrize("body", INVALID)
def test_a_schema_invalid_submission_is_refused(client, redis_conn, submission_schema, body):
    assert not submission_schema.is_valid(body)
    response = client.post("/api/jobs", json=body)
    assert response.status_code in (400, 422), (body, response.status_code)
    assert response.get_json()["error"]["message"]
    assert redis_conn.keys("rq:job:*") == []
