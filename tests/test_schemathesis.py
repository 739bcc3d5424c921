"""Schemathesis fuzzes every documented /api operation in-process against the OpenAPI document
(the event streams are fuzzed against a real server only: tests/test_schemathesis_live.py).

Checks: no 5xx, every status code documented, bodies and headers match their schemas, content
types as documented, and requests that break the schema are refused with a 4xx. Each
operation gets a bounded number of valid and of invalid cases (`EXAMPLES`).

(schemathesis' own pytest fixture loader does not run on pytest 9.2, so the operations are
listed from the document of a Redis-less app at collection time and driven with hypothesis.)
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from webapp import create_app
from webapp.web import openapi

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "30"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


def documented_cases() -> list[tuple[str, GenerationMode]]:
    """Each documented operation, valid inputs; and invalid ones where it takes any input."""
    document = openapi.build_document(create_app({"REDIS_URL": "redis://127.0.0.1:1/0"}))
    cases = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if "text/event-stream" in operation["responses"].get("200", {}).get("content", {}):
                continue  # a stream stays open: the live run (test_schemathesis_live.py) reads it for a moment
            label = f"{method.upper()} {path}"
            cases.append((label, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append((label, GenerationMode.NEGATIVE))
    return cases


@pytest.mark.parametrize(("label", "mode"), documented_cases())
def test_api_conforms_to_its_document(app, label, mode):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operation = schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served document"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def fuzz(case):
        case.call_and_validate(checks=CHECKS)

    fuzz()
