"""Reading jobs back: id checks, one atomic fetch, and the JSON shape of a job."""

from __future__ import annotations

import json
import re
import zlib
from base64 import b64decode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.defaults import UNSERIALIZABLE_RETURN_VALUE_PAYLOAD
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


def job_name(job: Job | Snapshot, names_by_path: Mapping[str, str]) -> str | None:
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
    """An RQ Job from its hash as read (no round trip), with the attributes RQ's `Job.restore`
    gives: for the paths that change a job through RQ's API (cancel, delete, retry, bulk)."""
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


def _text(value: bytes | None) -> str | None:
    return value.decode() if value else None


def _date(value: bytes | None) -> datetime | None:
    return parse_date(value) if value else None


def _unzipped(value: bytes) -> bytes:
    """A field RQ stores zlib-compressed, or as is when it is not (its own fallback)."""
    try:
        return zlib.decompress(value)
    except zlib.error:
        return value


@dataclass(slots=True)
class Snapshot:
    """A job as the read routes show it, decoded straight from its hash: only the fields the
    views use, each decoded as RQ's `Job.restore` decodes it (tests/test_jobrecord_compat.py
    compares them with `Job.fetch`). Building RQ's Job instead decodes every field and checks
    the serializer against a Protocol: half of a job read's own CPU."""

    id: str
    status: str | None  # as RQ stores it
    origin: str
    description: str | None
    meta: dict
    enqueued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    exc_info: str | None
    retries_left: int | None
    retry_intervals: list | None
    waiting_for: bytes | None  # b"limit" while parked by its key's limit (store/limits.py)
    data: bytes | None

    @property
    def func_name(self) -> str | None:
        """The function's dotted path, from RQ's payload (only jobs enqueued without a name need it)."""
        if not self.data:
            return None
        try:
            return json.loads(_unzipped(self.data))[0]
        except (ValueError, TypeError, IndexError, UnicodeDecodeError):
            return None


def snapshot(job_id: str, raw: Mapping[bytes, bytes]) -> Snapshot:
    """The Snapshot of a job hash as read (HGETALL)."""
    get = raw.get
    try:
        meta = json.loads(get(b"meta") or b"{}")
    except ValueError:
        meta = {}
    retries_left = get(b"retries_left")
    intervals = get(b"retry_intervals")
    exc_info = get(b"exc_info")
    return Snapshot(
        id=job_id,
        status=_text(get(b"status")),
        origin=_text(get(b"origin")) or "",
        description=_text(get(b"description")),
        meta=meta if isinstance(meta, dict) else {},
        enqueued_at=_date(get(b"enqueued_at")),
        started_at=_date(get(b"started_at")),
        ended_at=_date(get(b"ended_at")),
        exc_info=_unzipped(exc_info).decode(errors="replace") if exc_info else None,
        retries_left=int(retries_left) if retries_left else None,
        retry_intervals=json.loads(intervals) if intervals else None,
        waiting_for=get(b"waiting_for"),
        data=get(b"data"),
    )


@dataclass(slots=True)
class ResultEntry:
    """One entry of a job's result stream, decoded as RQ's `Result.restore` decodes it (without
    its serializer check, a sixth of a job read's own CPU)."""

    type: Result.Type
    return_value: Any
    exc_string: str | None
    worker_name: str
    created_at: datetime
    execution_started_at: datetime | None
    execution_ended_at: datetime | None


def _moment(value: bytes | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), tz=UTC) if value else None


def _return_value(value: bytes | None) -> Any:
    """A result's value as RQ's JSON serializer stored it; one written by another serializer
    (plain RQ code with pickle) reads as RQ's own placeholder, never as an error."""
    if value is None:
        return None
    try:
        return json.loads(b64decode(value))
    except (ValueError, TypeError):
        return UNSERIALIZABLE_RETURN_VALUE_PAYLOAD


