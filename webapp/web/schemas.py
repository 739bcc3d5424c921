"""The API's response shapes and query parameters, as pydantic models.

These models are the contract: they describe what the API returns (every JSON answer is
serialized through its model, `webapp.web.openapi.respond`), and the OpenAPI document is
generated from them and from the submission models of `webapp.service.submission`. A field
added to the API is added here first.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from webapp.service.schedule_models import NAME_PATTERN
from webapp.service.submission import JobId, JobStatus
from webapp.store.listing import CURSOR_PATTERN


class Submitted(BaseModel):
    id: JobId
    status: JobStatus
    name: str
    queue: str
    url: str


class BatchSubmitted(BaseModel):
    jobs: list[Submitted]


class ErrorDetail(BaseModel):
    argument: str | None = None
    message: str
    type: str | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorBody(BaseModel):
    error: ErrorInfo


class Progress(BaseModel):
    percent: float
    message: str | None = None
    at: str


class JobError(BaseModel):
    type: str
    message: str


class Attempt(BaseModel):
    """One try of a job, from RQ's result history."""

    outcome: Literal["finished", "failed", "stopped", "retried", "abandoned"]
    worker: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    error: JobError | None = None


class Backoff(BaseModel):
    base: float
    factor: float
    max_delay: float
    jitter: Literal["full", "equal", "none"]


class RetryPlan(BaseModel):
    """A job's retries: `planned_delays[i]` is the wait before retry i + 1 (seconds)."""

    left: int = Field(description="Retries left.")
    planned_delays: list[float] = Field(description="The wait before each retry, in order (seconds).")
    backoff: Backoff | None = Field(None, description="What the delays were drawn from; null for fixed intervals.")


class JobLimit(BaseModel):
    """A job's concurrency and rate limit (README, "Limits per key")."""

    key: str = Field(description="The limit key; one given with an API key is `<key name>/<key>`.")
    concurrency: int | None = None
    rate: str | None = Field(None, description="`<n>/<second|minute|hour>`.")


class LimitKey(BaseModel):
    """One active limit key: jobs running and parked, and its latest limit."""

    key: str
    running: int = Field(description="Jobs of the key running now.")
    waiting: int = Field(description="Jobs parked until the key admits them (status deferred).")
    concurrency: int | None = Field(None, description="The latest concurrency limit seen for the key.")
    rate: str | None = Field(None, description="The latest rate limit seen for the key, `<n>/<unit>`.")
    next_start_at: str | None = Field(None, description="When the rate window next admits a parked job.")


class LimitsView(BaseModel):
    """`GET /api/limits`: every key with jobs running or parked."""

    limits: list[LimitKey]


class JobView(BaseModel):
    """`GET /api/jobs/<id>`; the list view leaves out `attempts` and `retry`."""

    id: JobId
    name: str | None
    queue: str | None
    status: JobStatus | None
    result: Any = None
    error: JobError | None = None
    progress: Progress | None = None
    enqueued_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    last_event_id: str | None = Field(None, description="Stream from here with Last-Event-ID for no gap.")
    description: str | None = None
    schedule: str | None = Field(None, description="The periodic schedule that made this job, if any.")
    waiting_for: Literal["limit"] | None = Field(
        None, description="`limit` while the job is parked (status deferred) until its limit key admits it."
    )
    limit: JobLimit | None = Field(None, description="The job's limit per key, if any.")
    attempts: list[Attempt] | None = None
    retry: RetryPlan | None = Field(None, description="Detail view only: retries left and their planned delays.")


class JobListQuery(BaseModel):
    """`GET /api/jobs` query parameters (strings from the URL, so numbers are parsed)."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = Field(None, description="Only jobs in this state.")
    queue: str | None = Field(None, max_length=100, description="Only jobs of this queue.")
    name: str | None = Field(None, max_length=100, description="Only jobs of this type.")
    schedule: str | None = Field(None, pattern=NAME_PATTERN, description="Only jobs made by this periodic schedule.")
    limit: int = Field(20, ge=1, le=100, description="Page size (1-100).")
    cursor: str | None = Field(
        None, pattern=CURSOR_PATTERN.pattern, description="`next_cursor` of the previous page (`<score>:<job id>`)."
    )


class JobPage(BaseModel):
    """`GET /api/jobs`: newest first; pass `next_cursor` as `cursor` for the next page."""

    jobs: list[JobView]
    next_cursor: str | None


# -- bulk actions (POST /api/jobs/bulk, webapp/service/bulk.py) -------------------------------


class BulkFilterBody(BaseModel):
    """The jobs a bulk action is about: GET /api/jobs's filters, every one given must match."""

    model_config = ConfigDict(extra="forbid", strict=True)

    status: JobStatus | None = Field(None, description="Only jobs in this state.")
    queue: str | None = Field(None, max_length=100, description="Only jobs of this queue.")
    name: str | None = Field(None, max_length=100, description="Only jobs of this type.")
    schedule: str | None = Field(None, pattern=NAME_PATTERN, description="Only jobs made by this periodic schedule.")


