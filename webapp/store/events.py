"""Job lifecycle events: one atomic write per event.

An event is appended to the global stream (its entry id becomes the event id), then to
the job's own stream under the same id, and published on the events channel, all in one
Lua script, so the web and the workers never interleave two events out of order and a
subscriber never hears of an event that is not yet in the streams.

Keys (prefix `jobsvc:`):
- `jobsvc:events`: every job's events, trimmed to `EVENTS_STREAM_MAXLEN`;
- `jobsvc:job-events:<job id>`: one job's timeline, trimmed to about `JOB_EVENTS_MAXLEN`
  and expiring with the job (a terminal event sets its TTL to the job's result/failure TTL).

Writers outside this module record events with `EventLog.for_job(event, job, pipeline=...)`
(names in `EVENT_NAMES`); readers decide where a timeline ends with `is_terminal`.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq.exceptions import AbandonedJobError
from rq.job import Job

from webapp.metrics import METRICS_LUA

GLOBAL_STREAM = "jobsvc:events"
JOB_STREAM_PREFIX = "jobsvc:job-events:"
TERMINAL_EVENTS = frozenset({"finished", "failed", "canceled", "stopped"})

# Every event name, in lifecycle order. Who writes which:
# - the web: queued, scheduled (enqueue_at/enqueue_in), deferred (depends_on), canceled;
# - the workers: started, progress, retrying, finished, failed, stopped, abandoned (a job
#   whose worker died, found by RQ's registry maintenance: status failed, or queued/scheduled
#   when a retry is left).
EVENT_NAMES = (
    "queued",
    "scheduled",
    "deferred",
    "started",
    "progress",
    "retrying",
    "finished",
    "failed",
    "canceled",
    "stopped",
    "abandoned",
)
# A job's timeline ends with an event carrying one of these statuses (an `abandoned` job
# that will be retried carries `queued` or `scheduled` and goes on).
TERMINAL_STATUSES = frozenset({"finished", "failed", "canceled", "stopped"})

# KEYS[1] global stream, KEYS[2] job stream
# ARGV[1] channel, ARGV[2] global maxlen, ARGV[3] job stream ttl (s), ARGV[4] job id,
# ARGV[5] payload: a JSON object; the published message is the payload with the id first.
# ARGV[6] job stream maxlen (approximate: a job reporting progress forever stays bounded).
# ARGV[7] event name, ARGV[8] now (Unix seconds): the metrics lines below (webapp.metrics)
# count the event, keep the live-job index the reconciler scans and time each run.
_APPEND_EVENT = (
    """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'job_id', ARGV[4], 'data', ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], id, 'data', ARGV[5])
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

    def __init__(self, connection: Redis, channel: str, maxlen: int, default_ttl: int, job_maxlen: int = 1000):
        self.connection = connection
        self.channel = channel
        self.maxlen = maxlen
        self.default_ttl = default_ttl
        self.job_maxlen = job_maxlen
        self.script = connection.register_script(_APPEND_EVENT)

    @classmethod
    def from_config(cls, connection: Redis, config: dict) -> EventLog:
        ttl = max(config["RESULT_TTL"], config["FAILURE_TTL"], config["JOB_TIMEOUT"]) + 3600
        return cls(
            connection,
            config["EVENTS_CHANNEL"],
            config["EVENTS_STREAM_MAXLEN"],
            ttl,
            config.get("JOB_EVENTS_MAXLEN", 1000),
        )

    def append(self, event: str, *, pipeline: Pipeline | None = None, **fields: Any):
        """Record one event; returns its id, or queues the write on `pipeline` if given.
        `fields` are `command`'s: job_id, name, queue, status, ttl and any extra ones."""
        _evalsha, _sha, numkeys, *keys_and_args = self.command(event, **fields)
        return self.script(
            keys=keys_and_args[:numkeys],
            args=keys_and_args[numkeys:],
            client=pipeline if pipeline is not None else self.connection,
        )

    def command(
        self,
        event: str,
        *,
        job_id: str,
        name: str | None,
        queue: str | None,
        status: str,
        ttl: int | None = None,
        **extra,
    ) -> tuple:
        """The event write as one EVALSHA command, for callers that send commands themselves
        (the guarded submit inlines the script by its sha: webapp.guarded)."""
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
        return (
            "EVALSHA",
            self.script.sha,
            2,
            GLOBAL_STREAM,
            job_stream_key(job_id),
            self.channel,
            self.maxlen,
            keep,
            job_id,
            data,
            self.job_maxlen,
            event,
            f"{time.time():.6f}",
        )

    def for_job(
        self,
        event: str,
        job: Job,
        *,
        status: str | None = None,
        name: str | None = None,
        ttl: int | None = None,
        pipeline: Pipeline | None = None,
        **extra: Any,
    ):
        """Record `event` for an RQ job, taking its name, queue and status from the job.

        The helper for every writer (cancel, scheduling, dependencies, workers): `status`
        defaults to the job's cached status; a terminal status keeps the job's timeline as
        long as the job itself (its result or failure TTL) unless `ttl` says otherwise.
        """
        if status is None:
            current = job.get_status(refresh=False)
            status = current.value if current is not None else "queued"
        if name is None:
            name = job.meta.get("name") or job.func_name
        if ttl is None:
            ttl = terminal_ttl(job, status)
        return self.append(
            event, job_id=job.id, name=name, queue=job.origin, status=status, ttl=ttl, pipeline=pipeline, **extra
        )


