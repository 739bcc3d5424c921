"""Typed views of the API's answers (dataclasses); `raw` keeps the JSON as received."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TERMINAL = frozenset({"finished", "failed", "canceled", "stopped"})


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class JobError:
    type: str
    message: str


def _error(value: dict | None) -> JobError | None:
    return JobError(value.get("type", ""), value.get("message", "")) if isinstance(value, dict) else None


@dataclass(frozen=True)
class Submitted:
    """The answer to a submission: the job's id and where to find it."""

    id: str
    name: str
    queue: str
    status: str
    url: str

    @classmethod
    def from_json(cls, data: dict) -> Submitted:
        return cls(data["id"], data["name"], data["queue"], data["status"], data["url"])


@dataclass(frozen=True)
class Attempt:
    outcome: str
    worker: str | None
    started_at: datetime | None
    ended_at: datetime | None
    error: JobError | None


@dataclass(frozen=True)
class Job:
    """`GET /api/jobs/<id>`: status, result or error, progress, times, attempts, and `retry`:
    `{"left", "planned_delays", "backoff"}` (the wait before each retry), None without retries."""

    id: str
    name: str | None
    queue: str | None
    status: str
    result: Any
    error: JobError | None
    progress: dict | None
    enqueued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    last_event_id: str | None
    description: str | None
    attempts: list[Attempt] = field(default_factory=list)
    retry: dict | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """The job has ended (finished, failed, canceled or stopped) and will not run again by itself."""
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status == "finished"

    @classmethod
    def from_json(cls, data: dict) -> Job:
        attempts = [
            Attempt(
                a.get("outcome", ""),
                a.get("worker"),
                _time(a.get("started_at")),
                _time(a.get("ended_at")),
                _error(a.get("error")),
            )  # fmt: skip
            for a in data.get("attempts") or []
        ]
        return cls(
            id=data["id"],
            name=data.get("name"),
            queue=data.get("queue"),
            status=data.get("status") or "",
            result=data.get("result"),
            error=_error(data.get("error")),
            progress=data.get("progress"),
            enqueued_at=_time(data.get("enqueued_at")),
            started_at=_time(data.get("started_at")),
            ended_at=_time(data.get("ended_at")),
            last_event_id=data.get("last_event_id"),
            description=data.get("description"),
            attempts=attempts,
            retry=data.get("retry"),
            raw=data,
        )


@dataclass(frozen=True)
class Event:
    """One job event from an event stream (`event` is its name: queued, started, progress, ...)."""

    id: str | None
    event: str
    job_id: str | None
    status: str | None
    data: dict = field(repr=False)

    @property
    def ends_job(self) -> bool:
        """The event that ends a job's timeline."""
        return self.event != "progress" and self.status in TERMINAL

    @classmethod
    def from_json(cls, event_id: str | None, name: str, data: dict) -> Event:
        return cls(event_id, data.get("event") or name, data.get("job_id"), data.get("status"), data)


@dataclass(frozen=True)
class DeliveryAttempt:
    at: datetime | None
    status: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery of a job event, with its attempts."""

    id: str
    job_id: str
    event: str
    url: str
    state: str
    attempts: list[DeliveryAttempt]
    next_attempt_at: datetime | None = None

    @classmethod
    def from_json(cls, data: dict) -> Delivery:
        attempts = [
            DeliveryAttempt(_time(a.get("at")), a.get("status"), a.get("error"), a.get("duration_ms", 0))
            for a in data.get("attempts") or []
        ]
        return cls(data["id"], data["job_id"], data["event"], data["url"], data["state"], attempts,
                   _time(data.get("next_attempt_at")))  # fmt: skip
