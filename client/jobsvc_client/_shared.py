"""What the sync and async clients share: request bodies, answers, errors, back-off."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from jobsvc_client.errors import JobsvcError, error_for

STREAM_READ_TIMEOUT = 35.0  # the server sends a keep-alive every 15 s (HEARTBEAT_INTERVAL)


def submission(name: str, *args: Any, **options: Any) -> dict[str, Any]:
    """One submission as the API reads it: `submission("add", 2, 3, queue="high")`.

    Options are the API's (queue, timeout, result_ttl, failure_ttl, ttl, retry, enqueue_in,
    enqueue_at, depends_on, description, webhook) plus `kwargs` for the job's keyword arguments.
    `retry` is `{"max": n, "intervals": [s, ...]}` or `{"max": n, "backoff": {"base": s, "factor": f,
    "max_delay": s, "jitter": "full" | "equal" | "none"}}`.
    """
    body: dict[str, Any] = {"name": name, "args": list(args)}
    for key, value in options.items():
        body[key] = value.isoformat() if isinstance(value, datetime) else value
    return body


def headers_for(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def job_path(job_id: str, *rest: str) -> str:
    return "/".join(["/api/jobs", quote(job_id, safe=""), *(quote(part, safe="") for part in rest)])


def answer(response: httpx.Response) -> Any:
    """The JSON of a successful answer; the API's error as its exception class otherwise."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        raise error_for(response.status_code, body, response.headers)
    if response.status_code == 204:  # DELETE: nothing to say
        return None
    return response.json()


def list_params(status: str | None, queue: str | None, name: str | None, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    for key, value in (("status", status), ("queue", queue), ("name", name)):
        if value is not None:
            params[key] = value
    return params


def event_params(queue: Iterable[str] | str | None, name: Iterable[str] | str | None,
                 event: Iterable[str] | str | None) -> dict[str, str]:  # fmt: skip
    params = {}
    for key, value in (("queue", queue), ("name", name), ("event", event)):
        if value is not None:
            params[key] = value if isinstance(value, str) else ",".join(value)
    return params


def stream_headers(last_event_id: str | None) -> dict[str, str]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return headers


def is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


def backoff(failures: int) -> float:
    """Seconds before the next reconnect after `failures` failed ones in a row."""
    return min(0.1 * 2 ** max(failures - 1, 0), 5.0)


def client_headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": "jobsvc-client/0.1", **(extra or {})}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


class NotAStream(JobsvcError):
    """The events URL answered, but not with an event stream (a proxy in between): poll instead."""

    code = "not_a_stream"


# Errors after which `wait` and `events` try again (the connection, or the service's Redis).
RETRYABLE = (httpx.TransportError,)
