"""Job lifecycle events: one atomic write per event (lua/lib/events.lua).

An event is appended to the global stream (its entry id becomes the event id), then to the
job's own stream under the same id, and published on the events channel, all in one script,
so the web and the workers never interleave two events out of order and a subscriber never
hears of an event that is not yet in the streams. The same script keeps the metrics counters
(lua/lib/metrics.lua).

Streams: `jobsvc:events` (every job's events, trimmed to EVENTS_STREAM_MAXLEN) and
`jobsvc:job-events:<job id>` (one job's timeline, trimmed to about JOB_EVENTS_MAXLEN and
expiring with the job: a terminal event sets its TTL to the job's result/failure TTL).

An event carries `owner` (the API key name that submitted the job) when there is one, so the
event streams can show each client only its own jobs, and `schedule` when a periodic schedule
made the job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq.job import Job

from webapp.infra.clock import now_iso
from webapp.store import keys, scripts, states, webhooks

# Every event name, in lifecycle order. Who writes which:
# - the web: queued, scheduled (enqueue_at/enqueue_in), deferred (depends_on), canceled,
#   deleted (the job and its timeline are gone; published on the global stream only);
# - the workers: started, progress, retrying, finished, failed, stopped, abandoned (a job
#   whose worker died: status failed, or queued/scheduled when a retry is left).
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
    "deleted",
)


class EventLog:
    """Writes job events for one process (web or worker) with that app's settings."""

    def __init__(self, connection: Redis, channel: str, maxlen: int, default_ttl: int, job_maxlen: int = 1000):
        self.connection = connection
        self.channel = channel
        self.maxlen = maxlen
        self.default_ttl = default_ttl
        self.job_maxlen = job_maxlen
        self.script = scripts.script("event")
        self.progress_script = scripts.script("progress")

    @classmethod
    def from_config(cls, connection: Redis, config: Mapping[str, Any]) -> EventLog:
        ttl = max(config["RESULT_TTL"], config["FAILURE_TTL"], config["JOB_TIMEOUT"]) + 3600
        return cls(
            connection,
            keys.events_channel(config),
            config["EVENTS_STREAM_MAXLEN"],
            ttl,
            config.get("JOB_EVENTS_MAXLEN", 1000),
        )

    def payload(self, event: str, *, job_id: str, name: str | None, queue: str | None, status: str,
                owner: str | None = None, schedule: str | None = None, **extra: Any) -> str:  # fmt: skip
        """The event as published, without its id (the stream gives it)."""
        body = {"event": event, "job_id": job_id, "name": name, "queue": queue, "status": status, "at": now_iso()}
        if owner is not None:
            body["owner"] = owner
        if schedule is not None:  # the job was made by a periodic schedule
            body["schedule"] = schedule
        body.update(extra)
        return json.dumps(body, separators=(",", ":"), default=str)

    def command(self, event: str, *, job_id: str, ttl: int | None = None, webhook: Mapping | None = None,
                **fields: Any) -> tuple:  # fmt: skip
        """The event write as one `EVENT` command of the submit script (lua/submit.lua).

        `fields` are `payload`'s: name, queue, status, owner and any extra ones. `webhook` is the
        job's (its meta's): when it subscribes to `event`, the same write records a delivery.
        """
        keep = ttl if ttl is not None and ttl > 0 else self.default_ttl
        data = self.payload(event, job_id=job_id, **fields)
        return ("EVENT", keys.EVENTS_STREAM, self.channel, self.maxlen, self.job_maxlen, keep, job_id, data, event,
                f"{time.time():.6f}", webhooks.target_for(webhook, event))  # fmt: skip

    def append(self, event: str, *, pipeline: Pipeline | None = None, began: float | None = None, **fields: Any):
        """Record one event; returns its id, or queues the write on `pipeline` if given.

        `began`: for an event that ends a run (finished, failed, stopped, retrying), when the run
        began (Unix seconds): the run's duration goes to the histogram. Without it, it is not timed.
        """
        _, stream, *args = self.command(event, **fields)
        args.append("" if began is None else repr(began))
        return self.script(keys=[stream], args=args, client=pipeline if pipeline is not None else self.connection)

    def progress(self, job_key: str, meta: bytes | str, *, pipeline: Pipeline | None = None, **fields: Any):
        """Save a running job's meta and record its `progress` event, only while the job's hash
        exists (lua/progress.lua); returns the event id, or None when the job is gone."""
        _, stream, *args = self.command("progress", **fields)
        args.append("")
        client = pipeline if pipeline is not None else self.connection
        return self.progress_script(keys=[stream, job_key], args=[meta, *args], client=client)

    def for_job(self, event: str, job: Job, *, status: str | None = None, name: str | None = None,
                ttl: int | None = None, pipeline: Pipeline | None = None, **extra: Any):  # fmt: skip
        """Record `event` for an RQ job, taking its name, queue, owner and status from the job.

        `status` defaults to the job's cached status; a terminal status keeps the job's
        timeline as long as the job itself (its result or failure TTL) unless `ttl` says otherwise.
        """
        if status is None:
            current = job.get_status(refresh=False)
            status = current.value if current is not None else "queued"
        if ttl is None:
            ttl = terminal_ttl(job, status)
        return self.append(event, job_id=job.id, name=name or job.meta.get("name") or job.func_name, queue=job.origin,
                           status=status, owner=job.meta.get("owner"), schedule=job.meta.get("schedule"), ttl=ttl,
                           pipeline=pipeline, webhook=job.meta.get("webhook"), **extra)  # fmt: skip


