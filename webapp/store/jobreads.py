"""Reading jobs back: id checks, one atomic fetch, and the JSON shape of a job."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import str_to_date

from webapp.infra.clock import iso
from webapp.infra.errors import NotFound
from webapp.store import keys, limits, scripts

# RQ's own job ids are 32 hex characters; ids given by callers of RQ may use this wider set.
# Anything else (":" in particular, which would address other keys) never reaches Redis.
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def check_job_id(job_id: str) -> str:
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise NotFound(f"no job with id {job_id!r}: job ids are letters, digits, '-' and '_'")
    return job_id


def not_found(job_id: str) -> NotFound:
    return NotFound(f"no job with id {job_id!r}: it never existed or has expired")


def job_name(job: Job, names_by_path: Mapping[str, str]) -> str | None:
    """The job's public name: the one recorded at submission, else its function's catalog name
    (a job enqueued by plain RQ code), else the function's dotted path."""
    return job.meta.get("name") or names_by_path.get(job.func_name or "", job.func_name)


def pairs(flat: list) -> dict:
    """A flat [field, value, ...] reply as a dict."""
    items = iter(flat)
    return dict(zip(items, items, strict=True))


# The job's dates, parsed here: RQ's parser (strptime) was a tenth of a job read's CPU.
_DATE_FIELDS = (b"created_at", b"enqueued_at", b"started_at", b"ended_at", b"last_heartbeat")


def parse_date(value: bytes) -> datetime:
    """A date as RQ writes it (`2026-11-26T20:35:20.637825Z`, or without the fraction), as RQ
    reads it (aware, UTC), through `datetime.fromisoformat`; RQ's own parser for anything else."""
    try:
        parsed = datetime.fromisoformat(value.decode())
    except ValueError:
        return str_to_date(value)
    if parsed.tzinfo is None:
        return str_to_date(value)
    return parsed.astimezone(UTC)


def restore(job_id: str, raw: dict, connection: Redis) -> Job:
    """An RQ Job from its hash as read (no round trip), with the attributes RQ's `Job.restore` gives."""
    dates = {field: raw.pop(field, None) for field in _DATE_FIELDS}
    # serializer=None skips RQ's isinstance check against its Protocol (slow); the real one is set next
    job = Job(job_id, connection=connection, serializer=None)
    job.serializer = JSONSerializer
    job.restore(raw)
    for field, value in dates.items():
        if value:
            setattr(job, field.decode(), parse_date(value))
    job.waiting_for = raw.get(b"waiting_for")  # b"limit" while parked by its key's limit (store/limits.py)
    return job


def read(connection: Redis, job_id: str, results: int | None = 1) -> tuple[Job, list[Result], str | None]:
    """The job, its latest `results` results (None: all RQ keeps) and the id of its latest event.

    One script call (lua/read_job.lua: one round trip, atomic): the snapshot reflects every
    event up to the returned event id, so a client can resume the job's event stream from it
    without a gap.
    """
    check_job_id(job_id)
    reply = scripts.call(
        connection,
        scripts.script("read_job"),
        [keys.job(job_id), keys.results(job_id), keys.job_events(job_id)],
        ["" if results is None else results],
    )
    if not reply:
        raise not_found(job_id)
    raw, raw_results, events = reply
    job = restore(job_id, pairs(raw), connection)
    restored = [
        Result.restore(job_id, result_id.decode(), pairs(payload), connection, JSONSerializer)
        for result_id, payload in raw_results
    ]
    last_event_id = events[0][0].decode() if events else None
    return job, restored, last_event_id


def error_text(exc_string: str | None) -> dict | None:
    """A traceback's last line as {type, message}."""
    if not exc_string:
        return None
    last = exc_string.strip().splitlines()[-1]
    kind, _, message = last.partition(": ")
    return {"type": kind.rsplit(".", 1)[-1], "message": message or kind}


