"""Events: one id per event, in the global stream, the job's stream and on pub/sub."""

from __future__ import annotations

import json

from webapp.store import keys
from webapp.store.events import EventLog, decode_entry


def test_an_event_lands_in_both_streams_under_one_id_and_is_published(redis_conn):
    log = EventLog(redis_conn, "test:events", maxlen=100, default_ttl=60)
    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("test:events")
    pubsub.get_message(timeout=1)

    event_id = log.append("queued", job_id="j1", name="add", queue="default", status="queued").decode()

    (global_entry,) = redis_conn.xrange(keys.EVENTS_STREAM)
    (job_entry,) = redis_conn.xrange(keys.job_events("j1"))
    assert global_entry[0].decode() == job_entry[0].decode() == event_id
    event = decode_entry(*job_entry)
    assert event["id"] == event_id and event["event"] == "queued" and event["job_id"] == "j1"
    assert 0 < redis_conn.ttl(keys.job_events("j1")) <= 60

    message = pubsub.get_message(timeout=1)
    published = json.loads(message["data"])
    assert published == event
    assert list(published)[0] == "id"
    pubsub.close()


def test_ids_increase_across_jobs_and_the_global_stream_is_trimmed(redis_conn):
    log = EventLog(redis_conn, "test:events", maxlen=10, default_ttl=60)
    ids = [
        log.append("queued", job_id=f"j{i % 3}", name="add", queue="default", status="queued").decode()
        for i in range(300)
    ]
    as_tuples = [tuple(int(part) for part in i.split("-")) for i in ids]
    assert as_tuples == sorted(as_tuples) and len(set(ids)) == 300
    assert redis_conn.xlen(keys.EVENTS_STREAM) < 300  # approximate trimming keeps it near maxlen
    assert redis_conn.xlen(keys.job_events("j0")) == 100


def test_events_can_ride_in_a_pipeline(redis_conn):
    log = EventLog(redis_conn, "test:events", maxlen=100, default_ttl=60)
    with redis_conn.pipeline() as pipe:
        pipe.set("other", "1")
        log.append("queued", job_id="j9", name="add", queue="default", status="queued", pipeline=pipe)
        pipe.execute()
    assert redis_conn.xlen(keys.job_events("j9")) == 1
