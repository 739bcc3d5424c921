"""Job lifecycle events: one atomic write per event.

An event is appended to the global stream (its entry id becomes the event id), then to
the job's own stream under the same id, and published on the events channel, all in one
Lua script, so the web and the workers never interleave two events out of order and a
subscriber never hears of an event that is not yet in the streams.

Keys (prefix `jobsvc:`):
- `jobsvc:events`: every job's events, trimmed to `EVENTS_STREAM_MAXLEN`;
- `jobsvc:job-events:<job id>`: one job's timeline, expiring with the job.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline

from webapp.metrics import METRICS_LUA

GLOBAL_STREAM = "jobsvc:events"
JOB_STREAM_PREFIX = "jobsvc:job-events:"
TERMINAL_EVENTS = frozenset({"finished", "failed", "canceled", "stopped"})

# KEYS[1] global stream, KEYS[2] job stream
# ARGV[1] channel, ARGV[2] global maxlen, ARGV[3] job stream ttl (s), ARGV[4] job id,
# ARGV[5] payload: a JSON object; the published message is the payload with the id first.
# ARGV[6] event name, ARGV[7] now (Unix seconds): the metrics lines below (webapp.metrics)
# count the event, keep the live-job index the reconciler scans and time each run.
_APPEND_EVENT = (
    """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'job_id', ARGV[4], 'data', ARGV[5])
redis.call('XADD', KEYS[2], id, 'data', ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[1], '{"id":"' .. id .. '",' .. string.sub(ARGV[5], 2))
"""
    + METRICS_LUA
    + """
return id
"""
)


def utcnow_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_stream_key(job_id: str) -> str:
    return JOB_STREAM_PREFIX + job_id


class EventLog:
    """Writes job events for one app (web or worker) with that app's settings."""

    def __init__(self, connection: Redis, channel: str, maxlen: int, default_ttl: int):
        self.connection = connection
        self.channel = channel
        self.maxlen = maxlen
        self.default_ttl = default_ttl
        self._script = connection.register_script(_APPEND_EVENT)

    @classmethod
    def from_config(cls, connection: Redis, config: dict) -> EventLog:
        ttl = max(config["RESULT_TTL"], config["FAILURE_TTL"], config["JOB_TIMEOUT"]) + 3600
        return cls(connection, config["EVENTS_CHANNEL"], config["EVENTS_STREAM_MAXLEN"], ttl)

    def append(
        self,
        event: str,
        *,
        job_id: str,
        name: str | None,
        queue: str | None,
        status: str,
        ttl: int | None = None,
        pipeline: Pipeline | None = None,
        **extra: Any,
    ):
        """Record one event; returns its id, or queues the write on `pipeline` if given."""
        payload = {
            "event": event,
            "job_id": job_id,
            "name": name,
            "queue": queue,
            "status": status,
            "at": utcnow_iso(),
            **extra,
        }
        data = json.dumps(payload, separators=(",", ":"), default=str)
        keep = ttl if ttl is not None and ttl > 0 else self.default_ttl
        return self._script(
            keys=[GLOBAL_STREAM, job_stream_key(job_id)],
            args=[self.channel, self.maxlen, keep, job_id, data, event, f"{time.time():.6f}"],
            client=pipeline if pipeline is not None else self.connection,
        )


def decode_entry(entry_id: bytes | str, fields: dict) -> dict:
    """Turn a stream entry into the event dict clients see (id first)."""
    event_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    raw = fields.get(b"data", fields.get("data"))
    return {"id": event_id, **json.loads(raw)}
