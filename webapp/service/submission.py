"""What a client sends to submit jobs, as pydantic models: the service validates every
submission with them (webapp/service/planning.py) before anything touches Redis.

These generic models check the shape and the options; the job's own arguments are checked
against its type's signature by the catalog. The OpenAPI document describes the union of both
(one submission schema per job name: webapp/web/openapi.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from webapp.service.backoff import JITTERS, MAX_BACKOFF_FACTOR
from webapp.service.validation import WHOLE_NUMBER, Integer
from webapp.store.states import STATUSES
from webapp.store.webhooks import WEBHOOK_EVENTS

JobId = str  # checked against webapp.store.jobreads.JOB_ID_PATTERN before any lookup
JobStatus = Literal[STATUSES]  # what a client can see (webapp/store/states.py)


class Strict(BaseModel):
    """Requests: unknown fields are refused, and no type coercion (`"2"` is not an int)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class BackoffOptions(Strict):
    """Exponential backoff: retry i (from 0) waits min(max_delay, base * factor**i), then jitter."""

    base: float = Field(1.0, gt=0, allow_inf_nan=False, description="Seconds before the first retry (before jitter).")
    factor: float = Field(
        2.0, ge=1, le=MAX_BACKOFF_FACTOR, allow_inf_nan=False, description="Each retry waits this many times longer."
    )
    max_delay: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Longest delay in seconds (default: MAX_RETRY_INTERVAL)."
    )
    jitter: Literal[JITTERS] = Field(
        "full", description="full: uniform in [0, d]; equal: d/2 + uniform in [0, d/2]; none: d."
    )


class RetryOptions(Strict):
    max: Annotated[int, Ge(0), WHOLE_NUMBER] = Field(description="How many times a failed job is retried.")
    intervals: list[Integer] = Field(default_factory=list, description="Seconds to wait before each retry.")
    backoff: BackoffOptions | None = Field(None, description="Exponential backoff with jitter, instead of intervals.")

    @model_validator(mode="after")
    def _intervals_or_backoff(self) -> RetryOptions:
        if self.backoff is not None and "intervals" in self.model_fields_set:
            raise ValueError("give intervals or backoff, not both")
        return self

    @model_serializer(mode="wrap")
    def _one_kind(self, handler):
        """With a backoff, no intervals: a stored retry (a schedule's job) reads back as it was given."""
        data = handler(self)
        if self.backoff is not None and isinstance(data, dict):
            data.pop("intervals", None)
        return data


class Dependencies(Strict):
    ids: list[JobId] = Field(min_length=1, description="Jobs that must end before this one runs.")
    allow_failure: bool = Field(False, description="Run even if a dependency failed.")


class WebhookOptions(Strict):
    """Where to POST the job's events, signed (README, "Webhooks")."""

    url: str = Field(max_length=2000, description="http(s) URL on a host in the server's WEBHOOK_ALLOWED_HOSTS.")
    events: list[Literal[WEBHOOK_EVENTS]] | None = Field(
        None, min_length=1, description="Events to deliver; default: finished, failed, stopped, canceled."
    )


LIMIT_KEY_PATTERN = r"^[A-Za-z0-9_.:@-]{1,100}$"
LIMIT_RATE_PATTERN = r"^[1-9][0-9]{0,3}/(second|minute|hour)$"
RATE_PERIODS = {"second": 1, "minute": 60, "hour": 3600}


class LimitOptions(Strict):
    """Concurrency and rate limits shared by every job with the same key (README, "Limits per key")."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        # at least one of the two, and not null: a schema-valid limit is an accepted one
        json_schema_extra={
            "anyOf": [
                {"required": ["concurrency"], "properties": {"concurrency": {"type": "integer"}}},
                {"required": ["rate"], "properties": {"rate": {"type": "string"}}},
            ]
        },
    )

    key: str = Field(
        pattern=LIMIT_KEY_PATTERN,
        description="1-100 letters, digits and `_.:@-`. A key given with an API key is that key's own "
        "(kept as `<key name>/<key>`).",
    )
    concurrency: Annotated[int, Ge(1), Le(1000), WHOLE_NUMBER] | None = Field(
        None, description="At most this many jobs of the key run at once."
    )
    rate: str | None = Field(
        None, pattern=LIMIT_RATE_PATTERN, description="At most n starts per second, minute or hour: `5/second`."
    )

    @model_validator(mode="after")
    def _one_limit(self) -> LimitOptions:
        if self.concurrency is None and self.rate is None:
            raise ValueError("give concurrency, rate or both")
        return self

    def meta(self) -> dict[str, Any]:
        """The limit as a job's meta carries it (webapp/store/limits.py)."""
        limit: dict[str, Any] = {"key": self.key}
        if self.concurrency is not None:
            limit["concurrency"] = self.concurrency
        if self.rate is not None:
            count, _, unit = self.rate.partition("/")
            limit["rate"], limit["per"] = int(count), RATE_PERIODS[unit]
        return limit


class SubmitRequest(Strict):
    """`POST /api/jobs`. Every option is bounded by the server's configured maxima."""

    name: str = Field(description="A registered job name (see GET /api/functions).")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = Field(None, description="high, default or low (configured queues).")
    timeout: Annotated[int, Ge(1), WHOLE_NUMBER] | None = Field(None, description="Seconds the job may run.")
    result_ttl: Annotated[int, Ge(0), WHOLE_NUMBER] | None = Field(None, description="Seconds a finished job is kept.")
    ttl: Annotated[int, Ge(1), WHOLE_NUMBER] | None = Field(None, description="Seconds the job may wait in the queue.")
    failure_ttl: Annotated[int, Ge(0), WHOLE_NUMBER] | None = Field(None, description="Seconds a failed job is kept.")
    retry: RetryOptions | None = None
    enqueue_in: float | None = Field(None, ge=0, description="Run after this many seconds.")
    enqueue_at: datetime | None = Field(None, description="Run at this time (ISO 8601).")
    depends_on: list[JobId] | Dependencies | None = None
    description: str | None = Field(None, max_length=500)
    webhook: WebhookOptions | None = Field(None, description="POST these events of the job to a URL (null: none).")
    limit: LimitOptions | None = Field(
        None, description="Concurrency and rate limits per key (null: none, not even the job type's default)."
    )


class NoOptions(Strict):
    """The body of an action that takes no options yet (retry, cancel): `{}`, or no body."""


class BatchRequest(Strict):
    """`POST /api/jobs/batch`: validated all-or-nothing, enqueued in one pipeline."""

    jobs: list[SubmitRequest] = Field(min_length=1)
