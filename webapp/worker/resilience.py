"""Worker behaviour through a Redis outage (or a full Redis, which refuses writes): the finish
bookkeeping waits for Redis, the background loops say once that Redis is gone and once that it
is back, and a worker process starting meanwhile waits instead of dying and being restarted.

A job that ends while Redis is unreachable would otherwise lose its outcome: RQ logs the
failed write and moves on, and the job would later be found abandoned and run again. The
mixin retries the end-of-job bookkeeping (success, failure, exception record) with backoff
for up to WORKER_REDIS_PATIENCE seconds, and skips a retry whose write did land (the job is
already terminal). It wraps whichever worker class the supervisor runs.
"""

from __future__ import annotations

import logging
import time

from redis import Redis

from webapp.infra.redis import REDIS_UNAVAILABLE, unavailable_reason
from webapp.store.health import probe_writes
from webapp.store.states import TERMINAL

log = logging.getLogger("webapp.worker.resilience")


# The longest pause between two tries while Redis is away: a worker takes jobs again within it
# once Redis is back.
REDIS_RETRY_MAX = 5.0


class PatientFinishMixin:
    """Retries the end-of-job steps (`handle_execution_ended`, `handle_exception`,
    `handle_job_success`, `handle_job_failure`) while Redis is unreachable or full."""

    redis_patience = 120.0

    def _patiently(self, step: str, job, call, *args, **kwargs):
        deadline = time.monotonic() + self.redis_patience
        delay = 0.2
        first = True
        while True:
            try:
                if not first and step in ("success", "failure"):
                    status = self.connection.hget(job.key, "status")
                    if status is not None and status.decode() in TERMINAL:
                        log.info("job %s: its %s was recorded before Redis went away", job.id, step)
                        return None
                first = False
                return call(*args, **kwargs)
            except REDIS_UNAVAILABLE as exc:
                if time.monotonic() > deadline:
                    log.error("job %s: Redis unavailable for %g s; its %s is not recorded", job.id, self.redis_patience,
                              step)  # fmt: skip
                    raise
                log.warning("job %s: cannot record its %s (%s); retrying in %.1f s", job.id, step,
                            unavailable_reason(exc), delay)  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def handle_execution_ended(self, job, queue, heartbeat_ttl):
        return self._patiently("end", job, super().handle_execution_ended, job, queue, heartbeat_ttl)

    def handle_exception(self, job, *exc_info):
        return self._patiently("exception", job, super().handle_exception, job, *exc_info)

    def handle_job_success(self, job, queue, started_job_registry, execution):
        return self._patiently("success", job, super().handle_job_success, job, queue, started_job_registry, execution)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):
        return self._patiently(
            "failure", job, super().handle_job_failure, job, queue, started_job_registry, exc_string, execution
        )


def patient(worker_class: type) -> type:
    """`worker_class` with the patient finish bookkeeping mixed in."""
    return type(f"Patient{worker_class.__name__}", (PatientFinishMixin, worker_class), {})


class OutageLog:
    """What a background loop (scheduler, schedule ticker, the supervisor's recovery of dead
    workers' jobs) logs through a Redis outage: one warning when it first fails, one line when it
    succeeds again, and the retries in between at debug level, not a warning every half second
    for as long as Redis is away."""

    def __init__(self, logger: logging.Logger, what: str, meanwhile: str = "retrying until Redis answers"):
        self.log = logger
        self.what = what
        self.meanwhile = meanwhile  # what the loop does until Redis takes its calls again
        self.since: float | None = None  # when the current outage began

    def failed(self, exc: Exception) -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("%s: %s; %s", self.what, unavailable_reason(exc), self.meanwhile)
        else:
            self.log.debug("%s: %s; still retrying", self.what, exc)

    def succeeded(self) -> None:
        if self.since is not None:
            self.log.info("%s: Redis answers again, after %.1f s", self.what, time.monotonic() - self.since)
            self.since = None


def wait_until_writable(connection: Redis, logger: logging.Logger, interval: float = 0.5) -> None:
    """Block while Redis refuses writes (full, or unable to save), saying so every few seconds: RQ's
    worker registers itself with writes as it starts, and a full Redis would make it die and its
    supervisor restart it every second, a traceback each time (webapp/store/health.py probes)."""
    next_note = 0.0
    while True:
        try:
            probe_writes(connection)
            return
        except REDIS_UNAVAILABLE as exc:
            if time.monotonic() >= next_note:
                logger.warning("not starting work yet: %s; waiting", unavailable_reason(exc))
                next_note = time.monotonic() + 10
            time.sleep(interval)
