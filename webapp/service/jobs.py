"""The job service: validate, enqueue, look up, cancel and retry jobs. One per app, in `app.extensions`.

Submission runs in two steps. `plan` checks a request completely without touching Redis (job
name, arguments, every option against the configured maxima). `submit` then writes all the
planned jobs in one round trip behind the admission checks (rate limit, idempotency key, queue
depth): see `webapp.guarded`. A job with dependencies takes RQ's own path instead, since RQ
must read its dependencies' states under WATCH to decide whether it waits (`deferred`).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app, has_request_context
from pydantic import ValidationError
from redis import Redis
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Dependency, Job, JobStatus
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import get_version

import jobs
from webapp import auth, jobrecord, jobstore, listing
from webapp.auth import Principal
from webapp.catalog import JobType, build_catalog, effective_options
from webapp.errors import Conflict, NotFound, PayloadTooLarge, TooManyRequests, Unavailable, ValidationFailed
from webapp.events import EventLog
from webapp.fastpath import wake_key
from webapp.guarded import Admission, GuardedWriter
from webapp.models import Dependencies, SubmitRequest
from webapp.ratelimit import RateLimit

IDEMPOTENCY_PREFIX = "jobsvc:idempotency:"
RATE_PREFIX = "jobsvc:rate:"
CANCELABLE = ("queued", "scheduled", "deferred", "ready_to_enqueue")
RETRYABLE = ("failed", "stopped", "canceled")
CURRENT = object()  # "the caller of the current request" (no request: operator rights)
REGISTRY_STATES = ("started", "scheduled", "deferred", "finished", "failed", "canceled")


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

    @property
    def initial_status(self) -> str:
        return "scheduled" if self.run_at is not None else "queued"


@dataclass
class Submission:
    """The jobs a request created, or the ones an earlier request with its idempotency key did."""

    jobs: list[dict[str, str]]
    replayed: bool = False


class JobService:
    """Everything the HTTP layer and the CLI do with jobs goes through here."""

    def __init__(self, connection: Redis, config: Mapping[str, Any], catalog: dict[str, JobType]):
        self.connection = connection
        self.config = config
        self.catalog = catalog
        self.queues = {
            name: Queue(
                name,
                connection=connection,
                serializer=JSONSerializer,
                default_timeout=config["JOB_TIMEOUT"],
            )
            for name in config["QUEUES"]
        }
        self.events = EventLog.from_config(connection, dict(config))
        self.names_by_path = {job_type.import_path: job_type.name for job_type in catalog.values()}
        self.writer = GuardedWriter(connection, [self.events.script, listing._index_and_sweep])
        self.rate_limit = RateLimit.parse(config["SUBMIT_RATE_LIMIT"])

    # -- validation (no Redis) -------------------------------------------------------------

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
        if request.retry is not None:
            self._at_most("retry.max", request.retry.max, "MAX_RETRIES")
            for interval in request.retry.intervals:
                if interval < 0:
                    raise ValidationFailed("retry.intervals: intervals are seconds, 0 or more")
                self._at_most("retry.intervals", interval, "MAX_RETRY_INTERVAL")
            retry = {"max": request.retry.max, "intervals": request.retry.intervals}
        else:
            retry = defaults["retry"]
        if retry and retry.get("max", 0) > 0:
            options["retry"] = Retry(max=retry["max"], interval=list(retry.get("intervals") or []) or 0)
        planned = PlannedJob(job_type, call_kwargs, queue, options)
        planned.run_at = self._run_at(request)
        if request.depends_on is not None:
            deps = request.depends_on
            ids, allow_failure = (deps.ids, deps.allow_failure) if isinstance(deps, Dependencies) else (deps, False)
            if not ids:
                raise ValidationFailed("depends_on: give at least one job id")
            if len(ids) > self.config["MAX_DEPENDENCIES"]:
                raise ValidationFailed(f"depends_on: at most {self.config['MAX_DEPENDENCIES']} jobs (MAX_DEPENDENCIES)")
            for job_id in ids:
                if not jobstore.JOB_ID_PATTERN.fullmatch(job_id):
                    raise ValidationFailed(f"depends_on: {job_id!r} is not a job id")
            if planned.run_at is not None:
                raise ValidationFailed("depends_on cannot be combined with enqueue_in/enqueue_at")
            planned.dependency_ids = list(dict.fromkeys(ids))
            planned.dependency = Dependency(jobs=planned.dependency_ids, allow_failure=allow_failure)
        return planned

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
            try:
                moment = moment.astimezone(UTC)
            except OverflowError:
                raise ValidationFailed("enqueue_at: out of range") from None
            ahead = (moment - datetime.now(UTC)).total_seconds()
            if ahead > self.config["MAX_ENQUEUE_IN"]:
                raise ValidationFailed(
                    f"enqueue_at: at most {self.config['MAX_ENQUEUE_IN']} s ahead is allowed (MAX_ENQUEUE_IN)"
                )
            return _whole_second_up(moment)
        return None

    # -- submission -------------------------------------------------------------------------

    def submit(self, name: Any, args: Any = None, kwargs: Any = None, queue: Any = None) -> Job:
        """Validate and enqueue one job with default options; returns RQ's Job (for Python callers)."""
        body = {"name": name, "args": [] if args is None else args, "kwargs": {} if kwargs is None else kwargs}
        if queue is not None:
            body["queue"] = queue
        try:
            request = SubmitRequest.model_validate(body)
        except ValidationError as exc:
            summary = "; ".join(
                f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
            )
            raise ValidationFailed(f"invalid submission: {summary}") from None
        submission = self.enqueue([self.plan(request)])
        return Job.fetch(submission.jobs[0]["id"], connection=self.connection, serializer=JSONSerializer)

    def enqueue(
        self,
        planned: Sequence[PlannedJob],
        principal: Principal | None = None,
        *,
        client: str = "",
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> Submission:
        """Enqueue planned jobs all-or-nothing; one round trip unless a job has dependencies."""
        owner = principal.name if principal is not None else None
        admission = self._admission(planned, principal, client, idempotency_key, fingerprint)
        if any(plan.dependency is not None for plan in planned):
            return self._submit_with_dependencies(planned, principal, owner, admission, fingerprint)
        commands: list[tuple] = []
        created = [self._write(plan, owner, commands) for plan in planned]
        if admission.idempotency_key:
            admission.idempotency_value = self._idempotency_value(fingerprint, created)
        outcome = self.writer.run(commands, admission)
        if outcome.status != "ok":
            return self._refused(outcome, fingerprint)
        return Submission(created)

    def _admission(self, planned, principal, client, idempotency_key, fingerprint) -> Admission:
        admission = Admission(cost=len(planned), depth_cap=self.config["MAX_QUEUE_DEPTH"])
        if self.rate_limit is not None:
            who = principal.name if principal is not None else client
            admission.rate_key = RATE_PREFIX + hashlib.sha256(who.encode()).hexdigest()[:32]
            admission.rate_limit = self.rate_limit.limit
            admission.rate_window = self.rate_limit.window
        if idempotency_key is not None:
            admission.idempotency_key = self.idempotency_key(idempotency_key, principal)
            admission.idempotency_ttl = self.config["IDEMPOTENCY_TTL"]
        for plan in planned:
            if plan.run_at is None and plan.dependency is None:
                key = plan.queue.key
                admission.added_per_queue[key] = admission.added_per_queue.get(key, 0) + 1
        return admission

    @staticmethod
    def idempotency_key(key: str, principal: Principal | None) -> str:
        """Keys are per client: two clients using the same key never see each other's jobs."""
        scope = principal.name if principal is not None else ""
        return IDEMPOTENCY_PREFIX + hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()

    @staticmethod
    def _idempotency_value(fingerprint: str, created: list[dict]) -> str:
        return json.dumps({"fingerprint": fingerprint, "jobs": created}, separators=(",", ":"))

    def _prime_server_version(self) -> None:
        # RQ stamps each job with the server version; it asks Redis once per connection and
        # caches the answer there. Ask once up front so no submission pays for it twice.
        if not getattr(self, "_server_version", None):
            self._server_version = get_version(self.connection)
            for queue in self.queues.values():
                queue.redis_server_version = self._server_version

    def _write(self, plan: PlannedJob, owner: str | None, commands: list[tuple]) -> dict[str, str]:
        """Add one job's writes (job hash, queue push or schedule, event, index) to `commands`."""
        meta: dict[str, Any] = {"name": plan.job_type.name}
        if owner is not None:
            meta["owner"] = owner
        queue = plan.queue
        name = plan.job_type.name
        if plan.run_at is not None:
            # Rare enough to take RQ's own code, recorded rather than executed (webapp.guarded).
            self._prime_server_version()
            recorder = self.writer.recorder()
            job = queue.create_job(
                plan.job_type.import_path,
                kwargs=plan.call_kwargs,
                meta=meta,
                status=JobStatus.SCHEDULED,
                **plan.options,
            )
            queue.schedule_job(job, plan.run_at, pipeline=recorder)
            listing.index_job(recorder, job)
            commands += self.writer.recorded(recorder)
            job_id = job.id
            commands.append(
                self.events.command(
                    "scheduled",
                    job_id=job_id,
                    name=name,
                    queue=queue.name,
                    status="scheduled",
                    run_at=jobstore.isoformat(plan.run_at),
                )
            )
        else:
            job_id = str(uuid.uuid4())
            now = datetime.now(UTC)
            commands += jobrecord.queued_job_commands(
                job_id,
                plan.job_type.import_path,
                plan.call_kwargs,
                meta,
                queue.name,
                plan.options,
                self.config["JOB_TIMEOUT"],
                now,
            )
            commands.append(self.events.command("queued", job_id=job_id, name=name, queue=queue.name, status="queued"))
            commands += listing.index_commands(job_id, int(now.timestamp() * 1_000_000), queue.name, name, owner)
            commands.append(("RPUSH", wake_key(queue.name), 1))  # wakes an idle worker at once
        return {"id": job_id, "name": name, "queue": queue.name, "status": plan.initial_status}

    def _submit_with_dependencies(self, planned, principal, owner, admission, fingerprint) -> Submission:
        """RQ's own path: it reads the dependencies under WATCH to decide queued or deferred."""
        self._check_dependencies(planned, principal)
        # The admission checks run first, on their own; the idempotency key is released again
        # if the jobs cannot be written, so a retry of the request is not refused.
        self._prime_server_version()
        ids = [str(uuid.uuid4()) for _ in planned]
        created = [
            {"id": job_id, "name": plan.job_type.name, "queue": plan.queue.name, "status": "queued"}
            for job_id, plan in zip(ids, planned, strict=True)
        ]
        admission.idempotency_value = self._idempotency_value(fingerprint, created)
        outcome = self.writer.run([], admission)
        if outcome.status != "ok":
            return self._refused(outcome, fingerprint)
        try:
            for entry, plan in zip(created, planned, strict=True):
                meta: dict[str, Any] = {"name": plan.job_type.name}
                if owner is not None:
                    meta["owner"] = owner
                options = dict(plan.options)
                job = plan.queue.enqueue_call(
                    func=plan.job_type.import_path,
                    kwargs=plan.call_kwargs,
                    meta=meta,
                    job_id=entry["id"],
                    depends_on=plan.dependency,
                    **options,
                )
                status = job.get_status(refresh=False)
                entry["status"] = status.value if status is not None else "queued"
                with self.connection.pipeline(transaction=False) as pipe:
                    self.events.append(
                        entry["status"],
                        job_id=job.id,
                        name=entry["name"],
                        queue=entry["queue"],
                        status=entry["status"],
                        pipeline=pipe,
                    )
                    listing.index_job(pipe, job)
                    if entry["status"] == "queued":
                        pipe.rpush(wake_key(plan.queue.name), 1)
                    pipe.execute()
        except Exception:
            if admission.idempotency_key:
                self.connection.delete(admission.idempotency_key)
            raise
        if admission.idempotency_key:
            self.connection.set(
                admission.idempotency_key, self._idempotency_value(fingerprint, created), keepttl=True, xx=True
            )
        return Submission(created)

    def _check_dependencies(self, planned, principal) -> None:
        """Every job named in depends_on must exist and be visible to the caller."""
        wanted = sorted({job_id for plan in planned for job_id in plan.dependency_ids})
        with self.connection.pipeline(transaction=False) as pipe:
            for job_id in wanted:
                pipe.hget(Job.key_for(job_id), "meta")
                pipe.exists(Job.key_for(job_id))
            replies = pipe.execute()
        for index, job_id in enumerate(wanted):
            raw_meta, exists = replies[2 * index], replies[2 * index + 1]
            if not exists or not _owner_allows(_owner_in(raw_meta), principal):
                raise ValidationFailed(
                    f"depends_on: no job with id {job_id!r} (it never existed or has expired)",
                    details=[{"argument": "depends_on", "message": f"unknown job {job_id}", "type": "unknown_job"}],
                )

    def _refused(self, outcome, fingerprint: str) -> Submission:
        if outcome.status == "limited":
            retry_after = max(1, math.ceil(int(outcome.detail[0]) / 1000))
            raise TooManyRequests(
                f"too many submissions: at most {self.rate_limit.describe()} per client (SUBMIT_RATE_LIMIT); "
                f"retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
        if outcome.status == "duplicate":
            stored = json.loads(outcome.detail[0])
            if stored.get("fingerprint") != fingerprint:
                raise Conflict(
                    "this Idempotency-Key was already used with a different request body; "
                    "use a new key for a new request"
                )
            return Submission(self._current(stored["jobs"]), replayed=True)
        if outcome.status == "full":
            queue_key = outcome.detail[0].decode() if isinstance(outcome.detail[0], bytes) else outcome.detail[0]
            name = queue_key.removeprefix(Queue.redis_queue_namespace_prefix)
            raise Unavailable(
                f"queue {name!r} is full ({outcome.detail[1]} jobs waiting, MAX_QUEUE_DEPTH "
                f"{self.config['MAX_QUEUE_DEPTH']}); retry later",
                headers={"Retry-After": "5"},
            )
        raise RuntimeError(f"unexpected admission outcome {outcome}")

    def _current(self, created: list[dict]) -> list[dict]:
        """The jobs of a replayed request with their status as it is now."""
        with self.connection.pipeline(transaction=False) as pipe:
            for entry in created:
                pipe.hget(Job.key_for(entry["id"]), "status")
            statuses = pipe.execute()
        return [
            {**entry, "status": status.decode() if status else entry["status"]}
            for entry, status in zip(created, statuses, strict=True)
        ]

    # -- reading, ownership, cancel and retry -----------------------------------------------

    @staticmethod
    def visible_to(job: Job, principal: Principal | None) -> bool:
        """Whether `principal` may see and manage `job`.

        True when the API is open (principal None), for admin keys, and for the key that
        submitted the job (job.meta["owner"]). Listing code filters with this too.
        """
        return _owner_allows(job.meta.get("owner"), principal)

    def load(self, job_id: str, principal: Principal | None | object = CURRENT):
        """(job, latest result, last event id), or NotFound, also for a job the caller may not see."""
        principal = _caller(principal)
        job, result, last_event_id = jobstore.fetch(self.connection, job_id)
        if not self.visible_to(job, principal):
            raise NotFound(f"no job with id {job_id!r}: it never existed or has expired")
        return job, result, last_event_id

    def describe(self, job_id: str, principal: Principal | None | object = CURRENT) -> dict[str, Any]:
        """The detail view (with attempts); NotFound for a job the caller may not see.

        `principal` defaults to the caller of the current request (outside a request: operator
        rights), so a view that forgets to pass it still shows a client only its own jobs.
        """
        principal = _caller(principal)
        if principal is not None and not principal.admin:
            self._check_owner(job_id, principal)
        return listing.describe_job(self.connection, job_id, self.names_by_path)

    def _check_owner(self, job_id: str, principal: Principal) -> None:
        jobstore.check_job_id(job_id)
        raw_meta = self.connection.hget(Job.key_for(job_id), "meta")
        if not _owner_allows(_owner_in(raw_meta), principal):
            raise NotFound(f"no job with id {job_id!r}: it never existed or has expired")

    @staticmethod
    def listing_owner(principal: Principal | None | object = CURRENT) -> str | None:
        """The owner a job listing must be limited to: the caller's key name, or None (all jobs)."""
        principal = _caller(principal)
        if principal is None or principal.admin:
            return None
        return principal.name

    def cancel(self, job_id: str, principal: Principal | None | object = CURRENT) -> tuple[dict[str, Any], bool]:
        """Cancel a waiting job, or ask the worker running it to stop.

        Returns (view, stopping): `stopping` is True when a stop was requested from a worker,
        which marks the job `stopped` once it has taken effect.
        """
        job, _, _ = self.load(job_id, principal)
        status = _status(job)
        name = job.meta.get("name")
        if status in CANCELABLE:
            try:
                job.cancel()
            except InvalidJobOperation as exc:
                raise Conflict(f"job {job_id} cannot be canceled: {exc}") from None
            self.events.append("canceled", job_id=job.id, name=name, queue=job.origin, status="canceled")
            return self.describe(job_id, principal), False
        if status == "started":
            try:
                send_stop_job_command(self.connection, job.id, serializer=JSONSerializer)
            except InvalidJobOperation:
                raise Conflict(f"job {job_id} is not running on any worker right now; retry shortly") from None
            return self.describe(job_id, principal), True
        raise Conflict(f"job {job_id} has already ended (status {status}): there is nothing to cancel")

    def retry(self, job_id: str, principal: Principal | None | object = CURRENT) -> dict[str, str]:
        """Requeue a failed, stopped or canceled job (same id) with its original options.

        Returns the job as a submission answer: id, name, queue, status (queued)."""
        job, _, _ = self.load(job_id, principal)
        status = _status(job)
        if status not in RETRYABLE:
            raise Conflict(f"job {job_id} is {status}: only failed, stopped or canceled jobs can be retried")
        registry_class = CanceledJobRegistry if status == "canceled" else FailedJobRegistry
        registry = registry_class(job.origin, connection=self.connection, serializer=JSONSerializer)
        job.meta.pop("error", None)
        job.meta.pop("progress", None)
        try:
            registry.requeue(job)
        except InvalidJobOperation:
            # Someone else requeued or removed it between our read and this one.
            raise Conflict(f"job {job_id} is no longer {status}; it may have been retried already") from None
        name = job.meta.get("name") or self.names_by_path.get(job.func_name or "", job.func_name)
        with self.connection.pipeline(transaction=False) as pipe:
            self.events.append("queued", job_id=job.id, name=name, queue=job.origin, status="queued", pipeline=pipe)
            pipe.rpush(wake_key(job.origin), 1)  # wakes an idle worker at once
            pipe.execute()
        return {"id": job.id, "name": name, "queue": job.origin, "status": "queued"}

    def recent_ids(self, limit: int = 20) -> list[tuple[str, str, str]]:
        """(id, queue, state) of recent jobs from RQ's own queues and registries, newest first
        within each; a simple view for the CLI (the full listing is `GET /api/jobs`)."""
        found: list[tuple[str, str, str]] = []
        with self.connection.pipeline(transaction=False) as pipe:
            for queue in self.queues.values():
                pipe.lrange(queue.key, -limit, -1)
                for registry in _registries(queue):
                    pipe.zrevrange(registry.key, 0, limit - 1)
            replies = iter(pipe.execute())
        for queue in self.queues.values():
            for job_id in reversed(next(replies)):
                found.append((job_id.decode(), queue.name, "queued"))
            for state, _registry in zip(REGISTRY_STATES, _registries(queue), strict=True):
                for entry in next(replies):
                    found.append((entry.decode().split(":")[0], queue.name, state))
        return found[: limit * 8]


def _registries(queue: Queue):
    return (
        queue.started_job_registry,
        queue.scheduled_job_registry,
        queue.deferred_job_registry,
        queue.finished_job_registry,
        queue.failed_job_registry,
        queue.canceled_job_registry,
    )


def _whole_second_up(moment: datetime) -> datetime:
    """RQ keeps schedules in whole seconds and truncates; rounding up means never early."""
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def _caller(principal):
    if principal is CURRENT:
        return auth.principal() if has_request_context() else None
    return principal


def _owner_in(raw_meta: bytes | None) -> str | None:
    """The owner recorded in a job's raw (JSON) meta field, if any."""
    if not raw_meta:
        return None
    try:
        return json.loads(raw_meta).get("owner")
    except (ValueError, AttributeError):
        return None


def _owner_allows(owner: str | None, principal: Principal | None) -> bool:
    if principal is None or principal.admin:
        return True
    return owner == principal.name


def _status(job: Job) -> str | None:
    status = job.get_status(refresh=False)
    return status.value if status is not None else None


def fingerprint_of(payload: Any, route: str) -> str:
    """What makes two requests "the same" for an idempotency key: the route and the validated
    body, canonically encoded (key order and whitespace do not matter)."""
    canonical = json.dumps([route, payload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def init_app(app: Flask) -> None:
    app.extensions["jobsvc"] = JobService(
        app.extensions["redis"], app.config, build_catalog(jobs.ALLOWED, jobs.DEFAULT_OPTIONS)
    )


def get_service() -> JobService:
    return current_app.extensions["jobsvc"]
