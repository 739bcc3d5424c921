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
from redis.client import Pipeline
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job
from rq.serializers import JSONSerializer

from webapp.infra.errors import Conflict
from webapp.service import access
from webapp.service.access import Caller
from webapp.service.backoff import backoff_delays
from webapp.service.catalog import Catalog
from webapp.service.planning import PlannedJob, Planner
from webapp.service.submission import SubmitRequest
from webapp.service.submit import Submitter
from webapp.store import jobreads, keys, limits, listing, overview, states
from webapp.store import waiting as waiting_jobs
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

    def load(self, job_id: str, caller: Caller) -> Job:
        """The job as RQ's Job, or NotFound, also for a job the caller may not see."""
        job = jobreads.load(self.connection, job_id)
        if not access.may_see(job.meta.get("owner"), caller):
            raise jobreads.not_found(job_id)
        return job

    def check_visible(self, job_id: str, caller: Caller) -> None:
        """NotFound unless the job exists and the caller may see it (one HGET)."""
        jobreads.check_job_id(job_id)
        if caller is None or caller.sees_all:
            return
        raw_meta = self.connection.hget(keys.job(job_id), "meta")
        if not access.may_see(jobreads.owner_in(raw_meta), caller):
            raise jobreads.not_found(job_id)

    def workers(self, caller: Caller) -> list[dict[str, Any]]:
        """Every registered worker. An owner key sees a worker's current job only when the job
        is its own: another owner's job ids are not its to know (they answer 404 everywhere)."""
        views = overview.workers(self.connection)
        if caller is None or caller.sees_all:
            return views
        running = [view for view in views if view["current_job"]]
        with self.connection.pipeline(transaction=False) as pipe:
            for view in running:
                pipe.hget(keys.job(view["current_job"]), "meta")
            metas = pipe.execute()
        for view, raw_meta in zip(running, metas, strict=True):
            if not access.may_see(jobreads.owner_in(raw_meta), caller):
                view["current_job"] = None
        return views

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
        job = self.load(job_id, caller)
        status = jobreads.status_of(job)
        if status in states.CANCELABLE:
            with self.connection.pipeline(transaction=False) as pipe:
                if self.cancel_waiting([(job, status)], pipe):
                    raise Conflict(f"job {job_id} is no longer {status}: a worker may have taken it; look again")
                pipe.execute()
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
        job = self.load(job_id, caller)
        status = jobreads.status_of(job)
        if status == "started":
            raise Conflict(f"job {job_id} is running: cancel it first (POST /api/jobs/{job_id}/cancel), then delete it")
        with self.connection.pipeline(transaction=False) as pipe:
            self.delete_loaded(job, status, pipe)
            pipe.execute()

    def retry(self, job_id: str, caller: Caller) -> dict[str, str]:
        """Requeue a failed, stopped or canceled job (same id) with its original options.

        Returns the job as a submission answer: id, name, queue, status (queued)."""
        access.check_may_write(caller)
        job = self.load(job_id, caller)
        status = jobreads.status_of(job)
        if status not in states.RETRYABLE:
            raise Conflict(f"job {job_id} is {status}: only failed, stopped or canceled jobs can be retried")
        with self.connection.pipeline(transaction=False) as pipe:
            if self.requeue_ended([(job, status)], pipe):
                raise Conflict(f"job {job_id} is no longer {status}; it may have been retried already")
            pipe.execute()
        name = jobreads.job_name(job, self.names_by_path)
        return {"id": job.id, "name": name, "queue": job.origin, "status": "queued"}

    # -- the one code path of cancel, delete and retry, for one job or many (service/bulk.py) ------
    # Each takes a job already read and checked (visible to the caller, in a status that allows
    # the action), does RQ's part, and queues the job's event on `pipe`, which the caller runs:
    # one round trip for the events of a whole page of jobs. Jobs that changed meanwhile are returned.

    def cancel_waiting(self, waiting: list[tuple[Job, str]], pipe: Pipeline) -> list[Job]:
        """Cancel queued, scheduled or deferred jobs (each with its status as read); their
        `canceled` events go on `pipe`. Returns the jobs that changed meanwhile (left alone).

        Queued jobs are canceled in one pipelined round trip (store/waiting.py: only if still in
        their queue, so a job a worker took meanwhile is never marked canceled); scheduled and
        deferred ones through RQ's `Job.cancel`, which takes them out of their registry."""
        changed: list[Job] = []
        queued = [job for job, status in waiting if status == "queued"]
        if queued:
            with self.connection.pipeline(transaction=False) as take:
                for job in queued:
                    waiting_jobs.cancel_queued(take, job.id, job.origin)
                taken = take.execute()
            changed += [job for job, done in zip(queued, taken, strict=True) if not done]
        taken_by_others = {job.id for job in changed}
        for job, status in waiting:
            if status == "queued":
                if job.id in taken_by_others:
                    continue
            else:
                try:
                    job.cancel()
                except InvalidJobOperation:
                    changed.append(job)
                    continue
                limits.unpark(self.connection, job)  # a job parked by its limit key leaves the key's list
            name = jobreads.job_name(job, self.names_by_path)
            self.events.for_job("canceled", job, status="canceled", name=name, pipeline=pipe)
        return changed

    def delete_loaded(self, job: Job, status: str, pipe: Pipeline) -> None:
        """Delete a job that is not running: RQ's deletes (its queue entry when it is queued, its
        registries, hash, results), its `deleted` event and its index entries, all on `pipe`."""
        name = jobreads.job_name(job, self.names_by_path)
        job.delete(pipeline=pipe, remove_from_queue=status == "queued", delete_dependents=False)
        if status == "deferred":
            limits.unpark(self.connection, job)  # a job parked by its limit key leaves the key's list
        self.events.for_job("deleted", job, status="deleted", name=name, pipeline=pipe)
        pipe.delete(keys.job_events(job.id))
        for index_set in listing.index_keys(job.origin, job.meta.get("name"), job.meta.get("owner")):
            pipe.zrem(index_set, job.id)

    def requeue_ended(self, ended: list[tuple[Job, str]], pipe: Pipeline) -> list[Job]:
        """Requeue failed, stopped or canceled jobs (each with its status as read) under their ids.

        Each job is first claimed by taking it out of its registry (one pipelined round trip for
        all of them, as RQ's `registry.requeue` does per job): one claimed by someone else
        meanwhile is returned, untouched. The claimed ones are written back to their queues as
        RQ writes a requeued job, with their `queued` events and a worker wake-up, on `pipe`.
        """
        with self.connection.pipeline(transaction=False) as claim:
            for job, status in ended:
                claim.zrem(keys.registry("canceled" if status == "canceled" else "failed", job.origin), job.id)
            claimed = claim.execute()
        changed = []
        for (job, _), taken in zip(ended, claimed, strict=True):
            if not taken:
                changed.append(job)  # someone else requeued or removed it between our read and this one
                continue
            job.meta.pop("error", None)
            job.meta.pop("progress", None)
            planned = job.meta.get("retry")
            if planned and planned.get("backoff"):
                # A backoff is planned afresh: its full count of retries, with new draws.
                job.retries_left = planned["max"]
                job.retry_intervals = backoff_delays(planned["max"], planned["backoff"])
            job.started_at = job.ended_at = None
            job._exc_info = ""  # as RQ's registry.requeue
            queue = self.queues.get(job.origin) or Queue(
                job.origin, connection=self.connection, serializer=JSONSerializer
            )
            if job.has_rate_limit:
                queue._enqueue_rate_limited_job(job)  # RQ's own limiter takes its own path
            else:
                queue._enqueue_job(job, pipeline=pipe)
            name = jobreads.job_name(job, self.names_by_path)
            self.events.for_job("queued", job, status="queued", name=name, pipeline=pipe)
            pipe.rpush(keys.wake(job.origin), 1)  # wakes an idle worker at once
        return changed

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
