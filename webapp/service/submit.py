"""Writing submissions: every planned job of a request in one round trip, behind the admission
checks (rate limit, idempotency key, queue depth: webapp/store/admission.py, lua/submit.lua).

A queued job's hash is written directly (webapp/store/jobrecord.py); a scheduled one is
recorded from RQ's own code; a job with dependencies takes RQ's own path, since RQ must read
its dependencies' states under WATCH to decide whether it waits (`deferred`).
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
from rq.job import JobStatus
from rq.utils import get_version

from webapp.infra.clock import iso
from webapp.infra.errors import Conflict, NotFound, TooManyRequests, Unavailable, ValidationFailed
from webapp.service import access
from webapp.service.access import Caller
from webapp.service.planning import PlannedJob
from webapp.service.ratelimit import RateLimit
from webapp.service.webhooks import Secrets
from webapp.store import jobreads, jobrecord, keys, listing
from webapp.store.admission import Admission, GuardedWriter
from webapp.store.events import EventLog


@dataclass
class Submission:
    """The jobs a request created, or the ones an earlier request with its idempotency key did."""

    jobs: list[dict[str, str]]
    replayed: bool = False


class Submitter:
    """Enqueues planned jobs for one app: its Redis client, queues, settings and event log."""

    def __init__(self, connection: Redis, config: Mapping[str, Any], queues: Mapping[str, Queue], events: EventLog):
        self.connection = connection
        self.config = config
        self.queues = queues
        self.events = events
        self.writer = GuardedWriter(connection)
        self.rate_limit = RateLimit.parse(config["SUBMIT_RATE_LIMIT"])
        self.webhook_secrets = Secrets(config["WEBHOOK_SECRETS"])

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
        access.check_may_write(caller)
        owner = access.owner_of(caller)
        self.check_signable(planned, owner)
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

    def _write(self, plan: PlannedJob, owner: str | None, commands: list[tuple], schedule: str | None = None) -> dict:
        """Add one job's writes (job hash, queue push or schedule, event, index) to `commands`.

        `schedule`: the periodic schedule making the job, kept in its meta, events and index."""
        meta = job_meta(plan, owner)
        if schedule is not None:
            meta["schedule"] = schedule
        queue = plan.queue
        name = plan.job_type.name
        where = {"name": name, "queue": queue.name, "owner": owner, "schedule": schedule}
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
            commands += listing.index_commands(job.id, listing.score_of(job), queue.name, name, owner, schedule)
            job_id = job.id
            commands.append(
                self.events.command("scheduled", job_id=job_id, status="scheduled", run_at=iso(plan.run_at), **where)
            )
        else:
            job_id = str(uuid.uuid4())
            now = datetime.now(UTC)
            # the job as RQ writes it, pushed on its queue, with a wake token for an idle worker
            commands.append(
                jobrecord.queued_job(
                    job_id,
                    plan.job_type.import_path,
                    plan.call_kwargs,
                    meta,
                    queue.name,
                    plan.options,
                    self.config["JOB_TIMEOUT"],
                    now,
                )
            )
            commands.append(self.events.command("queued", job_id=job_id, status="queued", **where))
            score = int(now.timestamp() * 1_000_000)
            commands += listing.index_commands(job_id, score, queue.name, name, owner, schedule)
        return {"id": job_id, "name": name, "queue": queue.name, "status": plan.initial_status}

    def check_signable(self, planned: Sequence[PlannedJob], owner: str | None) -> None:
        """A job with a webhook needs a secret to sign its deliveries with (422 otherwise)."""
        if any("webhook" in plan.meta for plan in planned) and not self.webhook_secrets.for_owner(owner):
            raise ValidationFailed(
                f"webhook: no secret signs the deliveries of {'key ' + repr(owner) if owner else 'the open API'} "
                "on this server (WEBHOOK_SECRETS); ask its operator to add one"
            )

    def job_writes(self, plan: PlannedJob, owner: str | None, schedule: str) -> tuple[list[tuple], Admission, dict]:
        """A schedule's run: the job's writes and their admission checks, for lua/schedule_tick.lua
        to run behind the schedule's guard. No rate limit or idempotency key (a tick is claimed
        exactly once by its guard); the queue-depth cap applies as to any submission."""
        if plan.run_at is not None or plan.dependency is not None:
            raise ValueError("a schedule's job is queued at its tick: no enqueue_in/at, no depends_on")
        commands: list[tuple] = []
        created = self._write(plan, owner, commands, schedule=schedule)
        admission = Admission(cost=1, depth_cap=self.config["MAX_QUEUE_DEPTH"])
        admission.added_per_queue[plan.queue.key] = 1
        return commands, admission, created

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
                meta = job_meta(plan, owner)
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
                # An unknown job id is a 404 wherever it appears (README: errors), here in the body.
                raise NotFound(
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
        """The jobs of a replayed request with their status as it is now.

        A job that no longer exists (deleted, or expired while the key is still remembered) is a
        409: the request is not enqueued again, and no answer points at a job that is gone."""
        with self.connection.pipeline(transaction=False) as pipe:
            for entry in created:
                pipe.hget(keys.job(entry["id"]), "status")
            statuses = pipe.execute()
        gone = [entry["id"] for entry, status in zip(created, statuses, strict=True) if status is None]
        if gone:
            raise Conflict(
                f"this Idempotency-Key was used for job(s) {', '.join(gone)}, which no longer exist (deleted or "
                "expired); nothing was enqueued again: use a new key to submit again"
            )
        return [
            {**entry, "status": status.decode() if status else entry["status"]}
            for entry, status in zip(created, statuses, strict=True)
        ]


def job_meta(plan: PlannedJob, owner: str | None) -> dict[str, Any]:
    """The job's meta: its name, owner, the plan's own entries and its limit. A limit key given in
    the submission belongs to the submitting API key (`<key name>/<key>`), so no client can hold
    back another's jobs through a shared key; a job type's default key is shared by everyone."""
    meta: dict[str, Any] = {"name": plan.job_type.name, **plan.meta}
    if owner is not None:
        meta["owner"] = owner
    if plan.limit is not None:
        limit = dict(plan.limit)
        if plan.limit_own and owner is not None:
            limit["key"] = f"{owner}/{limit['key']}"
        meta["limit"] = limit
    return meta


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