class BulkRequest(BaseModel):
    """`POST /api/jobs/bulk`: act on every job matching `filter` (an owner key: its own jobs only)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    action: Literal["retry", "cancel", "delete"] = Field(
        description="retry failed, stopped or canceled jobs; cancel queued, scheduled or deferred ones; "
        "delete any that is not running."
    )
    filter: BulkFilterBody = Field(description="Which jobs; {} is every job the caller may see.")
    dry_run: bool = Field(False, description="Count only: change nothing.")
    cursor: str | None = Field(
        None,
        pattern=CURSOR_PATTERN.pattern,
        description="`next_cursor` of the previous call with the same action and filter: go on from there.",
    )


class BulkSkipped(BaseModel):
    reason: Literal["status", "changed"] = Field(
        description="`status`: its status does not allow the action; `changed`: it changed while being acted on."
    )
    status: JobStatus | None = Field(description="The job's status, for reason `status`.")
    count: int


class BulkResult(BaseModel):
    """What this call did; counts are this call's only (add them up when following `next_cursor`)."""

    action: Literal["retry", "cancel", "delete"]
    dry_run: bool
    matched: int = Field(description="Jobs that matched the filter.")
    eligible: int = Field(description="Matched jobs whose status allows the action (a dry run's count).")
    done: int = Field(description="Jobs acted on (0 in a dry run).")
    skipped: list[BulkSkipped]
    next_cursor: str | None = Field(
        description="Set when the call ran out of its time budget: send it back as `cursor` to go on; null: done."
    )


class QueueView(BaseModel):
    name: str
    counts: dict[str, int] = Field(description="Jobs per state: queued, started, deferred, scheduled, ...")
    depth: int = Field(description="Jobs waiting in the queue (`counts.queued`).")
    oldest_age: float | None = Field(
        description="Seconds the job at the head of the queue (the next to run) has waited: the wait a new job "
        "faces at least. 0 when the queue is empty; null when the head job's record is gone."
    )
    paused: bool = Field(description="True while the queue is paused: its jobs stay queued, workers take none.")
    paused_at: str | None = Field(description="When it was paused (ISO 8601 UTC); null when not paused.")
    paused_by: str | None = Field(
        description="Who paused it: the API key name, or null (open API, or the command line's operator)."
    )


class QueueList(BaseModel):
    queues: list[QueueView]


class WorkerView(BaseModel):
    name: str
    state: str
    queues: list[str]
    current_job: JobId | None = Field(
        description="The job it runs; null when idle, or for an owner key when the job is another owner's."
    )
    successful_jobs: int
    failed_jobs: int
    last_heartbeat: str | None
    pid: int | None = None
    hostname: str | None = None


class WorkerList(BaseModel):
    workers: list[WorkerView]


class FunctionView(BaseModel):
    name: str
    summary: str
    parameters: dict[str, Any] = Field(description="JSON Schema of the job's arguments.")
    options: dict[str, Any] = Field(default_factory=dict, description="Default options for this job type.")


class FunctionList(BaseModel):
    functions: list[FunctionView]


class Event(BaseModel):
    """One job event, as published on pub/sub and sent as an SSE `data:` line."""

    id: str
    event: str
    job_id: JobId
    name: str | None
    queue: str | None
    status: str
    at: str
    owner: str | None = Field(None, description="The API key name that submitted the job, when keys are in use.")
    progress: Progress | None = None
    error: JobError | None = None
    worker: str | None = None
    schedule: str | None = None


class Gap(BaseModel):
    """`event: gap`: events after `requested` are no longer kept; the stream goes on from `oldest`."""

    requested: str | None
    oldest: str | None


class DemoMessage(BaseModel):
    """One message of the /pubsub demo channel, as `GET /api/demo/events` sends it."""

    channel: str
    data: str
    at: str


