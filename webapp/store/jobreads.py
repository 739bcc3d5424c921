"""Reading jobs back: id checks, one atomic fetch, and the JSON shape of a job."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from redis import Redis
from redis.commands.core import Script
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from webapp.errors import NotFound
from webapp.events import job_stream_key

# RQ's own job ids are 32 hex characters; ids given by callers of RQ may use this wider set.
# Anything else (":" in particular, which would address other keys) never reaches Redis.
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

STATUSES = ("queued", "started", "deferred", "scheduled", "finished", "failed", "stopped", "canceled")


def check_job_id(job_id: str) -> str:
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise NotFound(f"no job with id {job_id!r}: job ids are letters, digits, '-' and '_'")
    return job_id


def isoformat(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# KEYS: the job hash, its results stream, its events stream. ARGV[1]: results to read ('' = all).
# One script, so no event can land between reading the job and reading its last event id:
# the snapshot reflects every event up to that id (as MULTI/EXEC would, in one command).
_READ_JOB = """
local job = redis.call('HGETALL', KEYS[1])
if #job == 0 then return {} end
local results
if ARGV[1] == '' then
  results = redis.call('XREVRANGE', KEYS[2], '+', '-')
else
  results = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[1])
end
return {job, results, redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)}
"""
_read_job = Script(None, _READ_JOB.encode())


def _pairs(flat: list) -> dict:
    items = iter(flat)
    return dict(zip(items, items, strict=True))


def read(connection: Redis, job_id: str, results: int | None = 1) -> tuple[Job, list[Result], str | None]:
    """The job, its latest `results` results (None: all RQ keeps) and the id of its latest event.

    One script call (one round trip, atomic): the snapshot reflects every event up to the
    returned event id, so a client can resume the job's event stream from it without a gap.
    """
    check_job_id(job_id)
    keys = [Job.key_for(job_id), Result.get_key(job_id), job_stream_key(job_id)]
    reply = _read_job(keys=keys, args=["" if results is None else results], client=connection)
    if not reply:
        raise NotFound(f"no job with id {job_id!r}: it never existed or has expired")
    raw, raw_results, events = reply
    job = Job(job_id, connection=connection, serializer=JSONSerializer)
    job.restore(_pairs(raw))
    restored = [
        Result.restore(job_id, result_id.decode(), _pairs(payload), connection, JSONSerializer)
        for result_id, payload in raw_results
    ]
    last_event_id = events[0][0].decode() if events else None
    return job, restored, last_event_id


def fetch(connection: Redis, job_id: str) -> tuple[Job, Result | None, str | None]:
    """The job, its latest result and the id of its latest event, in one round trip."""
    job, results, last_event_id = read(connection, job_id, results=1)
    return job, (results[0] if results else None), last_event_id


def error_of(job: Job, result: Result | None) -> dict | None:
    """The failure as {type, message}: the worker's own record first, else RQ's traceback."""
    recorded = job.meta.get("error")
    if recorded:
        return recorded
    exc_string = (result.exc_string if result is not None else None) or job._exc_info
    if not exc_string:
        return None
    last = exc_string.strip().splitlines()[-1]
    kind, _, message = last.partition(": ")
    return {"type": kind.rsplit(".", 1)[-1], "message": message or kind}


def to_dict(job: Job, result: Result | None, last_event_id: str | None, names: dict[str, str]) -> dict[str, Any]:
    """The public JSON view of a job."""
    status = job.get_status(refresh=False)
    status = status.value if status is not None else None
    if status == "ready_to_enqueue":
        # RQ's brief step between a met dependency and the queue: still waiting, to a client.
        status = "deferred"
    value: Any = None
    if result is not None and result.type == Result.Type.SUCCESSFUL:
        value = result.return_value
    failed = status in ("failed", "stopped") or (result is not None and result.type == Result.Type.FAILED)
    return {
        "id": job.id,
        "name": job.meta.get("name") or names.get(job.func_name or "", job.func_name),
        "queue": job.origin,
        "status": status,
        "result": value,
        "error": error_of(job, result) if failed else None,
        "progress": job.meta.get("progress"),
        "enqueued_at": isoformat(job.enqueued_at),
        "started_at": isoformat(job.started_at),
        "ended_at": isoformat(job.ended_at),
        "last_event_id": last_event_id,
    }
