"""Recovery of jobs whose worker died: the reaper and the reconciler.

Everything here works from RQ's own data model, so it works with any worker class:
- each queue's StartedJobRegistry (`rq:wip:<queue>`) lists running executions as
  `<job id>:<execution id>`; the execution hash names its worker (the job hash too);
- a supervised worker is alive while its supervisor refreshes its liveness key (every
  second, expiring after ABANDON_AFTER); a worker not started by a supervisor is alive while
  RQ's own worker key exists (webapp/store/keys.py names both).

`Recovery.recover(dead)` hands every execution of a dead worker to `_recover_one`, which
claims it (ZREM from the started registry: whoever removes the entry owns the job, so two
supervisors never recover the same job) and then, in one transaction:
- a job that had started: re-run if it has retries left (RQ's `retries_left`, the attempt
  is recorded as a RETRIED result carrying the reason), else failed with the reason;
- a job handed back by a cold shutdown: requeued at the front, its retries untouched;
- a job popped but never started: requeued at the front.
Events `abandoned` then `retrying` / `failed` are written in the same transaction, and a job
with a limit gives its key's slot back there too (webapp/store/limits.py).

`Recovery.reconcile()` closes RQ's multi-queue dequeue window (BLPOP, then register the
execution: a worker killed in between leaves a `queued` job in no list and no registry).
It walks the live-job index (kept by the event script) a bounded batch at a time and
requeues a queued job found nowhere twice, a few seconds apart.

`Recovery.sweep_index()`, the pass's last step, drops the ids of expired jobs from the listing
index sets, a bounded number per set that keeps up with the submissions
(webapp/store/indexsweep.py): the submit path only adds to them.
"""

from __future__ import annotations

import logging
import time
import uuid

from redis import Redis
from redis.exceptions import RedisError, WatchError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.queue import Queue
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import now, parse_composite_key, utcformat

from webapp.store import indexsweep, keys, limits, scripts, states
from webapp.store.events import EventLog
from webapp.store.jobreads import job_name

log = logging.getLogger("webapp.worker.recovery")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))


