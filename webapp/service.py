"""The job service: validate, enqueue and look up jobs. One per app, in `app.extensions`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

import jobs
from webapp import listing
from webapp.catalog import JobType, build_catalog
from webapp.errors import ValidationFailed
from webapp.events import EventLog
from webapp.fastpath import wake_key
from webapp.recovery import retry_policy


class JobService:
    """Everything the HTTP layer and the CLI do with jobs goes through here."""

    def __init__(self, connection: Redis, config: Mapping[str, Any], catalog: dict[str, JobType]):
        self.connection = connection
        self.config = config
        self.catalog = catalog
        self.queues = {
            name: Queue(
                name,
                connection=connection,
                serializer=JSONSerializer,
                default_timeout=config["JOB_TIMEOUT"],
            )
            for name in config["QUEUES"]
        }
        self.events = EventLog.from_config(connection, dict(config))
        self.names_by_path = {job_type.import_path: job_type.name for job_type in catalog.values()}

    def job_type(self, name: Any) -> JobType:
        if not isinstance(name, str) or name not in self.catalog:
            raise ValidationFailed(
                f"unknown job name {name!r}: valid names are listed at GET /api/functions "
                f"({', '.join(sorted(self.catalog))})"
            )
        return self.catalog[name]

    def queue(self, name: Any) -> Queue:
        if name is None:
            name = self.config["DEFAULT_QUEUE"]
        if not isinstance(name, str) or name not in self.queues:
            raise ValidationFailed(f"unknown queue {name!r}: configured queues are {', '.join(self.queues)}")
        return self.queues[name]

    def submit(self, name: Any, args: Any = None, kwargs: Any = None, queue: Any = None) -> Job:
        """Validate a submission completely, then enqueue it and record `queued` in one pipeline."""
        job_type = self.job_type(name)
        if args is None:
            args = []
        if kwargs is None:
            kwargs = {}
        if not isinstance(args, list):
            raise ValidationFailed("'args' must be a JSON array")
        if not isinstance(kwargs, dict):
            raise ValidationFailed("'kwargs' must be a JSON object")
        call_kwargs = job_type.validate(args, kwargs)
        target = self.queue(queue)
        with self.connection.pipeline() as pipe:
            job = target.enqueue_call(
                func=job_type.import_path,
                kwargs=call_kwargs,
                result_ttl=self.config["RESULT_TTL"],
                failure_ttl=self.config["FAILURE_TTL"],
                meta={"name": job_type.name},
                retry=retry_policy(job_type.func, self.config, getattr(job_type, "options", None)),
                pipeline=pipe,
            )
            self.events.append(
                "queued", job_id=job.id, name=job_type.name, queue=target.name, status="queued", pipeline=pipe
            )
            listing.index_job(pipe, job)
            pipe.rpush(wake_key(target.name), 1)  # wakes an idle worker at once
            pipe.execute()
        return job

    def describe(self, job_id: str) -> dict[str, Any]:
        return listing.describe_job(self.connection, job_id, self.names_by_path)


def init_app(app: Flask) -> None:
    app.extensions["jobsvc"] = JobService(
        app.extensions["redis"], app.config, build_catalog(jobs.ALLOWED, jobs.DEFAULT_OPTIONS)
    )


def get_service() -> JobService:
    return current_app.extensions["jobsvc"]