def error_of(job: Job, result: Result | None) -> dict | None:
    """The failure as {type, message}: the worker's own record first, else RQ's traceback."""
    recorded = job.meta.get("error")
    if recorded:
        return recorded
    return error_text((result.exc_string if result is not None else None) or job._exc_info)


def status_of(job: Job) -> str | None:
    """The job's status as clients see it (RQ's brief `ready_to_enqueue` is still `deferred`)."""
    status = job.get_status(refresh=False)
    status = status.value if status is not None else None
    return "deferred" if status == "ready_to_enqueue" else status


def to_dict(job: Job, result: Result | None, last_event_id: str | None, names: Mapping[str, str]) -> dict[str, Any]:
    """The public JSON view of a job (the list view; the detail view adds attempts)."""
    status = status_of(job)
    value: Any = None
    if result is not None and result.type == Result.Type.SUCCESSFUL:
        value = result.return_value
    failed = status in ("failed", "stopped") or (result is not None and result.type == Result.Type.FAILED)
    return {
        "id": job.id,
        "name": job_name(job, names),
        "queue": job.origin,
        "status": status,
        "result": value,
        "error": error_of(job, result) if failed else None,
        "progress": job.meta.get("progress"),
        "enqueued_at": iso(job.enqueued_at),
        "started_at": iso(job.started_at),
        "ended_at": iso(job.ended_at),
        "last_event_id": last_event_id,
        "description": job.description,
        "schedule": job.meta.get("schedule"),
        "waiting_for": "limit" if status == "deferred" and getattr(job, "waiting_for", None) == b"limit" else None,
        "limit": limit_view(job.meta.get("limit")),
    }


def limit_view(limit: Any) -> dict[str, Any] | None:
    """A job's limit as the API shows it: key, concurrency, rate (`5/second`)."""
    if not isinstance(limit, Mapping) or not isinstance(limit.get("key"), str):
        return None
    rate = limits.describe_rate(int(limit.get("rate") or 0), float(limit.get("per") or 0))
    return {"key": limit["key"], "concurrency": limit.get("concurrency"), "rate": rate}


def attempts_of(results: list[Result]) -> list[dict[str, Any]]:
    """Each try of a job, oldest first, from RQ's result history (RQ keeps the last 10)."""
    outcomes = {
        Result.Type.SUCCESSFUL: "finished",
        Result.Type.FAILED: "failed",
        Result.Type.STOPPED: "stopped",
        Result.Type.RETRIED: "retried",
        Result.Type.MAX_RETRIES_EXCEEDED: "failed",
    }
    return [
        {
            "outcome": outcomes.get(result.type, "failed"),
            "worker": result.worker_name or None,
            "started_at": iso(result.execution_started_at),
            "ended_at": iso(result.execution_ended_at or result.created_at),
            "error": error_text(result.exc_string),
        }
        for result in reversed(results)
    ]


def retry_plan(job: Job) -> dict[str, Any] | None:
    """The job's retries: how many are left, the planned wait before each (in order, seconds)
    and the backoff they were drawn from (null for fixed intervals); None without retries."""
    if job.retries_left is None:
        return None
    planned = job.meta.get("retry") or {}
    return {
        "left": job.retries_left,
        "planned_delays": list(job.retry_intervals or []),
        "backoff": planned.get("backoff"),
    }


def describe(connection: Redis, job_id: str, names: Mapping[str, str]) -> dict[str, Any]:
    """The detail view: the list view plus the job's attempts and retries, in one round trip."""
    job, results, last_event_id = read(connection, job_id, results=None)
    view = to_dict(job, results[0] if results else None, last_event_id, names)
    view["attempts"] = attempts_of(results)
    view["retry"] = retry_plan(job)
    return view


def owner_in(raw_meta: bytes | None) -> str | None:
    """The owner recorded in a job's raw (JSON) meta field, if any."""
    if not raw_meta:
        return None
    try:
        return json.loads(raw_meta).get("owner")
    except (ValueError, AttributeError):
        return None
