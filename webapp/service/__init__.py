"""The job service: the catalog of job types, planning and submitting jobs, cancel and retry,
and who may see what. No Flask: the web, the CLI and the workers all call it, each passing
the caller explicitly."""

from __future__ import annotations

import jobs as job_functions
from webapp.service.catalog import build_catalog
from webapp.service.jobservice import JobService
from webapp.service.queues import QueueService
from webapp.service.schedules import ScheduleService


def init_app(app) -> None:
    """The app's job service, over the app's Redis client and the allow-list in `jobs`, and its
    periodic schedules (`jobs.SCHEDULES` are applied by `worker.py` at start-up)."""
    catalog = build_catalog(job_functions.ALLOWED, job_functions.DEFAULT_OPTIONS)
    app.extensions["jobsvc"] = JobService(app.extensions["redis"], app.config, catalog)
    app.extensions["jobsvc_schedules"] = ScheduleService(app.extensions["jobsvc"])
    app.extensions["jobsvc_queues"] = QueueService(app.extensions["jobsvc"])
