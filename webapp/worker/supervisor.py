"""The worker supervisor: keeps a pool of worker processes running (`python worker.py`).

It forks `WORKER_PROCESSES` workers from one warm parent (no interpreter start per job or
per worker), replaces any that die, and turns SIGTERM/SIGINT into one warm shutdown of
every child: the current jobs may finish within `WORKER_SHUTDOWN_GRACE`, no new job is taken.

It also keeps the jobs safe (see RELIABILITY.md):
- each child has a name the supervisor chose and a liveness key it refreshes every second;
- a child that dies mid-job has its job recovered at once (re-run if it has retries left,
  else failed with "worker <name> died (killed by signal 9)");
- a child whose job overran its timeout by JOB_KILL_GRACE (stuck in C code, ignoring
  SIGALRM) is killed and its job recovered with a timeout reason;
- when the grace of a shutdown is over (or on a second signal) the children are killed and
  their jobs handed back to the front of their queues, retries untouched;
- every RECOVERY_INTERVAL, under a Redis lock shared by all supervisors, the reaper
  recovers the jobs of workers that vanished without a word (lost heartbeat) and the
  reconciler requeues jobs lost between a pop and its registration;
- every STATS_SAMPLE_INTERVAL, one supervisor samples the overview charts' gauges.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context

from redis.exceptions import RedisError
from rq.queue import Queue
from rq.serializers import JSONSerializer

from webapp.infra import logs
from webapp.infra.process import die_with_parent, wait_for_redis
from webapp.infra.redis import RedisFactory
from webapp.store import keys, stats
from webapp.worker.fastworker import FastWorker
from webapp.worker.recovery import Recovery
from webapp.worker.resilience import OutageLog, patient, wait_until_writable

log = logging.getLogger("webapp.worker.supervisor")


def _keep_alive(factory: RedisFactory, config, name: str) -> None:
    """Refresh this worker's liveness key from a thread: a worker whose supervisor died
    (it got SIGTERM through PDEATHSIG and is finishing its job) is not taken for dead."""
    client = factory.client(name="jobsvc-keepalive")
    period = max(0.2, float(config["ABANDON_AFTER"]) / 5)
    while True:
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.set(keys.liveness(name), 1, px=int(float(config["ABANDON_AFTER"]) * 1000))
                pipe.sadd(keys.SUPERVISED, name)  # again: a Redis that lost its data lost this too
                pipe.execute()
        except RedisError:
            pass
        time.sleep(period)


def run_worker(create_app, burst: bool = False, name: str | None = None) -> None:
    """Body of one worker process: build the app through the factory, then work."""
    os.setpgrp()  # the supervisor alone decides when a worker stops
    die_with_parent()
    app = create_app()
    factory: RedisFactory = app.extensions["redis_factory"]
    logs.install(app.config, name or "-")
    wait_for_redis(factory)
    if name:
        threading.Thread(target=_keep_alive, args=(factory, app.config, name), daemon=True).start()
    connection = factory.client(socket_timeout=None, name="jobsvc-worker")
    wait_until_writable(connection, log)
    queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in app.config["QUEUES"]]
    # The worker class is the service's (FastWorker), with the patient end-of-job steps of
    # webapp/worker/resilience.py for what goes through RQ's own code, and the name this
    # supervisor chose (RQ also names its connection after it: CLIENT SETNAME).
    worker = patient(FastWorker).from_app(app, connection, queues, name=name)
    worker.redis_patience = float(app.config["WORKER_REDIS_PATIENCE"])
    worker.max_connection_wait_time = 5.0  # back at work within 5 s of Redis returning
    worker.work(burst=burst, logging_level=app.config["LOG_LEVEL"], with_scheduler=False)


@dataclass
class Child:
    """One worker process and what the supervisor knows about it."""

    process: object
    name: str
    killed_for: str | None = None  # why the supervisor killed it, if it did
    hand_back: bool = False  # killed by a cold shutdown: its job goes back to its queue
    started: float = field(default_factory=time.monotonic)


def exit_reason(name: str, exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        signum = -exitcode
        try:
            label = signal.Signals(signum).name
        except ValueError:
            label = f"signal {signum}"
        return f"worker {name} died (killed by signal {signum}, {label})"
    return f"worker {name} died (exit status {exitcode})"


class Supervisor:
    """Keeps `processes` worker processes alive and shuts them down warmly on a signal."""

    restart_delay = 1.0
    beat_every = 1.0

    def __init__(
        self,
        create_app,
        processes: int = 1,
        burst: bool = False,
        grace: float = 25.0,
        config=None,
        factory: RedisFactory | None = None,
    ):
        self.create_app = create_app
        self.processes = processes
        self.burst = burst
        self.grace = grace
        self.children: dict[int, Child] = {}
        self.stopping = 0
        self.cold_at: float | None = None
        self.context = get_context("fork")
        self.config = config
        self.recovery: Recovery | None = None
        if config is not None:
            factory = factory or RedisFactory(config)
            self.recovery = Recovery(factory.client(name="jobsvc-supervisor"), dict(config))
        self.prefix = f"{socket.gethostname().split('.')[0]}-{os.getpid()}"
        self.sequence = 0
        self.pending: dict[str, tuple[str, bool]] = {}  # dead worker -> (reason, hand back)
        self.recovery_outage = OutageLog(log, "recovering the jobs of dead workers")
        self.next_beat = 0.0
        self.next_pass = 0.0
        self.next_sample = 0.0
        self.replace_at: list[float] = []
        self.redis_ok_since: float | None = 0.0  # the start-up pass need not wait

    def _spawn(self) -> None:
        self.sequence += 1
        name = f"{self.prefix}-{self.sequence}"
        if self.recovery is not None:
            try:
                self.recovery.register_supervised([name])
            except RedisError as exc:
                log.warning("could not register worker %s (%s); starting it anyway", name, exc)
        process = self.context.Process(target=run_worker, args=(self.create_app, self.burst, name), daemon=False)
        process.start()
        self.children[process.pid] = Child(process, name)
        log.info("worker process %d (%s) started", process.pid, name)

    def _signal_children(self, signum: int = signal.SIGTERM) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _kill(self, pid: int, reason: str | None, hand_back: bool = False) -> None:
        child = self.children.get(pid)
        if child is None:
            return
        child.killed_for = reason
        child.hand_back = hand_back
        try:
            os.killpg(pid, signal.SIGKILL)  # the child leads its own process group
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _on_signal(self, signum, frame) -> None:
        self.stopping += 1
        # First signal: warm shutdown (current jobs may finish within the grace period).
        # A second signal, or the grace running out, makes it cold.
        if self.stopping == 1:
            self.cold_at = time.monotonic() + self.grace
        log.info(
            "%s: %s shutdown of %d worker(s)",
            signal.Signals(signum).name,
            "warm" if self.stopping == 1 else "cold",
            len(self.children),
        )
        if self.stopping == 1:
            self._signal_children()
        elif self.stopping == 2:
            self._go_cold()

    def _go_cold(self) -> None:
        """Stop the jobs still running and hand them back to their queues."""
        for pid, child in list(self.children.items()):
            self._kill(pid, f"worker {child.name} was stopped by a shutdown before its job ended", hand_back=True)

    # -- the loop's duties --------------------------------------------------------------

    def _collect_exits(self) -> None:
        for pid, child in list(self.children.items()):
            child.process.join(timeout=0)
            exitcode = child.process.exitcode
            if exitcode is None:
                continue
            del self.children[pid]
            if exitcode == 0 and not child.killed_for:
                # A clean exit leaves no job behind, unless the worker gave up on Redis mid-job.
                self.pending[child.name] = (f"worker {child.name} exited before its job ended", False)
            else:
                reason = child.killed_for or exit_reason(child.name, exitcode)
                self.pending[child.name] = (reason, child.hand_back)
                log.warning("worker process %d (%s): %s", pid, child.name, reason)
            if self.stopping or self.burst:
                continue
            log.warning("starting a replacement for worker process %d in %g s", pid, self.restart_delay)
            # Not slept here: the dead worker's job is recovered first, in this same turn.
            self.replace_at.append(time.monotonic() + self.restart_delay)

    def _replace_dead(self) -> None:
        due = [moment for moment in self.replace_at if moment <= time.monotonic()]
        for moment in due:
            self.replace_at.remove(moment)
            if not self.stopping:
                self._spawn()

    def _recover_pending(self) -> None:
        if not self.pending or self.recovery is None:
            self.pending.clear()
            return
        try:
            dead = {name: reason for name, (reason, _) in self.pending.items() if reason}
            handed_back = {name for name, (_, hand_back) in self.pending.items() if hand_back}
            if dead:
                self.recovery.recover(dead, handed_back=handed_back)
            with self.recovery.connection.pipeline() as pipe:
                for name in self.pending:
                    self.recovery.forget_worker(name, pipe)
                pipe.execute()
            self.pending.clear()
            self.recovery_outage.succeeded()
        except RedisError as exc:
            self.recovery_outage.failed(exc)

    def _watch_timeouts(self) -> None:
        """Kill a child whose job ran past its timeout + JOB_KILL_GRACE (SIGALRM ignored).

        The running jobs are read from the started registries (RQ's data model), so this
        works whatever worker class the children run."""
        if self.recovery is None or not self.children:
            return
        connection = self.recovery.connection
        grace = float(self.config["JOB_KILL_GRACE"])
        ours = {child.name: pid for pid, child in self.children.items() if not child.killed_for}
        executions = self.recovery.running_executions()
        running = [(job_id, ours[worker]) for _, job_id, _, worker in executions if worker in ours]
        if not running:
            return
        with connection.pipeline(transaction=False) as pipe:
            for job_id, _ in running:
                pipe.hmget(keys.job(job_id), "started_at", "timeout", "status")
            replies = pipe.execute()
        for (job_id, pid), (started_at, timeout, status) in zip(running, replies, strict=True):
            if status != b"started" or not started_at or not timeout or float(timeout) < 0 or pid not in self.children:
                continue
            began = datetime.fromisoformat(started_at.decode().replace("Z", "+00:00")).timestamp()
            overrun = time.time() - began
            if overrun > float(timeout) + grace:
                name = self.children[pid].name
                reason = (
                    f"job exceeded its timeout of {float(timeout):g} s and did not stop (stuck outside Python?); "
                    f"worker {name} was killed after {overrun:.0f} s"
                )
                log.error("job %s: %s", job_id, reason)
                self._kill(pid, reason)

    def _duties(self) -> None:
        """The Redis-side duties of one loop turn; a Redis outage only postpones them."""
        if self.recovery is None:
            return
        moment = time.monotonic()
        try:
            if moment >= self.next_beat:
                self.next_beat = moment + self.beat_every
                self.recovery.beat([child.name for child in self.children.values() if not child.killed_for])
                self._watch_timeouts()
            self._recover_pending()
            if self.redis_ok_since is None:
                self.redis_ok_since = moment
            # After an outage, give every live worker ABANDON_AFTER to refresh its liveness
            # before judging anyone by it: their keys may have expired while Redis was away.
            settled = moment - self.redis_ok_since >= float(self.config["ABANDON_AFTER"])
            if moment >= self.next_pass and not self.burst and settled:
                self.next_pass = moment + float(self.config["RECOVERY_INTERVAL"])
                self.recovery.run_pass()
            if moment >= self.next_sample:
                # The overview charts' gauges: one supervisor per interval samples (a Redis claim).
                interval = float(self.config["STATS_SAMPLE_INTERVAL"])
                self.next_sample = moment + interval
                stats.sample_if_due(self.recovery.connection, self.config["QUEUES"], interval)
        except RedisError as exc:
            self.redis_ok_since = None
            log.debug("Redis duties postponed: %s", exc)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for _ in range(self.processes):
            self._spawn()
        give_up_at = None
        while self.children or self.pending or (self.replace_at and not self.stopping):
            self._collect_exits()
            if self.cold_at is not None and time.monotonic() > self.cold_at and self.stopping < 2:
                log.warning("shutdown grace of %g s is over; handing the jobs still running back", self.grace)
                self.stopping = 2
                self._go_cold()
            self._duties()
            self._replace_dead()
            if not self.children and self.pending and not (self.replace_at and not self.stopping):
                # Only bookkeeping is left: give Redis a few seconds, then leave it to the reaper.
                # Stopping, half a second: the grace period is spent, and a process manager
                # (honcho: 5 s after Ctrl-C) kills what is still running soon after. Never while
                # a replacement is due: the supervisor goes on, and the bookkeeping with it.
                give_up_at = give_up_at or time.monotonic() + (0.5 if self.stopping else 10.0)
                if time.monotonic() > give_up_at:
                    log.error("Redis unreachable; the reaper of another worker.py will recover %s", list(self.pending))
                    break
            else:
                give_up_at = None
            time.sleep(0.1)
        log.info("all worker processes stopped")
        return 0
