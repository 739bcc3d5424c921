"""Bulk actions report their progress as operator events (`bulk.started`, `bulk.progress` after
every page, `bulk.finished`) on the operator event stream and channel, beside the queue events,
from the API and the CLI, dry runs included; owners' events name none of another owner's jobs.
A real private Redis; `flask listen` as a real process."""

from __future__ import annotations

import getpass
import json

import pytest

from tests.keyed import ADMIN_KEY, OWNER_KEY, bearer
from tests.servers import listener_subscribed
from tests.test_bulk import post, statuses, submit_many
from tests.test_queue_pause import wait_until
from webapp.service.access import OWNER, Principal
from webapp.store import keys


@pytest.fixture(autouse=True)
def empty_redis(redis_conn):
    """These tests count the jobs a filter matches and read the operator stream: start empty."""
    redis_conn.flushall()


def operator_events(redis_conn, after: str = "-") -> list[dict]:
    """The operator stream's events (after id `after`), oldest first, each with its id."""
    start = after if after == "-" else "(" + after
    return [
        {"id": entry_id.decode(), **json.loads(fields[b"data"])}
        for entry_id, fields in redis_conn.xrange(keys.QUEUE_EVENTS_STREAM, min=start)
    ]


def last_id(redis_conn) -> str:
    entries = redis_conn.xrevrange(keys.QUEUE_EVENTS_STREAM, count=1)
    return entries[0][0].decode() if entries else "0-0"


def one_call(events: list[dict]) -> list[dict]:
    """The events of exactly one bulk call, checked to share its bulk_id."""
    assert len({event["bulk_id"] for event in events}) == 1, events
    return events


def test_a_bulk_retry_over_three_pages_reports_each_page(make_app, redis_conn):
    app = make_app(BULK_PAGE_SIZE=2)
    client = app.test_client()
    ids = submit_many(app, 5, queue="low")
    assert post(client, {"action": "cancel", "filter": {"queue": "low"}}).get_json()["done"] == 5
    before = last_id(redis_conn)
    channel = keys.queue_events_channel(app.config)
    others = dict(redis_conn.pubsub_numsub(channel))[channel.encode()]  # e.g. an event hub
    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    wait_until(lambda: dict(redis_conn.pubsub_numsub(channel))[channel.encode()] > others, 5, "the subscription")

    answer = post(client, {"action": "retry", "filter": {"status": "canceled", "queue": "low"}}).get_json()
    assert (answer["matched"], answer["done"], answer["next_cursor"]) == (5, 5, None)
    assert statuses(redis_conn, ids) == {"queued": 5}

    events = one_call(operator_events(redis_conn, before))
    assert [event["event"] for event in events] == ["bulk.started"] + ["bulk.progress"] * 3 + ["bulk.finished"]
    started, *progress, finished = events
    assert started["action"] == "retry" and started["dry_run"] is False and started["by"] is None
    assert started["filter"] == {"status": "canceled", "queue": "low"} and started["cursor"] is None
    assert [(e["page"], e["matched"], e["eligible"], e["done"]) for e in progress] == [
        (1, 2, 2, 2), (2, 4, 4, 4), (3, 5, 5, 5)]  # fmt: skip
    assert all(event["cursor"] for event in progress) and len({event["cursor"] for event in progress}) == 3
    assert (finished["matched"], finished["eligible"], finished["done"], finished["pages"]) == (5, 5, 5, 3)
    assert finished["skipped"] == [] and finished["next_cursor"] is None
    assert finished["filter"] == started["filter"]

    published = []
    wait_until(lambda: published.extend(m for m in [pubsub.get_message(timeout=0.1)] if m) or len(published) >= 5,
               5, "the published events")  # fmt: skip
    pubsub.close()
    assert [json.loads(message["data"]) for message in published] == events  # the same events, ids included
    job_events = [json.loads(fields[b"data"])["event"] for _, fields in redis_conn.xrange(keys.EVENTS_STREAM)]
    assert not [name for name in job_events if name.startswith("bulk.")]  # job-event consumers never meet them


def test_a_dry_run_reports_what_it_would_do_and_changes_nothing(make_app, redis_conn):
    app = make_app(BULK_PAGE_SIZE=4)
    client = app.test_client()
    ids = submit_many(app, 10)
    before = last_id(redis_conn)
    answer = post(client, {"action": "retry", "filter": {}, "dry_run": True}).get_json()
    assert (answer["matched"], answer["eligible"]) == (10, 0)  # queued jobs are not retried
    events = one_call(operator_events(redis_conn, before))
    assert all(event["dry_run"] is True for event in events)
    assert [(e["matched"], e["eligible"], e["done"]) for e in events if e["event"] == "bulk.progress"] == [
        (4, 0, 0), (8, 0, 0), (10, 0, 0)]  # fmt: skip
    assert events[-1]["skipped"] == [{"reason": "status", "status": "queued", "count": 10}]
    assert statuses(redis_conn, ids) == {"queued": 10}

    cancel = post(client, {"action": "cancel", "filter": {}, "dry_run": True}).get_json()
    finished = operator_events(redis_conn, before)[-1]
    assert finished["event"] == "bulk.finished" and finished["action"] == "cancel" and finished["dry_run"] is True
    assert (finished["matched"], finished["eligible"], finished["done"]) == (cancel["matched"], 10, 0)


