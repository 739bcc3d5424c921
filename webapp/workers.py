"""The service's RQ worker.

`ServiceWorker` is RQ's in-process `SimpleWorker` plus the service's duties: it runs each
job inside the Flask app context, records lifecycle events (started, progress, finished,
failed, retrying) and keeps a failure's type and message in the job's meta.
"""

from __future__ import annotations

import logging

from flask import Flask
from rq import SimpleWorker
from rq.job import Job
from rq.queue import Queue
from rq.results import Result
from rq.serializers import JSONSerializer

from webapp.events import EventLog, abandoned_handler

log = logging.getLogger("webapp.workers")


class ServiceWorker(SimpleWorker):
    """SimpleWorker that runs jobs in the app context and records their lifecycle events."""

    def __init__(self, *args, app: Flask, **kwargs):
        kwargs.setdefault("serializer", JSONSerializer)
        super().__init__(*args, **kwargs)
        self.app = app
        self.events = EventLog.from_config(self.connection, app.config)
        self.names_by_path = app.extensions["jobsvc"].names_by_path
        # Live events: RQ's registry maintenance reports jobs of dead workers to the exception
        # handlers; this one records them as `abandoned` (other exceptions pass through).
        self.push_exc_handler(abandoned_handler(self.events, self.names_by_path))

    def _event(self, event: str, job: Job, status: str, pipeline=None, **extra) -> None:
        name = job.meta.get("name") or self.names_by_path.get(job.func_name or "", job.func_name)
        self.events.append(event, job_id=job.id, name=name, queue=job.origin, status=status, pipeline=pipeline, **extra)

    def _record_progress(self, job: Job, progress: dict) -> None:
        with self.connection.pipeline() as pipe:
            pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
            self._event("progress", job, "started", pipeline=pipe, progress=progress)
            pipe.execute()

    def perform_job(self, job: Job, queue: Queue, execution) -> bool:
        job.progress_hook = self._record_progress
        with self.app.app_context():
            return super().perform_job(job, queue, execution)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        self._event("started", job, "started", worker=self.name)

    def handle_exception(self, job: Job, *exc_info) -> None:
        exc_type, exc_value, _ = exc_info
        if exc_type is not None:
            job.meta["error"] = {
                "type": exc_type.__name__,
                "message": str(exc_value) if exc_value is not None else "",
            }
            job.save_meta()
        super().handle_exception(job, *exc_info)

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry, execution) -> None:
        super().handle_job_success(job, queue, started_job_registry, execution)
        self._event("finished", job, "finished", ttl=job.get_result_ttl(self.default_result_ttl))

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry=None, exc_string="", execution=None):
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        status = job.get_status(refresh=False)
        status = status.value if status is not None else "failed"
        if status in ("failed", "stopped"):
            self._event(status, job, status, ttl=job.failure_ttl, error=job.meta.get("error"))
        else:
            self._record_retried_try(job, exc_string, execution)
            self._event("retrying", job, status, error=job.meta.get("error"))

    def _record_retried_try(self, job: Job, exc_string: str, execution) -> None:
        """Keep a failed try that will be retried in RQ's result history (RQ records only the last)."""
        Result.create(
            job,
            Result.Type.RETRIED,
            job.failure_ttl,
            exc_string=exc_string,
            worker_name=self.name,
            execution_id=execution.id if execution else None,
            execution_started_at=execution.created_at if execution else None,
            execution_ended_at=job.ended_at,
        )