class Recovery:
    """Finds and recovers the jobs of dead workers for one service configuration."""

    def __init__(self, connection: Redis, config: dict, names_by_path: dict[str, str] | None = None):
        self.connection = connection
        self.config = config
        self.queues = {name: Queue(name, connection=connection, serializer=JSONSerializer) for name in config["QUEUES"]}
        self.events = EventLog.from_config(connection, config)
        self.names_by_path = names_by_path or {}
        self.abandon_after = float(config["ABANDON_AFTER"])
        self.lock_token = uuid.uuid4().hex
        self._requeue_orphan = scripts.script("requeue_orphan")
        self._release = scripts.script("release_lock")

    # -- liveness ---------------------------------------------------------------------

    def register_supervised(self, names: list[str]) -> None:
        """Mark workers as supervised: from now on only their liveness key says they live."""
        if names:
            with self.connection.pipeline() as pipe:
                pipe.sadd(keys.SUPERVISED, *names)
                for name in names:
                    pipe.set(keys.liveness(name), 1, px=int(self.abandon_after * 1000))
                pipe.execute()

    def beat(self, names: list[str]) -> None:
        """Refresh the liveness keys of the given (running) workers in one round trip."""
        if names:
            with self.connection.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.set(keys.liveness(name), 1, px=int(self.abandon_after * 1000))
                pipe.execute()

    def forget_worker(self, name: str, pipe) -> None:
        """Remove a dead worker's registrations, so dashboards and metrics stop counting it."""
        pipe.delete(keys.liveness(name), keys.worker(name), keys.worker_executions(name))
        pipe.srem(keys.SUPERVISED, name)
        pipe.srem(keys.WORKERS, keys.worker(name))
        for queue_name in self.queues:
            pipe.srem(keys.workers_by_queue(queue_name), keys.worker(name))

    def _dead_workers(self, names: set[str]) -> dict[str, str]:
        """Which of these workers are dead, each with the reason it is considered so."""
        ordered = sorted(name for name in names if name)
        if not ordered:
            return {}
        with self.connection.pipeline(transaction=False) as pipe:
            for name in ordered:
                pipe.exists(keys.liveness(name))
                pipe.sismember(keys.SUPERVISED, name)
                pipe.exists(keys.worker(name))
            replies = pipe.execute()
        dead = {}
        for index, name in enumerate(ordered):
            alive, supervised, registered = replies[3 * index : 3 * index + 3]
            if alive:
                continue
            if supervised:
                dead[name] = f"worker {name} lost heartbeat (no sign of life for {self.abandon_after:g} s)"
            elif not registered:
                dead[name] = f"worker {name} lost heartbeat (its RQ registration expired)"
        return dead

    # -- the reaper ---------------------------------------------------------------------

    def running_executions(self) -> list[tuple[str, str, str, str]]:
        """Every registered execution as (queue, job id, execution id, worker name)."""
        entries = []
        with self.connection.pipeline(transaction=False) as pipe:
            for queue in self.queues.values():
                pipe.zrange(keys.registry("started", queue.name), 0, -1)
            per_queue = pipe.execute()
        for queue_name, members in zip(self.queues, per_queue, strict=True):
            for member in members:
                job_id, execution_id = parse_composite_key(_text(member))
                entries.append((queue_name, job_id, execution_id))
        if not entries:
            return []
        with self.connection.pipeline(transaction=False) as pipe:
            for _, job_id, execution_id in entries:
                pipe.hget(keys.execution(job_id, execution_id), "worker_name")
                pipe.hget(keys.job(job_id), "worker_name")
            names = pipe.execute()
        return [
            (queue_name, job_id, execution_id, _text(names[2 * index]) or _text(names[2 * index + 1]))
            for index, (queue_name, job_id, execution_id) in enumerate(entries)
        ]

    def recover(self, dead: dict[str, str] | None = None, handed_back: set[str] | frozenset = frozenset()) -> int:
        """Recover the executions of dead workers; returns how many jobs were recovered.

        `dead` maps worker names known dead (e.g. a supervisor saw the exit) to the reason;
        without it, workers are judged by their liveness. Workers in `handed_back` were
        stopped by a cold shutdown: their jobs go back to the front of their queue.
        """
        executions = self.running_executions()
        known = dict(dead or {})
        if dead is None:
            known = self._dead_workers({worker for *_, worker in executions})
        recovered = 0
        for queue_name, job_id, execution_id, worker in executions:
            if worker in known:
                if self._recover_one(queue_name, job_id, execution_id, worker, known[worker], worker in handed_back):
                    recovered += 1
        return recovered

    def recover_lost_executions(self, worker: str, holding: set[str], reason: str) -> int:
        """Recover what a live worker's execution index lists but the worker does not hold
        (`holding`: its executions as `<job id>:<execution id>`): a claim whose reply never
        reached it, or an end that Redis lost (a failover to a replica the write had not reached
        yet, a restart that lost the last second of the append-only file). The reaper never
        looks at a live worker's jobs, and the started registry's own expiry comes a job timeout
        later. Index entries that name no registered execution are dropped."""
        index = keys.worker_executions(worker)
        recovered = 0
        for member in self.connection.smembers(index):
            composite = _text(member)
            if composite in holding:
                continue
            job_id, execution_id = parse_composite_key(composite)
            queue_name = _text(self.connection.hget(keys.job(job_id), "origin"))
            if queue_name in self.queues:
                if self._recover_one(queue_name, job_id, execution_id, worker, reason, hand_back=False):
                    recovered += 1
                    continue
                if self.connection.zscore(keys.registry("started", queue_name), composite) is not None:
                    continue  # changed meanwhile: left for the next look
            self.connection.srem(index, composite)
        return recovered

    def forget_lost_workers(self) -> int:
        """Unregister supervised workers whose liveness expired (e.g. their machine vanished)."""
        names = {_text(name) for name in self.connection.smembers(keys.SUPERVISED)}
        lost = self._dead_workers(names)
        if lost:
            with self.connection.pipeline() as pipe:
                for name in lost:
                    self.forget_worker(name, pipe)
                pipe.execute()
        return len(lost)

    def _recover_one(
        self, queue_name: str, job_id: str, execution_id: str, worker: str, reason: str, hand_back: bool
    ) -> bool:
        queue = self.queues[queue_name]
        composite = f"{job_id}:{execution_id}"
        wip_key = keys.registry("started", queue.name)
        execution_key = keys.execution(job_id, execution_id)
        # The claim and the recovery are one transaction watched on the job's hash: if the
        # worker finishes the job meanwhile, or another supervisor recovers it first, the
        # job's hash changes and this attempt is dropped. A supervisor that dies halfway
        # leaves everything as it was for the next pass.
        with self.connection.pipeline() as pipe:
            try:
                pipe.watch(keys.job(job_id))
                if pipe.zscore(wip_key, composite) is None:
                    return False
                try:
                    job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
                except NoSuchJobError:
                    pipe.multi()
                    pipe.zrem(wip_key, composite)
                    pipe.delete(execution_key)
                    pipe.execute()
                    return False
                pipe.multi()
                outcome = self._recovery_steps(pipe, queue, job, execution_id, worker, reason, hand_back)
                limit_key = limits.limit_key(job.meta)
                if limit_key:  # the dead worker's slot is given back, the key's next job woken
                    limits.release(pipe, limit_key, job.id)
                pipe.zrem(wip_key, composite)
                pipe.delete(execution_key)
                pipe.zrem(keys.executions(job_id), execution_id)
                pipe.srem(keys.worker_executions(worker), composite)
                if outcome:
                    pipe.hincrby(keys.METRICS_RECOVERY, outcome, 1)
                if outcome in ("requeued_unstarted", "handed_back", "retried"):
                    pipe.rpush(keys.wake(queue.name), 1)  # wakes an idle FastWorker at once
                pipe.execute()
            except WatchError:
                return False
        if outcome:
            log.warning("job %s on %s: %s -> %s", job_id, queue_name, reason, outcome.replace("_", " "))
        return outcome is not None

    def _recovery_steps(self, pipe, queue: Queue, job: Job, execution_id: str, worker: str, reason: str,
                        hand_back: bool) -> str | None:  # fmt: skip
        """Queue on `pipe` what recovering `job` takes; returns the outcome's name."""
        status = job.get_status(refresh=False)
        where = {"job_id": job.id, "name": job_name(job, self.names_by_path), "queue": queue.name,
                 "owner": job.meta.get("owner"), "schedule": job.meta.get("schedule"),
                 "webhook": job.meta.get("webhook"), "pipeline": pipe}  # fmt: skip
        if status == JobStatus.QUEUED:
            # Popped and registered, but the job never started: nothing ran, nothing to count.
            queue._enqueue_job(job, pipeline=pipe, at_front=True)
            return "requeued_unstarted"
        if status != JobStatus.STARTED:
            return None  # it ended; only the registry entry was left
        # Like every writer of `abandoned` (see webapp.events), the event carries the status the
        # job has once recovered: queued when it runs again, failed otherwise.
        again = hand_back or bool(job.retries_left and job.retries_left > 0)
        error = {"type": _error_type(reason), "message": reason}
        self.events.append("abandoned", status="queued" if again else "failed", worker=worker, reason=reason,
                           error=error, **where)  # fmt: skip
        if hand_back:
            queue._enqueue_job(job, pipeline=pipe, at_front=True)
            self.events.append("retrying", status="queued", handed_back=True, worker=worker, reason=reason, **where)
            return "handed_back"
        if job.retries_left and job.retries_left > 0:
            keep = job.failure_ttl or self.config["FAILURE_TTL"]
            Result.create(job, Result.Type.RETRIED, keep, exc_string=reason, worker_name=worker, pipeline=pipe,
                          execution_id=execution_id, execution_started_at=job.started_at,
                          execution_ended_at=now())  # fmt: skip
            job.retry(queue, pipe)
            self.events.append("retrying", status="queued", retries_left=job.retries_left, worker=worker,
                               reason=reason, **where)  # fmt: skip
            return "retried"
        job.meta["error"] = error
        pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
        record_job_failure(job, reason, pipe)
        pipe.hset(job.key, "ended_at", utcformat(now()))
        self.events.append("failed", status="failed", ttl=job.failure_ttl, error=job.meta["error"], **where)
        return "failed"

    # -- the reconciler -----------------------------------------------------------------

    def reconcile(self, older_than: float | None = None, batch: int = 200) -> int:
        """Requeue queued jobs that are in no queue list and have no execution.

        Looks at up to `batch` entries of the live index not checked for `older_than`
        seconds, so one pass costs a bounded number of commands whatever the backlog.
        A job is requeued on its second sighting, so a worker between its pop and its
        registration (a few milliseconds) is never mistaken for a dead one.
        """
        older_than = self.abandon_after if older_than is None else older_than
        cutoff = time.time() - older_than
        candidates = self.connection.zrangebyscore(keys.LIVE, "-inf", cutoff, start=0, num=batch)
        job_ids = [_text(job_id) for job_id in candidates]
        if not job_ids:
            return 0
        with self.connection.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(keys.job(job_id), "status", "origin")
                pipe.zcard(keys.executions(job_id))
            replies = pipe.execute()
        suspects, done, checked = [], [], []
        for index, job_id in enumerate(job_ids):
            (status, origin), executions = replies[2 * index], replies[2 * index + 1]
            status, origin = _text(status), _text(origin)
            if not status or status in states.TERMINAL:
                done.append(job_id)
            elif status == "queued" and origin in self.queues and not executions:
                suspects.append((job_id, origin))
            else:
                checked.append(job_id)
        if suspects:
            with self.connection.pipeline(transaction=False) as pipe:
                for job_id, origin in suspects:
                    pipe.lpos(self.queues[origin].key, job_id)
                positions = pipe.execute()
            for (job_id, origin), position in zip(suspects, positions, strict=True):
                if position is not None:
                    checked.append(job_id)
                    self.connection.delete(keys.orphan_mark(job_id))
                    continue
                if self.connection.set(keys.orphan_mark(job_id), 1, nx=True, ex=3600):
                    continue  # first sighting: look again on the next pass
                requeued = self._requeue_orphan(
                    keys=[keys.job(job_id), keys.queue(origin), keys.executions(job_id)],
                    args=[job_id],
                    client=self.connection,
                )
                self.connection.delete(keys.orphan_mark(job_id))
                checked.append(job_id)
                if requeued:
                    self.connection.hincrby(keys.METRICS_RECOVERY, "orphan_requeued", 1)
                    self.connection.rpush(keys.wake(origin), 1)
                    log.warning("job %s was queued but in no queue nor registry; requeued on %s", job_id, origin)
        with self.connection.pipeline(transaction=False) as pipe:
            if done:
                pipe.zrem(keys.LIVE, *done)
            if checked:
                pipe.zadd(keys.LIVE, dict.fromkeys(checked, time.time()), xx=True)
            pipe.execute()
        return len(suspects)

    # -- the listing index's sweep ------------------------------------------------------

    def sweep_index(self) -> dict[str, int]:
        """Drop ids whose job hash is gone from the listing index sets, a bounded number per set
        (webapp/store/indexsweep.py): every job, per queue, per job name, and the owner and
        schedule sets the submit path registers. Returns the entries checked per set."""
        known = [keys.index_by_queue(name) for name in self.queues]
        known += [keys.index_by_name(name) for name in set(self.names_by_path.values())]
        return indexsweep.sweep(self.connection, known)

    # -- one pass, for whichever process runs it ------------------------------------

    def run_pass(self, dead: dict[str, str] | None = None) -> int:
        """One reaper pass under the shared lock; returns the jobs recovered (0 if another
        process holds the lock). Safe to call from any number of supervisors."""
        interval_ms = int(float(self.config["RECOVERY_INTERVAL"]) * 1000)
        if not self.connection.set(keys.REAPER_LOCK, self.lock_token, nx=True, px=max(1000, 3 * interval_ms)):
            return 0
        try:
            recovered = self.recover(dead)
            self.forget_lost_workers()
            self.connection.delete(keys.RUN_STARTED_LEGACY)  # left by an earlier version, if any
            self.reconcile()
            self.sweep_index()
            return recovered
        finally:
            try:
                self._release(keys=[keys.REAPER_LOCK], args=[self.lock_token], client=self.connection)
            except RedisError:
                pass


def _error_type(reason: str) -> str:
    if "lost by Redis" in reason:
        return "LostByRedis"
    if "timeout" in reason:
        return "JobTimeoutException"
    if "heartbeat" in reason:
        return "LostHeartbeat"
    return "WorkerDied"