def test_a_call_ended_by_its_time_budget_says_where_to_go_on(make_app, redis_conn):
    app = make_app(BULK_PAGE_SIZE=10, BULK_TIME_BUDGET=0)
    client = app.test_client()
    submit_many(app, 25)
    before = last_id(redis_conn)
    first = post(client, {"action": "cancel", "filter": {"status": "queued"}}).get_json()
    second = post(client, {"action": "cancel", "filter": {"status": "queued"}, "cursor": first["next_cursor"]})
    events = operator_events(redis_conn, before)
    calls = [event["bulk_id"] for event in events if event["event"] == "bulk.started"]
    assert len(calls) == 2 and calls[0] != calls[1]
    first_finished = next(e for e in events if e["event"] == "bulk.finished" and e["bulk_id"] == calls[0])
    assert first_finished["next_cursor"] == first["next_cursor"] and first_finished["done"] == 10
    second_started = next(e for e in events if e["event"] == "bulk.started" and e["bulk_id"] == calls[1])
    assert second_started["cursor"] == first["next_cursor"]
    assert second.get_json()["done"] == 10


def test_the_cli_reports_its_progress_as_events_too(app, runner, redis_conn):
    app.config.update(BULK_PAGE_SIZE=10)
    submit_many(app, 25, queue="low")
    before = last_id(redis_conn)
    dry = runner.invoke(args=["jobs", "bulk", "cancel", "--queue", "low", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    dry_events = one_call(operator_events(redis_conn, before))
    assert [e["event"] for e in dry_events] == ["bulk.started"] + ["bulk.progress"] * 3 + ["bulk.finished"]
    assert all(event["dry_run"] is True and event["by"] == getpass.getuser() for event in dry_events)
    assert (dry_events[-1]["eligible"], dry_events[-1]["done"]) == (25, 0)

    before = last_id(redis_conn)
    result = runner.invoke(args=["jobs", "bulk", "cancel", "--status", "queued", "--queue", "low"])
    assert result.exit_code == 0, result.output
    events = one_call(operator_events(redis_conn, before))
    assert [e["done"] for e in events if e["event"] == "bulk.progress"] == [10, 20, 25]
    assert events[0]["filter"] == {"status": "queued", "queue": "low"} and events[0]["dry_run"] is False
    assert (events[-1]["event"], events[-1]["done"], events[-1]["next_cursor"]) == ("bulk.finished", 25, None)


def test_an_owners_events_carry_counts_and_never_another_owners_jobs(make_app, redis_conn):
    app = make_app(keyed=True, BULK_PAGE_SIZE=2)
    client = app.test_client()
    alices = submit_many(app, 5, caller=Principal("alice", OWNER))
    bobs = submit_many(app, 5, caller=Principal("bob", OWNER))
    before = last_id(redis_conn)
    answer = post(client, {"action": "cancel", "filter": {}}, bearer(OWNER_KEY)).get_json()
    assert (answer["matched"], answer["done"]) == (5, 5)
    events = one_call(operator_events(redis_conn, before))
    assert [e["event"] for e in events] == ["bulk.started"] + ["bulk.progress"] * 3 + ["bulk.finished"]
    assert all(event["by"] == "alice" and event["owner"] == "alice" for event in events)
    text = json.dumps(events)
    assert not [job_id for job_id in bobs if job_id in text]
    cursors = [event["cursor"] for event in events if event["event"] == "bulk.progress"]
    assert all(cursor.partition(":")[2] in alices for cursor in cursors)  # a position among alice's own jobs
    assert statuses(redis_conn, bobs) == {"queued": 5}

    before = last_id(redis_conn)
    post(client, {"action": "delete", "filter": {"status": "canceled"}}, bearer(ADMIN_KEY))
    admins = operator_events(redis_conn, before)[0]
    assert (admins["by"], admins["owner"]) == ("ops", None)


def test_queue_events_keep_their_shape_beside_bulk_events(make_app, redis_conn):
    app = make_app(BULK_PAGE_SIZE=5)
    submit_many(app, 3)
    app.extensions["jobsvc_queues"].set_paused(None, "low", True, by="maria")
    post(app.test_client(), {"action": "cancel", "filter": {}, "dry_run": True})
    app.extensions["jobsvc_queues"].set_paused(None, "low", False, by="maria")
    names = [event["event"] for event in operator_events(redis_conn)]
    assert names == ["queue.paused", "bulk.started", "bulk.progress", "bulk.finished", "queue.resumed"]
    paused = operator_events(redis_conn)[0]
    assert set(paused) == {"id", "event", "queue", "by", "at"} and paused["queue"] == "low"
    kinds = [fields.get(b"kind") for _, fields in redis_conn.xrange(keys.QUEUE_EVENTS_STREAM)]
    assert kinds == [None, b"bulk", b"bulk", b"bulk", None]


def test_flask_listen_prints_bulk_events(app, redis_server, redis_conn):
    from tests.test_streams_cli import listen

    app.config.update(BULK_PAGE_SIZE=2)
    submit_many(app, 3, queue="low")
    process = listen(redis_server.url, "--channel", "operator", "--count", "4")
    try:
        wait_until(lambda: listener_subscribed(redis_conn), 20, "the listener's subscription")
        post(app.test_client(), {"action": "cancel", "filter": {"queue": "low"}, "dry_run": True})
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 4, out
    assert "bulk.started" in lines[0] and "cancel (dry run) [queue=low] by the operator" in lines[0]
    assert "bulk.progress" in lines[1] and "page 1: 2 matched, 2 eligible, 0 done" in lines[1]
    assert "page 2: 3 matched, 3 eligible, 0 done" in lines[2]
    assert "bulk.finished" in lines[3] and "3 matched, 3 eligible, 0 done in 2 pages" in lines[3]