def _exc_string(value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        return zlib.decompress(b64decode(value)).decode(errors="replace")
    except (ValueError, zlib.error):
        return value.decode(errors="replace")


def result_entry(result_id: bytes, payload: Mapping[bytes, bytes]) -> ResultEntry:
    """A result stream entry (its id and its fields) as a ResultEntry."""
    get = payload.get
    return ResultEntry(
        type=Result.Type(int(payload[b"type"])),
        return_value=_return_value(get(b"return_value")),
        exc_string=_exc_string(get(b"exc_string")),
        worker_name=_text(get(b"worker_name")) or "",
        created_at=datetime.fromtimestamp(int(result_id.split(b"-")[0]) / 1000, tz=UTC),
        execution_started_at=_moment(get(b"execution_started_at")),
        execution_ended_at=_moment(get(b"execution_ended_at")),
    )


def _read_raw(connection: Redis, job_id: str, results: int | None) -> tuple[dict, list, str | None]:
    """One script call (lua/read_job.lua: one round trip, atomic): the job's hash, its latest
    `results` results (None: all RQ keeps) and the id of its latest event. The snapshot reflects
    every event up to that id, so a client can resume the job's event stream from it without a gap."""
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
    fields = pairs(raw)
    if b"data" not in fields:  # a stray write after Redis lost the job (RQ's own paths can make one)
        raise not_found(job_id)
    return fields, raw_results, (events[0][0].decode() if events else None)


def read(connection: Redis, job_id: str, results: int | None = 1) -> tuple[Snapshot, list[ResultEntry], str | None]:
    """The job as the views show it, its latest `results` results (None: all RQ keeps), newest
    first, and the id of its latest event, in one atomic round trip."""
    raw, raw_results, last_event_id = _read_raw(connection, job_id, results)
    return (
        snapshot(job_id, raw),
        [result_entry(result_id, pairs(flat)) for result_id, flat in raw_results],
        last_event_id,
    )


def load(connection: Redis, job_id: str) -> Job:
    """The job as RQ's Job, for the paths that change it through RQ (cancel, delete, retry)."""
    raw, _, _ = _read_raw(connection, job_id, 1)
    return restore(job_id, raw, connection)


def error_text(exc_string: str | None) -> dict | None:
    """A traceback's last line as {type, message}."""
    if not exc_string:
        return None
    last = exc_string.strip().splitlines()[-1]
    kind, _, message = last.partition(": ")
    return {"type": kind.rsplit(".", 1)[-1], "message": message or kind}


def error_of(job: Snapshot, result: ResultEntry | None) -> dict | None:
    """The failure as {type, message}: the worker's own record first, else RQ's traceback."""
    recorded = job.meta.get("error")
    if recorded:
        return recorded
    return error_text((result.exc_string if result is not None else None) or job.exc_info)


def client_status(status: str | None) -> str | None:
    """A status as clients see it (RQ's brief `ready_to_enqueue` is still `deferred`)."""
    return "deferred" if status == "ready_to_enqueue" else status


def status_of(job: Job) -> str | None:
    """An RQ Job's status as clients see it."""
    status = job.get_status(refresh=False)
    return client_status(status.value if status is not None else None)


def to_dict(
    job: Snapshot, result: ResultEntry | None, last_event_id: str | None, names: Mapping[str, str]
) -> dict[str, Any]:
    """The public JSON view of a job (the list view; the detail view adds attempts)."""
    status = client_status(job.status or "created")  # RQ reads a hash without status as created
    value: Any = None
    if result is not None and result.type == Result.Type.SUCCESSFUL:
        value = result.return_value
    failed = status in ("failed", "stopped") or (result is not None and result.type == Result.Type.FAILED)
    meta = job.meta
    return {
        "id": job.id,
        "name": job_name(job, names),
        "queue": job.origin,
        "status": status,
        "result": value,
        "error": error_of(job, result) if failed else None,
        "progress": meta.get("progress"),
        "enqueued_at": iso(job.enqueued_at),
        "started_at": iso(job.started_at),
        "ended_at": iso(job.ended_at),
        "last_event_id": last_event_id,
        "description": job.description,
        "schedule": meta.get("schedule"),
        "waiting_for": "limit" if status == "deferred" and job.waiting_for == b"limit" else None,
        "limit": limit_view(meta.get("limit")),
    }


def limit_view(limit: Any) -> dict[str, Any] | None:
    """A job's limit as the API shows it: key, concurrency, rate (`5/second`)."""
    if not isinstance(limit, Mapping) or not isinstance(limit.get("key"), str):
        return None
    rate = limits.describe_rate(int(limit.get("rate") or 0), float(limit.get("per") or 0))
    return {"key": limit["key"], "concurrency": limit.get("concurrency"), "rate": rate}


def attempts_of(results: list[ResultEntry]) -> list[dict[str, Any]]:
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


def retry_plan(job: Snapshot) -> dict[str, Any] | None:
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
