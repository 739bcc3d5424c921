"""The job service: submit, look up, cancel and retry jobs, for a caller given explicitly.

Submission runs in two steps. `plan` (webapp/service/planning.py) checks a request
completely without touching Redis. `enqueue` then writes all the planned jobs in one round
trip behind the admission checks (rate limit, idempotency key, queue depth): see
`webapp.store.admission`. A job with dependencies takes RQ's own path instead, since RQ must
read its dependencies' states under WATCH to decide whether it waits (`deferred`).

Every operation takes the caller (`webapp.service.access.Caller`) as a required argument: a
client key sees and manages only its own jobs, whoever calls this (the API, the CLI, a test).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import get_version

from webapp.infra.clock import iso
from webapp.infra.errors import Conflict, TooManyRequests, Unavailable, ValidationFailed
from webapp.service import access
from webapp.service.access import Caller
from webapp.service.catalog import Catalog
from webapp.service.planning import PlannedJob, Planner
from webapp.service.ratelimit import RateLimit
from webapp.service.submission import SubmitRequest
from webapp.store import jobreads, jobrecord, keys, listing, states
from webapp.store.admission import Admission, GuardedWriter
from webapp.store.events import EventLog


@dataclass
class Submission:
    """The jobs a request created, or the ones an earlier request with its idempotency key did."""

    jobs: list[dict[str, str]]
    replayed: bool = False


class JobService:
    """Everything the HTTP layer and the CLI do with jobs goes through here."""

    def __init__(self, connection: Redis, config: Mapping[str, Any], catalog: Catalog):
        self.connection = connection
        self.config = config
        self.catalog = catalog
        self.queues = {
            name: Queue(name, connection=connection, serializer=JSONSerializer, default_timeout=config["JOB_TIMEOUT"])
            for name in config["QUEUES"]
        }
        self.planner = Planner(catalog, self.queues, config)
        self.events = EventLog.from_config(connection, config)
        self.names_by_path = catalog.names_by_path
        self.writer = GuardedWriter(connection)
        self.rate_limit = RateLimit.parse(config["SUBMIT_RATE_LIMIT"])

    # -- submission -------------------------------------------------------------------------

    def plan(self, request: SubmitRequest) -> PlannedJob:
        return self.planner.plan(request)

    def submit(self, caller: Caller, name: Any, args: Any = None, kwargs: Any = None, queue: Any = None) -> dict:
        """Validate and enqueue one job with default options (Python callers, the demo page).

        Returns the submission answer: id, name, queue, status."""
        body = {"name": name, "args": [] if args is None else args, "kwargs": {} if kwargs is None else kwargs}
        if queue is not None:
            body["queue"] = queue
        return self.enqueue([self.plan(self.planner.request(body))], caller).jobs[0]

    def enqueue(
        self,
        planned: Sequence[PlannedJob],
        caller: Caller,
        *,
        client: str = "",
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> Submission:
        """Enqueue planned jobs all-or-nothing; one round trip unless a job has dependencies."""
        owner = access.owner_of(caller)
        admission = self._admission(planned, caller, client, idempotency_key)
        if any(plan.dependency is not None for plan in planned):
            return self._submit_with_dependencies(planned, caller, owner, admission, fingerprint)
        commands: list[tuple] = []
        created = [self._write(plan, owner, commands) for plan in planned]
        admission.creates = keys.job(created[0]["id"])
        if admission.idempotency_key:
            admission.idempotency_value = _idempotency_value(fingerprint, created)
        outcome = self.writer.run(commands, admission)
        if outcome.status != "ok":
            return self._refused(outcome, fingerprint)
        return Submission(created)

    def _admission(self, planned, caller: Caller, client: str, idempotency_key: str | None) -> Admission:
        admission = Admission(cost=len(planned), depth_cap=self.config["MAX_QUEUE_DEPTH"])
        if self.rate_limit is not None:
            who = caller.name if caller is not None else client
            admission.rate_key = keys.RATE_PREFIX + hashlib.sha256(who.encode()).hexdigest()[:32]
            admission.rate_limit = self.rate_limit.limit
            admission.rate_window = self.rate_limit.window
        if idempotency_key is not None:
            admission.idempotency_key = idempotency_storage_key(idempotency_key, caller)
            admission.idempotency_ttl = self.config["IDEMPOTENCY_TTL"]
        for plan in planned:
            if plan.run_at is None and plan.dependency is None:
                key = plan.queue.key
                admission.added_per_queue[key] = admission.added_per_queue.get(key, 0) + 1
        return admission

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
        where = {"name": name, "queue": queue.name, "owner": owner}
        if plan.run_at is not None:
            # Rare enough to take RQ's own code, recorded rather than executed (store/admission.py).
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
            commands += self.writer.recorded(recorder)
            commands += listing.index_commands(job.id, listing.score_of(job), queue.name, name, owner)
            job_id = job.id
            commands.append(
                self.events.command("scheduled", job_id=job_id, status="scheduled", run_at=iso(plan.run_at), **where)
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
            commands.append(self.events.command("queued", job_id=job_id, status="queued", **where))
            commands += listing.index_commands(job_id, int(now.timestamp() * 1_000_000), queue.name, name, owner)
            commands.append(("RPUSH", keys.wake(queue.name), 1))  # wakes an idle worker at once
        return {"id": job_id, "name": name, "queue": queue.name, "status": plan.initial_status}

    def _submit_with_dependencies(self, planned, caller: Caller, owner, admission, fingerprint) -> Submission:
        """RQ's own path: it reads the dependencies under WATCH to decide queued or deferred."""
        self._check_dependencies(planned, caller)
        # The admission checks run first, on their own; the idempotency key is released again
        # if the jobs cannot be written, so a retry of the request is not refused.
        self._prime_server_version()
        ids = [str(uuid.uuid4()) for _ in planned]
        created = [
            {"id": job_id, "name": plan.job_type.name, "queue": plan.queue.name, "status": "queued"}
            for job_id, plan in zip(ids, planned, strict=True)
        ]
        admission.idempotency_value = _idempotency_value(fingerprint, created)
        outcome = self.writer.run([], admission)
        if outcome.status != "ok":
            return self._refused(outcome, fingerprint)
        try:
            for entry, plan in zip(created, planned, strict=True):
                meta: dict[str, Any] = {"name": plan.job_type.name}
                if owner is not None:
                    meta["owner"] = owner
                job = plan.queue.enqueue_call(
                    func=plan.job_type.import_path,
                    kwargs=plan.call_kwargs,
                    meta=meta,
                    job_id=entry["id"],
                    depends_on=plan.dependency,
                    **plan.options,
                )
                entry["status"] = jobreads.status_of(job) or "queued"
                with self.connection.pipeline(transaction=False) as pipe:
                    self.events.for_job(entry["status"], job, status=entry["status"], pipeline=pipe)
                    listing.index_job(pipe, job)
                    if entry["status"] == "queued":
                        pipe.rpush(keys.wake(plan.queue.name), 1)
                    pipe.execute()
        except Exception:
            if admission.idempotency_key:
                self.connection.delete(admission.idempotency_key)
            raise
        if admission.idempotency_key:
            self.connection.set(
                admission.idempotency_key, _idempotency_value(fingerprint, created), keepttl=True, xx=True
            )
        return Submission(created)

    def _check_dependencies(self, planned, caller: Caller) -> None:
        """Every job named in depends_on must exist and be visible to the caller."""
        wanted = sorted({job_id for plan in planned for job_id in plan.dependency_ids})
        with self.connection.pipeline(transaction=False) as pipe:
            for job_id in wanted:
                pipe.hget(keys.job(job_id), "meta")
                pipe.exists(keys.job(job_id))
            replies = pipe.execute()
        for index, job_id in enumerate(wanted):
            raw_meta, exists = replies[2 * index], replies[2 * index + 1]
            if not exists or not access.may_see(jobreads.owner_in(raw_meta), caller):
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
            name = queue_key.removeprefix(keys.QUEUE_PREFIX)
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
                pipe.hget(keys.job(entry["id"]), "status")
            statuses = pipe.execute()
        return [
            {**entry, "status": status.decode() if status else entry["status"]}
            for entry, status in zip(created, statuses, strict=True)
        ]

    # -- reading, cancel and retry ------------------------------------------------------------

    def load(self, job_id: str, caller: Caller) -> tuple[Job, Any, str | None]:
        """(job, latest result, last event id), or NotFound, also for a job the caller may not see."""
        job, results, last_event_id = jobreads.read(self.connection, job_id, results=1)
        if not access.may_see(job.meta.get("owner"), caller):
            raise jobreads.not_found(job_id)
        return job, (results[0] if results else None), last_event_id

    def check_visible(self, job_id: str, caller: Caller) -> None:
        """NotFound unless the job exists and the caller may see it (one HGET)."""
        jobreads.check_job_id(job_id)
        if caller is None or caller.admin:
            return
        raw_meta = self.connection.hget(keys.job(job_id), "meta")
        if not access.may_see(jobreads.owner_in(raw_meta), caller):
            raise jobreads.not_found(job_id)

    def describe(self, job_id: str, caller: Caller) -> dict[str, Any]:
        """The detail view (with attempts); NotFound for a job the caller may not see."""
        self.check_visible(job_id, caller)
        return jobreads.describe(self.connection, job_id, self.names_by_path)

    def cancel(self, job_id: str, caller: Caller) -> tuple[dict[str, Any], bool]:
        """Cancel a waiting job, or ask the worker running it to stop.

        Returns (view, stopping): `stopping` is True when a stop was requested from a worker,
        which marks the job `stopped` once it has taken effect.
        """
        job, _, _ = self.load(job_id, caller)
        status = jobreads.status_of(job)
        if status in states.CANCELABLE:
            try:
                job.cancel()
            except InvalidJobOperation as exc:
                raise Conflict(f"job {job_id} cannot be canceled: {exc}") from None
            self.events.for_job("canceled", job, status="canceled", name=jobreads.job_name(job, self.names_by_path))
            return self.describe(job_id, caller), False
        if status == "started":
            try:
                send_stop_job_command(self.connection, job.id, serializer=JSONSerializer)
            except InvalidJobOperation:
                raise Conflict(f"job {job_id} is not running on any worker right now; retry shortly") from None
            return self.describe(job_id, caller), True
        raise Conflict(f"job {job_id} has already ended (status {status}): there is nothing to cancel")

    def retry(self, job_id: str, caller: Caller) -> dict[str, str]:
        """Requeue a failed, stopped or canceled job (same id) with its original options.

        Returns the job as a submission answer: id, name, queue, status (queued)."""
        job, _, _ = self.load(job_id, caller)
        status = jobreads.status_of(job)
        if status not in states.RETRYABLE:
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
        name = jobreads.job_name(job, self.names_by_path)
        with self.connection.pipeline(transaction=False) as pipe:
            self.events.for_job("queued", job, status="queued", name=name, pipeline=pipe)
            pipe.rpush(keys.wake(job.origin), 1)  # wakes an idle worker at once
            pipe.execute()
        return {"id": job.id, "name": name, "queue": job.origin, "status": "queued"}

    def recent_ids(self, limit: int = 20) -> list[tuple[str, str, str]]:
        """(id, queue, state) of recent jobs from RQ's own queues and registries, newest first
        within each; a simple view for the CLI (the full listing is `GET /api/jobs`)."""
        registry_states = tuple(keys.REGISTRIES)
        found: list[tuple[str, str, str]] = []
        with self.connection.pipeline(transaction=False) as pipe:
            for name in self.queues:
                pipe.lrange(keys.queue(name), -limit, -1)
                for state in registry_states:
                    pipe.zrevrange(keys.registry(state, name), 0, limit - 1)
            replies = iter(pipe.execute())
        for name in self.queues:
            for job_id in reversed(next(replies)):
                found.append((job_id.decode(), name, "queued"))
            for state in registry_states:
                for entry in next(replies):
                    found.append((entry.decode().split(":")[0], name, state))
        return found[: limit * 8]


def idempotency_storage_key(key: str, caller: Caller) -> str:
    """Keys are per client: two clients using the same key never see each other's jobs."""
    scope = caller.name if caller is not None else ""
    return keys.IDEMPOTENCY_PREFIX + hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()


def _idempotency_value(fingerprint: str, created: list[dict]) -> str:
    return json.dumps({"fingerprint": fingerprint, "jobs": created}, separators=(",", ":"))


def fingerprint_of(payload: Any, route: str) -> str:
    """What makes two requests "the same" for an idempotency key: the route and the validated
    body, canonically encoded (key order and whitespace do not matter)."""
    canonical = json.dumps([route, payload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
