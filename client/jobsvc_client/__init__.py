"""Python client of the jobsvc job service (README, "Python client").

from jobsvc_client import Client

with Client("http://localhost:5000", api_key="...") as jobs:
    job = jobs.submit("add", 2, 3)
    print(jobs.wait(job.id, timeout=30).result)   # 5
"""

from __future__ import annotations

from jobsvc_client._shared import submission
from jobsvc_client.aclient import AsyncClient
from jobsvc_client.client import Client
from jobsvc_client.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    GatewayTimeout,
    InternalError,
    JobsvcError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RedisDiskError,
    RedisFull,
    RedisUnavailable,
    ServiceUnreachable,
    TransientError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationError,
    WaitTimeout,
)
from jobsvc_client.models import Attempt, BulkResult, Delivery, DeliveryAttempt, Event, Job, JobError, Submitted
from jobsvc_client.webhooks import verify_webhook

__all__ = [
    "AsyncClient",
    "Attempt",
    "BadGateway",
    "BadRequest",
    "BulkResult",
    "Client",
    "Conflict",
    "Delivery",
    "DeliveryAttempt",
    "Event",
    "Forbidden",
    "GatewayTimeout",
    "InternalError",
    "Job",
    "JobError",
    "JobsvcError",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RedisDiskError",
    "RedisFull",
    "RedisUnavailable",
    "ServiceUnreachable",
    "Submitted",
    "TransientError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationError",
    "WaitTimeout",
    "submission",
    "verify_webhook",
]
