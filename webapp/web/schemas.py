"""The API's response shapes and query parameters, as pydantic models.

These models are the contract: they describe what the API returns (every JSON answer is
serialized through its model, `webapp.web.openapi.respond`), and the OpenAPI document is
generated from them and from the submission models of `webapp.service.submission`. A field
added to the API is added here first.
"""

from __future__ import annotations

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


class DeliveryAttempt(BaseModel):
    """One attempt of a webhook delivery."""

    at: str
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
