"""The scheduler thread of worker.py: moves due jobs with their `queued` event, survives Redis restarts."""

from __future__ import annotations

import gc
import json
import time

import pytest

from tests.servers import RedisServer
from webapp import create_app
from webapp.worker.scheduler import SchedulerThread


@pytest.fixture
def private_redis():
    server = RedisServer().start()
    yield server
    server.cleanup()


def wait_for(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except Exception:  # Redis restarting
            pass
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def schedule(client) -> str:
    body = json.dumps({"name": "add", "args": [1, 2], "enqueue_in": 1})
    response = client.post("/api/jobs", data=body, content_type="application/json")
    assert response.status_code == 202
    return response.get_json()["id"]


# redis-py drops, without closing, a connection whose pipeline failed as the server was killed;
# it is collected below, inside this test, where its ResourceWarning is expected.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_due_jobs_are_queued_with_their_event_and_a_redis_restart_is_survived(private_redis):
    app = create_app({"REDIS_URL": private_redis.url, "TESTING": True, "SCHEDULER_INTERVAL": 0.1})
    client = app.test_client()
    redis = private_redis.client()
    thread = SchedulerThread(app.config, app.extensions["redis_factory"])
    thread.start()
    try:
        first = schedule(client)
        assert redis.llen("rq:queue:default") == 0
        wait_for(lambda: redis.lrange("rq:queue:default", 0, -1) == [first.encode()])
        events = [json.loads(f[b"data"])["event"] for _, f in redis.xrange(f"jobsvc:job-events:{first}")]
        assert events == ["scheduled", "queued"]
        assert redis.hget(f"rq:job:{first}", "status") == b"queued"

        private_redis.kill()
        time.sleep(0.5)  # the thread meets connection errors and keeps going
        private_redis.start()
        assert thread.is_alive()
        wait_for(lambda: schedule(client))
        wait_for(lambda: redis.llen("rq:queue:default") == 1)
    finally:
        thread.stop()
        redis.close()
        app.extensions["redis"].close()
    assert not thread.is_alive()
    del thread
    gc.collect()