def terminal_ttl(job: Job, status: str) -> int | None:
    """How long a job in `status` is kept by RQ (None: not terminal, or kept by default)."""
    if status == "finished":
        return job.result_ttl
    if status in ("failed", "stopped"):
        return job.failure_ttl
    return None


def is_terminal(event: dict) -> bool:
    """True for the event that ends a job's timeline (the job will not run again by itself)."""
    return event.get("event") != "progress" and event.get("status") in TERMINAL_STATUSES


def parse_event_id(text: str) -> tuple[int, int]:
    """`"1795482400620-3"` → `(1795482400620, 3)`; ValueError for anything else."""
    ms, sep, seq = text.partition("-")
    if len(text) > 41 or not sep or not (ms.isdigit() and seq.isdigit()) or not ms.isascii() or not seq.isascii():
        raise ValueError(f"not an event id: {text!r}")
    pair = (int(ms), int(seq))
    if pair[0] >= 2**64 or pair[1] >= 2**64:
        raise ValueError(f"not an event id: {text!r}")
    return pair


def format_event_id(pair: tuple[int, int]) -> str:
    return f"{pair[0]}-{pair[1]}"


def abandoned_handler(events: EventLog, names_by_path: dict[str, str] | None = None):
    """An RQ exception handler that records `abandoned` for a job whose worker died.

    RQ's registry maintenance calls a worker's exception handlers with `AbandonedJobError`
    for each job left in `started` by a dead worker, just before it retries or fails it;
    other exceptions pass through untouched.
    """
    names = names_by_path or {}

    def on_exception(job: Job, exc_type, exc_value, traceback) -> bool:
        if exc_type is AbandonedJobError or isinstance(exc_value, AbandonedJobError):
            if job.retries_left:
                status = "scheduled" if job.get_retry_interval() > 0 else "queued"
            else:
                status = "failed"
            error = {"type": "AbandonedJobError", "message": "the worker running this job died"}
            name = job.meta.get("name") or names.get(job.func_name or "")
            events.for_job("abandoned", job, status=status, name=name, error=error)
        return True

    return on_exception


def sse_frame(event: dict) -> str:
    """One event as a Server-Sent Events frame: its id, its name, its JSON on one line."""
    return f"id: {event['id']}\nevent: {event['event']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def decode_entry(entry_id: bytes | str, fields: dict) -> dict:
    """Turn a stream entry into the event dict clients see (id first)."""
    event_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    raw = fields.get(b"data", fields.get("data"))
    return {"id": event_id, **json.loads(raw)}
