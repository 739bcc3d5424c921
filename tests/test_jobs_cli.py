"""`flask jobs ...` through Flask's CLI runner, on a real private Redis (and a real worker for --wait)."""

from __future__ import annotations

import json

from rq.job import Job
from rq.serializers import JSONSerializer

from tests.servers import start_worker


def test_submit_parses_json_args_and_kwargs(runner, redis_conn):
    result = runner.invoke(args=["jobs", "submit", "add", "2", "--kwarg", "b=3", "--queue", "high"])
    assert result.exit_code == 0, result.output
    job_id = result.output.strip()
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert job.kwargs == {"a": 2, "b": 3} and job.origin == "high"


def test_submit_refuses_bad_arguments_with_the_api_message(runner, redis_conn):
    result = runner.invoke(args=["jobs", "submit", "add", "x", "1"])
    assert result.exit_code == 1
    assert "invalid arguments for add: a" in result.output
    result = runner.invoke(args=["jobs", "submit", "os.system", "true"])
    assert result.exit_code == 1 and "unknown job name" in result.output
    assert redis_conn.keys("rq:job:*") == []


def test_status_list_cancel_retry(runner, redis_conn):
    job_id = runner.invoke(args=["jobs", "submit", "add", "1", "2"]).output.strip()
    status = runner.invoke(args=["jobs", "status", job_id])
    assert json.loads(status.output)["status"] == "queued"
    listed = runner.invoke(args=["jobs", "list"]).output
    assert f"{job_id}  default  queued" in listed
    assert runner.invoke(args=["jobs", "cancel", job_id]).output.strip() == f"{job_id} canceled"
    assert f"{job_id}  default  canceled" in runner.invoke(args=["jobs", "list"]).output
    again = runner.invoke(args=["jobs", "cancel", job_id])
    assert again.exit_code == 1 and "already ended" in again.output
    assert runner.invoke(args=["jobs", "retry", job_id]).output.strip() == f"{job_id} queued"
    missing = runner.invoke(args=["jobs", "status", "nope"])
    assert missing.exit_code == 1 and "no job" in missing.output


def test_submit_wait_shows_progress_and_prints_the_result(runner, redis_server, redis_conn):
    worker = start_worker(redis_server.url, "--processes", "1")
    try:
        result = runner.invoke(args=["jobs", "submit", "sleep", "0.5", "--wait", "--wait-timeout", "30"])
        assert result.exit_code == 0, result.output
        lines = result.output.strip().splitlines()
        assert lines[-1] == '{"slept": 0.5}'
        assert "100%" in result.output
        failed = runner.invoke(args=["jobs", "submit", "fail", "oops", "--wait", "--wait-timeout", "30"])
        assert failed.exit_code == 1 and "failed: RuntimeError: oops" in failed.output
    finally:
        worker.stop()


def test_every_command_says_what_to_do_when_redis_is_away_or_full(app, redis_server, redis_conn):
    """No traceback from any `flask` command: Redis down names REDIS_URL, a full Redis says so."""
    from tests.servers import free_port
    from webapp import create_app

    def leaves(group):
        for command in group.commands.values():
            yield from leaves(command) if hasattr(command, "commands") else [command]

    unexplained = [command.name for command in leaves(app.cli) if not getattr(command.callback, "redis_explained", 0)]
    assert not unexplained

    url = f"redis://127.0.0.1:{free_port()}/0"
    away = create_app({"REDIS_URL": url, "TESTING": True}).test_cli_runner()
    for args in (["jobs", "submit", "add", "1", "2"], ["queues", "list"], ["schedules", "list"]):
        result = away.invoke(args=args)
        assert result.exit_code == 1 and f"cannot reach Redis at {url}" in result.output, result.output
        assert "REDIS_URL" in result.output and "Traceback" not in result.output

    redis_conn.config_set("maxmemory", 1)
    try:
        result = app.test_cli_runner().invoke(args=["jobs", "submit", "add", "1", "2"])
        assert result.exit_code == 1 and "Redis is full (its maxmemory is reached)" in result.output, result.output
    finally:
        redis_conn.config_set("maxmemory", 0)
