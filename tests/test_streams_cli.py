"""`flask listen`: one job's timeline (replay, live, end), all events, the demo channel."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.servers import ROOT, service_env
from webapp.store import keys
from webapp.store.events import EventLog, decode_entry


def event_log(app, redis_conn) -> EventLog:
    return EventLog.from_config(redis_conn, app.config)


def listen(redis_url: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "webapp", "listen", *args],
        cwd=ROOT,
        env=service_env(redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_listen_job_replays_a_finished_job_and_stops(app, runner, redis_conn):
    log = event_log(app, redis_conn)
    for event, status in [("queued", "queued"), ("started", "started"), ("finished", "finished")]:
        log.append(event, job_id="j1", name="add", queue="default", status=status)
    log.append("queued", job_id="other", name="add", queue="default", status="queued")

    result = runner.invoke(args=["listen", "--job", "j1", "--json"])
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == [decode_entry(*entry) for entry in redis_conn.xrange(keys.job_events("j1"))]

    readable = runner.invoke(args=["listen", "--job", "j1"]).stdout.splitlines()
    assert len(readable) == 3 and "finished" in readable[-1] and "j1 add [default]" in readable[-1]


def test_listen_job_replays_both_runs_of_a_retried_job(app, runner, redis_conn):
    log = event_log(app, redis_conn)
    timeline = [("queued", "queued"), ("started", "started"), ("failed", "failed")] * 2
    for event, status in timeline:
        log.append(event, job_id="j3", name="fail", queue="default", status=status)
    result = runner.invoke(args=["listen", "--job", "j3", "--json"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == [event for event, _ in timeline]


def test_listen_job_refuses_unknown_and_malformed_ids(runner, redis_conn):
    unknown = runner.invoke(args=["listen", "--job", "nope"])
    assert unknown.exit_code == 1 and "no job with id 'nope'" in unknown.output
    malformed = runner.invoke(args=["listen", "--job", "a:b"])
    assert malformed.exit_code == 2 and "--job" in malformed.output


def test_listen_job_follows_live_events_without_a_gap_until_the_end(app, redis_server, redis_conn):
    log = event_log(app, redis_conn)
    log.append("queued", job_id="j2", name="sleep", queue="default", status="queued")
    process = listen(redis_server.url, "--job", "j2", "--json")
    try:
        # One event while the command may still be starting, one surely after: both printed once.
        log.append("started", job_id="j2", name="sleep", queue="default", status="started")
        time.sleep(1.5)
        log.append("finished", job_id="j2", name="sleep", queue="default", status="finished")
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert [json.loads(line)["event"] for line in out.splitlines()] == ["queued", "started", "finished"]


def test_listen_prints_the_demo_channel_and_job_events(redis_server, redis_conn):
    process = listen(redis_server.url, "--count", "2")
    try:
        assert "listening on jobsvc:events, task:pubsub:channel" in process.stderr.readline()
        redis_conn.publish("task:pubsub:channel", "7")
        redis_conn.publish("jobsvc:events", json.dumps({"id": "1-0", "event": "started", "job_id": "j3"}))
        out, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    lines = out.splitlines()
    assert lines[0] == "[task:pubsub:channel] Task get 7"
    assert "started" in lines[1] and "j3" in lines[1]

    demo_only = listen(redis_server.url, "--channel", "demo", "--count", "1", "--json")
    try:
        assert "listening on task:pubsub:channel " in demo_only.stderr.readline()
        redis_conn.publish("jobsvc:events", json.dumps({"id": "2-0", "event": "started", "job_id": "j4"}))
        redis_conn.publish("task:pubsub:channel", "3")
        out, _ = demo_only.communicate(timeout=30)
    finally:
        demo_only.kill()
    assert out.splitlines() == ["3"]
