"""OpenTelemetry: one trace from the submitting request to the job's end when the SDK is set up;
nothing imported and nothing recorded in jobs when it is not installed or TRACING=off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def scenario(redis_url: str, mode: str, tracing: str = "auto", *, python_args=(), pythonpath=None) -> dict:
    env = {**os.environ, "PYTHONPATH": pythonpath or str(ROOT)}
    result = subprocess.run([sys.executable, *python_args, "-m", "tests.otel_scenario", redis_url, mode, tracing],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_one_trace_from_the_request_to_the_jobs_end(redis_server, redis_conn):
    found = scenario(redis_server.url, "sdk")
    spans = found["spans"]
    by_id = {span["span_id"]: span for span in spans}
    (client,) = [span for span in spans if span["name"] == "client request"]
    assert {span["trace_id"] for span in spans} == {client["trace_id"]}, "every span belongs to one trace"
    submits = [span for span in spans if span["name"].startswith("jobsvc submit")]
    jobs = [span for span in spans if span["name"].startswith("jobsvc job")]
    assert len(submits) == 2 and len(jobs) == 2
    for submit in submits:
        assert submit["parent_id"] == client["span_id"] and submit["kind"] == "PRODUCER"
    for job_id, job_span in zip(found["ids"], sorted(jobs, key=lambda span: span["start"]), strict=True):
        submit = by_id[job_span["parent_id"]]
        assert submit in submits and job_span["kind"] == "CONSUMER"
        traceparent = found["jobs"][job_id]["meta"]["traceparent"]
        assert traceparent.startswith(f"00-{submit['trace_id']}-{submit['span_id']}-")  # then the trace flags
        assert job_span["attributes"]["jobsvc.job_id"] == job_id
        children = {span["name"]: span for span in spans if span["parent_id"] == job_span["span_id"]}
        assert set(children) == {"jobsvc claim", "jobsvc run", "jobsvc finish"}
        claim, run, finish = children["jobsvc claim"], children["jobsvc run"], children["jobsvc finish"]
        assert job_span["start"] == claim["start"] <= claim["end"] <= run["start"] <= run["end"]
        assert run["end"] <= finish["start"] <= finish["end"] <= job_span["end"]
    add, fail = sorted(jobs, key=lambda span: span["start"])
    assert found["jobs"][found["ids"][0]]["status"] == "finished" and add["status"] == "UNSET"
    assert found["jobs"][found["ids"][1]]["status"] == "failed" and fail["status"] == "ERROR"
    failed_run = next(s for s in spans if s["parent_id"] == fail["span_id"] and s["name"] == "jobsvc run")
    assert failed_run["status"] == "ERROR" and "exception" in failed_run["events"]


def test_without_an_sdk_or_an_incoming_trace_jobs_carry_nothing(redis_server, redis_conn):
    found = scenario(redis_server.url, "plain")
    assert all("traceparent" not in job["meta"] for job in found["jobs"].values())
    assert [job["status"] for job in found["jobs"].values()] == ["finished", "failed"]


def test_tracing_off_imports_nothing(redis_server, redis_conn):
    found = scenario(redis_server.url, "plain", "off")
    assert found["otel_modules"] == []
    assert all("traceparent" not in job["meta"] for job in found["jobs"].values())
    assert [job["status"] for job in found["jobs"].values()] == ["finished", "failed"]


@pytest.fixture
def site_without_otel(tmp_path) -> str:
    """This venv's packages, less OpenTelemetry's: the service as installed without it."""
    view = tmp_path / "site"
    view.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith("opentelemetry"):
            (view / entry.name).symlink_to(entry)
    return f"{ROOT}{os.pathsep}{view}"


def test_not_installed_changes_nothing(redis_server, redis_conn, site_without_otel):
    code = "import importlib.util as u; print(u.find_spec('opentelemetry'))"
    probe = subprocess.run([sys.executable, "-S", "-c", code], env={**os.environ, "PYTHONPATH": site_without_otel},
                           capture_output=True, text=True)  # fmt: skip
    assert probe.stdout.strip() == "None"
    found = scenario(redis_server.url, "plain", python_args=("-S",), pythonpath=site_without_otel)
    assert found["otel_modules"] == []
    assert all("traceparent" not in job["meta"] for job in found["jobs"].values())
    assert [job["status"] for job in found["jobs"].values()] == ["finished", "failed"]
