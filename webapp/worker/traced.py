"""Running a job that carries a trace (webapp/infra/tracing.py): FastWorker's steps, in spans.

It is `FastWorker._perform` for such a job, with one difference: the job's end is recorded
at once, by a STEP of its own, instead of with the next claim, so the job's span ends when
its outcome is in Redis. Jobs without a traceparent never come here and pay nothing.
"""

from __future__ import annotations

import sys
import threading

from rq.timeouts import JobTimeoutException, TimerDeathPenalty
from rq.utils import now

from webapp.infra import tracing
from webapp.store.jobreads import job_name


def perform_traced(worker, queue, job, execution) -> None:
    """Run `job` in spans under its recorded traceparent; its outcome is recorded before returning."""
    trace = tracing.job_trace(job.meta, job.id, job_name(job, worker.names_by_path), job.origin,
                              getattr(job, "_claim_ns", None))  # fmt: skip
    if trace is None:  # no claim times (a job claimed by RQ's own path): run it as usual
        pending = worker._perform_plain(queue, job, execution)
        if pending is not None:
            status, _ = worker._step(pending, claim=False)
            worker._after_finish(pending, status)
        return
    in_main_thread = threading.current_thread() is threading.main_thread()
    penalty = worker.death_penalty_class if in_main_thread else TimerDeathPenalty
    try:
        with worker.app.app_context():
            try:
                with trace.step("jobsvc run"):
                    with penalty(job.timeout or worker.queue_class.DEFAULT_TIMEOUT, JobTimeoutException, job_id=job.id):
                        return_value = job.perform()
            except Exception as exc:
                trace.failed(f"{type(exc).__name__}: {exc}")
                failure = sys.exc_info()
                with trace.step("jobsvc finish"):
                    worker._finalize_failure(worker._restore_dates(job), queue, execution, failure)
                return
            job.ended_at = now()
            finish = worker._finish_args(job, execution, return_value)
            with trace.step("jobsvc finish"):
                if finish is None:  # RQ's own success path (callbacks, Retry, webhooks, ...)
                    worker._finalize_success(worker._restore_dates(job), queue, execution, return_value)
                else:
                    pending = (queue, job, execution, return_value, finish)
                    status, _ = worker._step(pending, claim=False)
                    worker._after_finish(pending, status)
    finally:
        trace.end()