LAST_EVENT_ID = Field(
    None,
    pattern=r"^(?:[0-9]{1,19}-[0-9]{1,19})?$",
    description="Resume after this event id (the `Last-Event-ID` header takes precedence); empty: start afresh.",
)


class JobEventsQuery(BaseModel):
    """`GET /api/jobs/<id>/events` query parameters."""

    model_config = ConfigDict(extra="forbid")

    last_event_id: str | None = LAST_EVENT_ID


class EventsQuery(BaseModel):
    """`GET /api/events` query parameters: comma-separated filters (each value from its list)."""

    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(None, description="Only these queues.", json_schema_extra={"x-comma-list": "queue"})
    name: str | None = Field(None, description="Only these job types.", json_schema_extra={"x-comma-list": "name"})
    event: str | None = Field(None, description="Only these events.", json_schema_extra={"x-comma-list": "event"})
    last_event_id: str | None = LAST_EVENT_ID


# -- periodic schedules (webapp/service/schedules.py) ---------------------------------------


class ScheduleRun(BaseModel):
    """One of a schedule's latest runs (or skips), newest first."""

    job_id: JobId | None = Field(description="The run's job; null for a skipped tick.")
    due_at: str | None = Field(description="The tick this run is for (a manual run: when it was asked for).")
    enqueued_at: str | None
    status: str = Field(description="The job's status now, `expired` once it is gone, or `skipped`.")
    kind: Literal["tick", "catch_up", "manual", "skip"]
    reason: Literal["overlap", "misfire", "queue_full", "invalid_job"] | None = None
    missed: int | None = Field(None, description="Missed ticks this catch-up run or skip stands for.")


class ScheduleView(BaseModel):
    """A periodic schedule: its definition, state, next run and latest runs."""

    name: str
    owner: str | None = Field(description="The API key name its runs belong to (null: the open API or code).")
    source: Literal["api", "code"] = Field(description="`code`: declared in jobs.SCHEDULES (edit it there).")
    job: dict[str, Any] = Field(description="The submission each run makes (as POST /api/jobs takes it).")
    cron: str | None
    interval: int | None
    timezone: str
    no_overlap: bool
    misfire: Literal["run_once", "skip"]
    jitter: int
    paused: bool
    next_run_at: str | None = Field(description="When the next run is due (null while paused).")
    created_at: str
    updated_at: str
    runs: list[ScheduleRun]


class ScheduleList(BaseModel):
    schedules: list[ScheduleView]


class ScheduleEvent(BaseModel):
    """One schedule event (`schedule.created`, `schedule.run`, `schedule.skipped`, ...), as
    `GET /api/schedule-events` sends it; `run` and `skipped` events carry the run's fields."""

    model_config = ConfigDict(extra="allow")

    id: str
    event: str
    schedule: str
    at: str
    owner: str | None = None


SCHEDULE_LIST_PATTERN = (
    r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(?:,[A-Za-z0-9][A-Za-z0-9_.-]{0,99})*)?$"  # names, as schedule_models allows
)


class ScheduleEventsQuery(BaseModel):
    """`GET /api/schedule-events` query parameters."""

    model_config = ConfigDict(extra="forbid")

    schedule: str | None = Field(
        None, pattern=SCHEDULE_LIST_PATTERN, description="Only these schedules (names, separated by commas)."
    )
    last_event_id: str | None = LAST_EVENT_ID


class OperatorEvent(BaseModel):
    """One operator event, as `GET /api/operator-events` sends it: `queue.paused` and
    `queue.resumed` (queue, by), or a bulk call's `bulk.started` (filter, cursor),
    `bulk.progress` (page, matched, eligible, done, cursor) and `bulk.finished` (the totals,
    skipped, pages, next_cursor), each with bulk_id, action, dry_run, by and owner."""

    model_config = ConfigDict(extra="allow")

    id: str
    event: str
    at: str
    by: str | None = None


class OperatorEventsQuery(BaseModel):
    """`GET /api/operator-events` query parameters."""

    model_config = ConfigDict(extra="forbid")

    last_event_id: str | None = LAST_EVENT_ID


class ScheduleRunStarted(Submitted):
    """`POST /api/schedules/<name>/run`: the job of the run, and its schedule."""

    schedule: str


# -- the audit log and the overview charts (GET /api/audit, GET /api/stats) --------------------


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$", re.ASCII)