def terminal_ttl(job: Job, status: str) -> int | None:
    """How long a job in `status` is kept by RQ (None: not terminal, or kept by default)."""
    if status == "finished":
        return job.result_ttl
    if status in ("failed", "stopped"):
        return job.failure_ttl
    return None


def is_terminal(event: dict) -> bool:
    """True for the event that ends a job's timeline (the job will not run again by itself)."""
    return event.get("event") != "progress" and event.get("status") in states.TERMINAL


def parse_event_id(text: str) -> tuple[int, int]:
    """`"1795482400620-3"` → `(1795482400620, 3)`; ValueError for anything else."""
    ms, sep, seq = text.partition("-")
    # up to 19 digits each: every such id fits Redis's 64-bit halves, and the API documents that form
    if not sep or not (0 < len(ms) <= 19 and 0 < len(seq) <= 19) or not (ms + seq).isascii():
        raise ValueError(f"not an event id: {text!r}")
    if not (ms.isdigit() and seq.isdigit()):
        raise ValueError(f"not an event id: {text!r}")
    return int(ms), int(seq)


def format_event_id(pair: tuple[int, int]) -> str:
    return f"{pair[0]}-{pair[1]}"


def decode_entry(entry_id: bytes | str, fields: dict) -> dict:
    """Turn a stream entry into the event dict clients see (id first)."""
    event_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    raw = fields.get(b"data", fields.get("data"))
    return {"id": event_id, **json.loads(raw)}


EventId = tuple[int, int]
BATCH = 200  # entries per stream read; a reader far behind catches up in several reads


def xrange_after(after: EventId | None) -> str:
    """XRANGE's start for "after this id" (the stream's start when None)."""
    return "-" if after is None else "(" + format_event_id(after)


def decode_entries(raw: list) -> list[tuple[EventId, dict]]:
    """XRANGE's reply as (id, event) pairs."""
    pairs = []
    for entry_id, fields in raw:
        event = decode_entry(entry_id, fields)
        pairs.append((parse_event_id(event["id"]), event))
    return pairs


def read_events(reader: Redis, key: str, after: EventId | None, count: int = BATCH) -> list[tuple[EventId, dict]]:
    """Up to `count` events of stream `key` after `after` (from its start when None)."""
    return decode_entries(reader.xrange(key, min=xrange_after(after), max="+", count=count))
