"""Structured log lines: every record a worker writes while a job runs carries the job id.

`install(config)` puts `JobContextFilter` on the root handlers (so records of every logger,
RQ's and the jobs' own, get `job_id` and `worker` attributes) and, with LOG_FORMAT=json,
switches them to one JSON object per line.
"""

from __future__ import annotations

import json
import logging

from rq import get_current_job

from webapp.infra.clock import iso_from_timestamp

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [job=%(job_id)s]: %(message)s"


class JobContextFilter(logging.Filter):
    """Adds `job_id` (the job running in this process, or "-") and `worker` to each record."""

    def __init__(self, worker_name: str = "-"):
        super().__init__()
        self.worker_name = worker_name

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            try:
                job = get_current_job()
            except Exception:  # no job context (or Redis gone): the line still gets logged
                job = None
            record.job_id = job.id if job is not None else "-"
        if not hasattr(record, "worker"):
            record.worker = self.worker_name
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job_id, worker (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "at": iso_from_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", "-"),
            "worker": getattr(record, "worker", "-"),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def install(config, worker_name: str = "-") -> None:
    """Attach the job context to the root handlers and pick the line format (text or json)."""
    root = logging.getLogger()
    json_lines = str(config.get("LOG_FORMAT", "text")).lower() == "json"
    for handler in root.handlers:
        present = [existing for existing in handler.filters if isinstance(existing, JobContextFilter)]
        for existing in present:
            existing.worker_name = worker_name
        if not present:
            handler.addFilter(JobContextFilter(worker_name))
        handler.setFormatter(JSONFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
