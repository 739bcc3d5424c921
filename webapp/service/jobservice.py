"""The job service: submit, look up, cancel and retry jobs, for a caller given explicitly.

Submission runs in two steps. `plan` (webapp/service/planning.py) checks a request
completely without touching Redis; `enqueue` (webapp/service/submit.py) then writes all the
planned jobs in one round trip behind the admission checks.

Every operation takes the caller (`webapp.service.access.Caller`) as a required argument: a
client key sees and manages only its own jobs, whoever calls this (the API, the CLI, a test).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis import Redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.serializers import JSONSerializer

from webapp.infra.errors import Conflict
from webapp.service import access
from webapp.service.access import Caller
from webapp.service.backoff import backoff_delays
from webapp.service.catalog import Catalog
from webapp.service.planning import PlannedJob, Planner
from webapp.service.submission import SubmitRequest
from webapp.service.submit import Submitter
from webapp.store import jobreads, keys, limits, listing, states
from webapp.store.events import EventLog


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
        self.submitter = Submitter(connection, config, self.queues, self.events)
        # Enqueue planned jobs all-or-nothing for a caller (webapp/service/submit.py).
        self.enqueue = self.submitter.enqueue

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
        if caller is None or caller.sees_all:
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
        access.check_may_write(caller)
        job, _, _ = self.load(job_id, caller)
        status = jobreads.status_of(job)
        if status in states.CANCELABLE:
            try:
                job.cancel()
            except InvalidJobOperation as exc:
                raise Conflict(f"job {job_id} cannot be canceled: {exc}") from None
            limits.unpark(self.connection, job)  # a job parked by its limit key leaves the key's list
            self.events.for_job("canceled", job, status="canceled", name=jobreads.job_name(job, self.names_by_path))
            return self.describe(job_id, caller), False
        if status == "started":
            try:
                send_stop_job_command(self.connection, job.id, serializer=JSONSerializer)
            except InvalidJobOperation:
                raise Conflict(f"job {job_id} is not running on any worker right now; retry shortly") from None
            return self.describe(job_id, caller), True
        raise Conflict(f"job {job_id} has already ended (status {status}): there is nothing to cancel")

    def delete(self, job_id: str, caller: Caller) -> None:
        """Delete a job that is not running: its hash, results, timeline and index entries.

        A waiting job is taken out of its queue or registry first (as a cancel would); a running
        one is a 409: stop it first (cancel), then delete it. A `deleted` event is published.
        """
        job, _, _ = self.load(job_id, caller)
        status = jobreads.status_of(job)
        if status == "started":
            raise Conflict(f"job {job_id} is running: cancel it first (POST /api/jobs/{job_id}/cancel), then delete it")
        name = jobreads.job_name(job, self.names_by_path)
        job.delete(remove_from_queue=True, delete_dependents=False)
        limits.unpark(self.connection, job)
        with self.connection.pipeline(transaction=False) as pipe:
            self.events.for_job("deleted", job, status="deleted", name=name, pipeline=pipe)
            pipe.delete(keys.job_events(job_id))
            for index_set in listing.index_keys(job.origin, job.meta.get("name"), job.meta.get("owner")):
                pipe.zrem(index_set, job_id)
            pipe.execute()

    def retry(self, job_id: str, caller: Caller) -> dict[str, str]:
        """Requeue a failed, stopped or canceled job (same id) with its original options.

        Returns the job as a submission answer: id, name, queue, status (queued)."""
        access.check_may_write(caller)
        job, _, _ = self.load(job_id, caller)
        status = jobreads.status_of(job)
        if status not in states.RETRYABLE:
            raise Conflict(f"job {job_id} is {status}: only failed, stopped or canceled jobs can be retried")
        registry_class = CanceledJobRegistry if status == "canceled" else FailedJobRegistry
        registry = registry_class(job.origin, connection=self.connection, serializer=JSONSerializer)
        job.meta.pop("error", None)
        job.meta.pop("progress", None)
        planned = job.meta.get("retry")
        if planned and planned.get("backoff"):
            # A backoff is planned afresh: its full count of retries, with new draws.
            job.retries_left = planned["max"]
            job.retry_intervals = backoff_delays(planned["max"], planned["backoff"])
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
