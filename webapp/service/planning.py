"""Planning a submission: check it completely (job name, arguments, every option against the
configured maxima) without touching Redis, and decide what to enqueue, where and how."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from rq import Queue, Retry
from rq.job import Dependency

from webapp.infra.errors import PayloadTooLarge, ValidationFailed
from webapp.service.backoff import backoff_delays, fixed_delays
from webapp.service.catalog import Catalog, JobType, effective_options
from webapp.service.submission import Dependencies, LimitOptions, RetryOptions, SubmitRequest
from webapp.service.validation import failed
from webapp.service.webhooks import webhook_meta
from webapp.store.jobreads import JOB_ID_PATTERN


@dataclass
class PlannedJob:
    """A submission that passed validation: what to enqueue, where and how."""

    job_type: JobType
    call_kwargs: dict[str, Any]
    queue: Queue
    options: dict[str, Any]  # RQ options, built by the server: never client JSON
    run_at: datetime | None = None
    dependency: Dependency | None = None
    dependency_ids: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # kept in the job's meta (webhook, traceparent)
    limit: dict[str, Any] | None = None  # limits per key, as the job's meta carries it (store/limits.py)
    limit_own: bool = False  # the key was given in the submission: the submitting API key's own

    @property
    def initial_status(self) -> str:
        return "scheduled" if self.run_at is not None else "queued"


class Planner:
    """Turns submissions into PlannedJobs for one catalog, set of queues and configuration."""

    def __init__(self, catalog: Catalog, queues: Mapping[str, Queue], config: Mapping[str, Any]):
        self.catalog = catalog
        self.queues = queues
        self.config = config

    def job_type(self, name: Any) -> JobType:
        if not isinstance(name, str) or name not in self.catalog:
            raise ValidationFailed(
                f"unknown job name {name!r}: valid names are listed at GET /api/functions "
                f"({', '.join(sorted(self.catalog))})"
            )
        return self.catalog[name]

    def queue(self, name: Any) -> Queue:
        if name is None:
            name = self.config["DEFAULT_QUEUE"]
        if not isinstance(name, str) or name not in self.queues:
            raise ValidationFailed(f"unknown queue {name!r}: configured queues are {', '.join(self.queues)}")
        return self.queues[name]

    def request(self, body: Mapping[str, Any]) -> SubmitRequest:
        """A submission given as a mapping (the CLI, Python callers) as the API's model."""
        try:
            return SubmitRequest.model_validate(body)
        except ValidationError as exc:
            raise failed(exc, "invalid submission: ") from None

    def _at_most(self, option: str, value: float | None, setting: str) -> None:
        maximum = self.config[setting]
        if value is not None and value > maximum:
            raise ValidationFailed(
                f"{option}: at most {maximum} is allowed on this server ({setting})",
                details=[{"argument": option, "message": f"at most {maximum}", "type": "less_than_equal"}],
            )

    def plan(self, request: SubmitRequest) -> PlannedJob:
        """Check one submission completely (arguments and options) without touching Redis."""
        job_type = self.job_type(request.name)
        size = len(json.dumps([request.args, request.kwargs], separators=(",", ":")))
        if size > self.config["MAX_ARGS_BYTES"]:
            raise PayloadTooLarge(
                f"the job's arguments take {size} bytes as JSON; at most {self.config['MAX_ARGS_BYTES']} are allowed "
                "(MAX_ARGS_BYTES): pass a reference (an id, a URL) instead of the data"
            )
        call_kwargs = job_type.validate(request.args, request.kwargs)
        self._at_most("timeout", request.timeout, "MAX_JOB_TIMEOUT")
        self._at_most("result_ttl", request.result_ttl, "MAX_RESULT_TTL")
        self._at_most("failure_ttl", request.failure_ttl, "MAX_FAILURE_TTL")
        self._at_most("ttl", request.ttl, "MAX_JOB_TTL")
        # What the request leaves out comes from the job type's defaults, then the config.
        defaults = effective_options(job_type, self.config)
        queue = self.queue(request.queue if request.queue is not None else defaults["queue"])

        def pick(option: str):
            given = getattr(request, option)
            return given if given is not None else defaults[option]

        options: dict[str, Any] = {
            "timeout": pick("timeout"),
            "result_ttl": pick("result_ttl"),
            "failure_ttl": pick("failure_ttl"),
            "ttl": pick("ttl"),
            "description": request.description,
        }
        retry = self._retry(request.retry) if request.retry is not None else defaults["retry"]
        planned = PlannedJob(job_type, call_kwargs, queue, options)
        if retry and retry.get("max", 0) > 0:
            backoff = retry.get("backoff")
            if backoff is not None:
                backoff = {**backoff, "max_delay": backoff.get("max_delay") or self.config["MAX_RETRY_INTERVAL"]}
                delays = backoff_delays(retry["max"], backoff)
                planned.meta["retry"] = {"max": retry["max"], "backoff": backoff}  # to plan afresh on retry
            else:
                delays = fixed_delays(retry["max"], retry.get("intervals") or [])
            options["retry"] = Retry(max=retry["max"], interval=delays)
        # A job type's default webhook applies unless the submission names one, or null.
        spec = request.webhook.model_dump() if request.webhook is not None else None
        if "webhook" not in request.model_fields_set:
            spec = defaults.get("webhook")
        webhook = webhook_meta(spec, self.config["WEBHOOK_ALLOWED_HOSTS"])
        if webhook is not None:
            planned.meta["webhook"] = webhook
        # Likewise the job type's default limit (a fixed key shared by everyone), unless the
        # submission gives one (the submitter's own key) or null.
        if "limit" in request.model_fields_set:
            planned.limit = request.limit.meta() if request.limit is not None else None
            planned.limit_own = True
        elif defaults.get("limit") is not None:
            planned.limit = LimitOptions.model_validate(defaults["limit"]).meta()
        planned.run_at = self._run_at(request)
        if request.depends_on is not None:
            deps = request.depends_on
            ids, allow_failure = (deps.ids, deps.allow_failure) if isinstance(deps, Dependencies) else (deps, False)
            if not ids:
                raise ValidationFailed("depends_on: give at least one job id")
            if len(ids) > self.config["MAX_DEPENDENCIES"]:
                raise ValidationFailed(f"depends_on: at most {self.config['MAX_DEPENDENCIES']} jobs (MAX_DEPENDENCIES)")
            for job_id in ids:
                if not JOB_ID_PATTERN.fullmatch(job_id):
                    raise ValidationFailed(f"depends_on: {job_id!r} is not a job id")
            if planned.run_at is not None:
                raise ValidationFailed("depends_on cannot be combined with enqueue_in/enqueue_at")
            planned.dependency_ids = list(dict.fromkeys(ids))
            planned.dependency = Dependency(jobs=planned.dependency_ids, allow_failure=allow_failure)
        return planned

    def _retry(self, retry: RetryOptions) -> dict[str, Any]:
        """The submission's retry option, checked against the server's maxima, as a plain mapping."""
        self._at_most("retry.max", retry.max, "MAX_RETRIES")
        if retry.backoff is not None:
            self._at_most("retry.backoff.base", retry.backoff.base, "MAX_RETRY_INTERVAL")
            self._at_most("retry.backoff.max_delay", retry.backoff.max_delay, "MAX_RETRY_INTERVAL")
            return {"max": retry.max, "backoff": retry.backoff.model_dump()}
        for interval in retry.intervals:
            if interval < 0:
                raise ValidationFailed("retry.intervals: intervals are seconds, 0 or more")
            self._at_most("retry.intervals", interval, "MAX_RETRY_INTERVAL")
        return {"max": retry.max, "intervals": retry.intervals}

    def _run_at(self, request: SubmitRequest) -> datetime | None:
        if request.enqueue_in is not None and request.enqueue_at is not None:
            raise ValidationFailed("give enqueue_in or enqueue_at, not both")
        if request.enqueue_in is not None:
            if not math.isfinite(request.enqueue_in):
                raise ValidationFailed("enqueue_in: must be a finite number of seconds")
            self._at_most("enqueue_in", request.enqueue_in, "MAX_ENQUEUE_IN")
            return _whole_second_up(datetime.now(UTC) + timedelta(seconds=request.enqueue_in))
        if request.enqueue_at is not None:
            moment = request.enqueue_at
            if moment.tzinfo is None:  # documented: a time without an offset is UTC
                moment = moment.replace(tzinfo=UTC)
            # Any time is taken (a past one runs at once). MAX_ENQUEUE_IN bounds `enqueue_in` only: a
            # bound relative to now cannot be said in the API's schema, and a schema-valid
            # submission is an accepted one (README: Job options).
            try:
                return _whole_second_up(moment.astimezone(UTC))
            except OverflowError:
                # Past what a datetime holds once in UTC: before year 1 runs now, after 9999 at its end.
                if moment.year == 1:
                    return None
                return datetime.max.replace(microsecond=0, tzinfo=UTC)
        return None


def _whole_second_up(moment: datetime) -> datetime:
    """RQ keeps schedules in whole seconds and truncates; rounding up means never early."""
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment
