"""What the sync and async clients share: request bodies, answers, errors, back-off."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from jobsvc_client.errors import JobsvcError, WaitTimeout, error_for
from jobsvc_client.models import Job

STREAM_READ_TIMEOUT = 35.0  # the server sends a keep-alive every 15 s (HEARTBEAT_INTERVAL)
# How long a request of `wait` may outlast its deadline: one last look at the job (a service that
# answers at all does so in milliseconds), never a frozen web's full read timeout.
LAST_LOOK = 0.5


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


class Deadline:
    """When a `wait` gives up (never, for None), and the timeouts of its requests: each is bounded
    by the time left, or a quiet event stream (a keep-alive every 15 s) or a frozen web (no answer
    until the read timeout) would hold `wait` long after it."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float:
        return math.inf if self.end is None else max(0.0, self.end - time.monotonic())

    def passed(self) -> bool:
        return self.left() <= 0.0

    def remaining(self) -> float | None:
        """The time left, or None without a deadline (what asyncio.timeout takes for "never")."""
        return None if self.end is None else self.left()

    def timeout(self, seconds: float, read: float | None = None) -> httpx.Timeout:
        """`seconds` to connect and write, `read` (default `seconds`) for each read, none past
        the deadline by more than LAST_LOOK."""
        bound = max(self.left(), LAST_LOOK)
        return httpx.Timeout(min(seconds, bound), read=min(seconds if read is None else read, bound))

    def pause(self, seconds: float) -> float:
        """`seconds`, or the time left if less: no pause sleeps past the deadline."""
        return min(seconds, self.left())

    def expired(self, job_id: str, job: Job | None) -> WaitTimeout:
        """The WaitTimeout to raise; `job` is None when the service never showed it."""
        if job is None:
            return WaitTimeout(f"job {job_id} could not be looked up within {self.seconds} s", job)
        return WaitTimeout(f"job {job_id} is still {job.status} after {self.seconds} s", job)


def bulk_body(action: str, filter: Mapping[str, Any] | None, dry_run: bool, cursor: str | None) -> dict[str, Any]:
    """The body of `POST /api/jobs/bulk` (filters left out when None)."""
    wanted = {key: value for key, value in (filter or {}).items() if value is not None}
    body: dict[str, Any] = {"action": action, "filter": wanted, "dry_run": dry_run}
    if cursor:
        body["cursor"] = cursor
    return body


@contextmanager
def cut_off(response: httpx.Response, deadline: Deadline) -> Iterator[None]:
    """Shut down the socket of a streamed `response` at the deadline (AsyncClient.wait uses
    asyncio.timeout instead). httpx bounds each read, not a stream: one that goes quiet right
    after an event (a web frozen mid-job) would end as late as its read timeout after that
    event. shutdown() wakes a thread blocked reading the socket, close() does not."""
    network = response.extensions.get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    seconds = deadline.remaining()
    if sock is None or seconds is None:  # another transport, or no deadline: the read timeout bounds it
        yield
        return
    lock, ended = threading.Lock(), [False]

    def cut() -> None:
        with lock:  # not once the stream has ended: its connection may serve another request by then
            if not ended[0]:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # closed meanwhile

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            ended[0] = True
        timer.cancel()
