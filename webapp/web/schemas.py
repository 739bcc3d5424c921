"""The API's response shapes and query parameters, as pydantic models.

These models are the contract: they describe what the API returns (every JSON answer is
serialized through its model, `webapp.web.openapi.respond`), and the OpenAPI document is
generated from them and from the submission models of `webapp.service.submission`. A field
added to the API is added here first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from webapp.service.submission import JobId, JobStatus


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


class JobView(BaseModel):
    """`GET /api/jobs/<id>`; the list view leaves out `attempts`."""

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
    attempts: list[Attempt] | None = None


class JobListQuery(BaseModel):
    """`GET /api/jobs` query parameters (strings from the URL, so numbers are parsed)."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = Field(None, description="Only jobs in this state.")
    queue: str | None = Field(None, max_length=100, description="Only jobs of this queue.")
    name: str | None = Field(None, max_length=100, description="Only jobs of this type.")
    limit: int = Field(20, ge=1, le=100, description="Page size (1-100).")
    cursor: str | None = Field(None, max_length=300, description="`next_cursor` of the previous page.")


class JobPage(BaseModel):
    """`GET /api/jobs`: newest first; pass `next_cursor` as `cursor` for the next page."""

    jobs: list[JobView]
    next_cursor: str | None


class QueueView(BaseModel):
    name: str
    counts: dict[str, int] = Field(description="Jobs per state: queued, started, deferred, scheduled, ...")


class QueueList(BaseModel):
    queues: list[QueueView]


class WorkerView(BaseModel):
    name: str
    state: str
    queues: list[str]
    current_job: JobId | None
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
    progress: Progress | None = None
    error: JobError | None = None
    worker: str | None = None


# -- the audit log and the overview charts (GET /api/audit, GET /api/stats) --------------------


class AuditQuery(BaseModel):
    """`GET /api/audit` query parameters; every filter given must match."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=200, description="Page size (1-200).")
    cursor: str | None = Field(None, max_length=41, description="`next_cursor` of the previous page.")
    actor: str | None = Field(None, max_length=200, description="Only actions of this key name (or user).")
    action: str | None = Field(None, max_length=200, description="Only this action, e.g. `cancelJob`.")
    target: str | None = Field(None, max_length=200, description="Only actions whose target or details contain this.")
    since: datetime | None = Field(None, description="Only actions at or after this time (ISO 8601).")
    until: datetime | None = Field(None, description="Only actions at or before this time (ISO 8601).")


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
