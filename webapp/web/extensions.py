"""The app's shared objects, as the web's views reach them (made once per app in `init_app`s)."""

from __future__ import annotations

from flask import current_app
from redis import Redis

from webapp.infra.redis import RedisFactory
from webapp.service.jobservice import JobService
from webapp.service.queues import QueueService
from webapp.service.schedules import ScheduleService


def get_service() -> JobService:
    return current_app.extensions["jobsvc"]


def get_schedules() -> ScheduleService:
    return current_app.extensions["jobsvc_schedules"]


def get_queues() -> QueueService:
    return current_app.extensions["jobsvc_queues"]


def get_redis() -> Redis:
    return current_app.extensions["redis"]


def get_factory() -> RedisFactory:
    return current_app.extensions["redis_factory"]
