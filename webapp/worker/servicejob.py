"""The job class the workers use: RQ's Job, with a delayed retry due at its exact time.

RQ schedules in whole seconds and truncates: a retry `interval` seconds after a failure at
12:00:00.6 is due at 12:00:(interval), so it could start up to a second before its delay had
passed (a planned 1 s measured 0.45 s). Here the retry's score in the scheduled registry is
its exact due time instead; the scheduler thread (webapp/worker/scheduler.py) compares scores
with the exact time, so a retry starts after its planned delay (webapp/service/backoff.py),
within the scheduler's interval. RQ reads a fractional score as usual (rq-dashboard,
`get_scheduled_time`); RQ's own scheduler, comparing whole seconds, would move it at most a
second late, never early. The job hash is RQ's.
"""

from __future__ import annotations

from datetime import timedelta

from rq.job import Job
from rq.utils import now


class ServiceJob(Job):
    def retry(self, queue, pipeline) -> None:
        """As RQ's `Job.retry`, with a delayed retry scored at its exact due time."""
        interval = self.get_retry_interval() if self.retries_left else 0
        super().retry(queue, pipeline)  # RQ's writes: the job, its status, its whole-second score
        if interval:
            due = now() + timedelta(seconds=interval)
            connection = pipeline if pipeline is not None else self.connection
            connection.zadd(queue.scheduled_job_registry.key, {self.id: due.timestamp()})