def _rfc3339(value: Any) -> Any:
    """A query's date-time as the document says it (`format: date-time`, RFC 3339, with its
    offset): pydantic would also read `0.5` as a Unix time, or a bare date."""
    if isinstance(value, str) and not RFC3339.match(value):
        raise ValueError("should be an RFC 3339 date-time, e.g. 2026-11-26T16:00:00Z")
    return value


DateTimeText = Annotated[datetime, BeforeValidator(_rfc3339)]


class AuditQuery(BaseModel):
    """`GET /api/audit` query parameters; every filter given must match."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=200, description="Page size (1-200).")
    cursor: str | None = Field(
        None, pattern=r"^[0-9]{1,19}-[0-9]{1,19}$", description="`next_cursor` of the previous page (an entry's id)."
    )
    # At most 100 characters each: any schema-valid query fits gunicorn's request line (8190 bytes).
    actor: str | None = Field(None, max_length=100, description="Only actions of this key name (or user).")
    action: str | None = Field(None, max_length=100, description="Only this action, e.g. `cancelJob`.")
    target: str | None = Field(None, max_length=100, description="Only actions whose target or details contain this.")
    since: DateTimeText | None = Field(None, description="Only actions at or after this time (RFC 3339).")
    until: DateTimeText | None = Field(None, description="Only actions at or before this time (RFC 3339).")


class AuditEntry(BaseModel):
    id: str = Field(description="Stream id; also the cursor that pages past this entry.")
    at: str
    actor: str | None = Field(description="API key name, dashboard user or operator login; null on the open API.")
    role: str | None
    via: str | None = Field(description="bearer, session, basic (dashboard), cli or open.")
    action: str = Field(description="The operation: its OpenAPI operationId, or e.g. dashboard.requeue_job, signIn.")
    method: str | None
    path: str | None
    target: dict[str, str] = Field(description="What it acted on, from the URL (job_id, queue_name, name...).")
    details: dict[str, Any] = Field(description="What the body said it acts on (name, action, filter, paused...).")
    status: int = Field(description="HTTP status of the answer, or a command's exit status.")
    ok: bool
    client: str | None = Field(description="Client address (behind TRUSTED_PROXIES: the proxy's X-Forwarded-For).")
    note: str | None = Field(
        None,
        description="On the refusal that reached its caller's AUDIT_REFUSALS_PER_MINUTE: that minute's later ones "
        "are not recorded.",
    )


class AuditPage(BaseModel):
    """`GET /api/audit`: newest first; pass `next_cursor` as `cursor` for older entries."""

    entries: list[AuditEntry]
    next_cursor: str | None


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: Literal["1h", "1d"] = Field("1h", description="The last hour by minute, or the last day by 10 minutes.")


class QueueGauges(BaseModel):
    depth: int | None = Field(description="Jobs waiting in the queue (null: no sample in this step).")
    oldest_age: float | None = Field(description="Seconds the job at the head of the queue has waited.")


class StatsPoint(BaseModel):
    at: str = Field(description="Start of the step.")
    finished: int
    failed: int
    workers: int | None
    queues: dict[str, QueueGauges]


class StatsNow(BaseModel):
    workers: int
    queues: dict[str, QueueGauges]


class StatsView(BaseModel):
    """`GET /api/stats`: the charts' data; gauges in coarse steps are the step's highest sample."""

    window: Literal["1h", "1d"]
    step: int = Field(description="Seconds per point.")
    sample_interval: float = Field(description="Seconds between two samples of the gauges.")
    queues: list[str]
    points: list[StatsPoint]
    now: StatsNow


class DeliveryAttempt(BaseModel):
    """One attempt of a webhook delivery."""

    at: str
    attempt: int | None = Field(
        None,
        description="Its number in its series, as sent in Jobsvc-Attempt: 1, 2, … from the event, and from 1 "
        "again after a redeliver (the log keeps the earlier series).",
    )
    status: int | None = Field(None, description="The endpoint's HTTP status; null when it gave none.")
    error: str | None = Field(None, description="Why the attempt failed (a status, a timeout, a refused redirect).")
    duration_ms: int


class Delivery(BaseModel):
    """A webhook delivery of one job event (README, "Webhooks")."""

    id: str = Field(description="The event's id; sent as Jobsvc-Delivery: receivers deduplicate on it.")
    job_id: JobId
    event: str
    url: str
    state: Literal["pending", "delivering", "retrying", "delivered", "failed"]
    created_at: str | None = None
    next_attempt_at: str | None = None
    ended_at: str | None = None
    attempts: list[DeliveryAttempt]


class DeliveryList(BaseModel):
    deliveries: list[Delivery]
