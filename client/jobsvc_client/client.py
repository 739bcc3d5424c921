"""`Client`: the jobsvc API from Python, over httpx.

`wait` follows the job's event stream (`GET /api/jobs/<id>/events`) from the snapshot it
starts with, resumes it with `Last-Event-ID` after a dropped connection (a web process
restarting ends its streams), and falls back to polling `GET /api/jobs/<id>` where no event
stream comes through (a buffering proxy, a web that is down). Its requests end with its timeout
(a last look at the job may take `_shared.LAST_LOOK` more), however quiet or frozen the web.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import httpx

from jobsvc_client import _shared as shared
from jobsvc_client.errors import ServiceUnreachable, TransientError
from jobsvc_client.models import BulkResult, Delivery, Event, Job, Submitted
from jobsvc_client.sse import SSEParser


class Client:
    """`Client("http://localhost:5000", api_key=...)`; use it as a context manager, or `close()` it."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 10.0,
                 headers: dict[str, str] | None = None, transport: httpx.BaseTransport | None = None):  # fmt: skip
        self.timeout = timeout
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=shared.client_headers(api_key, headers),
                                  timeout=timeout, transport=transport, follow_redirects=False)  # fmt: skip

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"{method} {path}: {exc!r}") from exc
        return shared.answer(response)

    # -- jobs ------------------------------------------------------------------------------------

    def submit(self, name: str, *args: Any, idempotency_key: str | None = None, **options: Any) -> Submitted:
        """Enqueue job `name` with positional `args`; options as the API's (queue=, timeout=, kwargs=, ...)."""
        body = shared.submission(name, *args, **options)
        return Submitted.from_json(self._call("POST", "/api/jobs", json=body,
                                              headers=shared.headers_for(idempotency_key)))  # fmt: skip

    def submit_batch(self, jobs: Iterable[dict[str, Any]], idempotency_key: str | None = None) -> list[Submitted]:
        """Enqueue several jobs all-or-nothing; build each with `jobsvc_client.submission(name, *args, ...)`."""
        data = self._call("POST", "/api/jobs/batch", json={"jobs": list(jobs)},
                          headers=shared.headers_for(idempotency_key))  # fmt: skip
        return [Submitted.from_json(entry) for entry in data["jobs"]]

    def get(self, job_id: str) -> Job:
        return Job.from_json(self._call("GET", shared.job_path(job_id)))

    def cancel(self, job_id: str) -> Job:
        """Cancel a waiting job, or ask its worker to stop a running one (then it ends `stopped`)."""
        return Job.from_json(self._call("POST", shared.job_path(job_id, "cancel"), json={}))

    def delete(self, job_id: str) -> None:
        """Delete an ended or waiting job and its result (Conflict while it runs: cancel it first)."""
        self._call("DELETE", shared.job_path(job_id))

    def retry(self, job_id: str) -> Submitted:
        return Submitted.from_json(self._call("POST", shared.job_path(job_id, "retry"), json={}))

    def bulk(self, action: str, filter: Mapping[str, Any] | None = None, *, dry_run: bool = False,
             on_progress: Callable[[BulkResult], None] | None = None) -> BulkResult:  # fmt: skip
        """Retry, cancel or delete every job matching `filter` (status, queue, name, schedule):
        the server works in pages within a time budget, and this follows its cursor to the end,
        calling `on_progress` with the running totals after each call."""
        result = BulkResult(action, dry_run)
        cursor = None
        while True:
            data = self._call("POST", "/api/jobs/bulk", json=shared.bulk_body(action, filter, dry_run, cursor))
            result.add(data)
            if on_progress is not None:
                on_progress(result)
            cursor = data.get("next_cursor")
            if not cursor:
                return result

    def jobs(self, *, status: str | None = None, queue: str | None = None, name: str | None = None,
             page_size: int = 50) -> Iterator[Job]:  # fmt: skip
        """Every job matching the filters, newest first, fetching one page at a time."""
        params = shared.list_params(status, queue, name, page_size)
        while True:
            page = self._call("GET", "/api/jobs", params=params)
            yield from (Job.from_json(entry) for entry in page["jobs"])
            if not page.get("next_cursor"):
                return
            params = {**params, "cursor": page["next_cursor"]}

    def deliveries(self, job_id: str) -> list[Delivery]:
        """The job's webhook deliveries, each with its attempts."""
        data = self._call("GET", shared.job_path(job_id, "deliveries"))
        return [Delivery.from_json(entry) for entry in data["deliveries"]]

    def redeliver(self, job_id: str, delivery_id: str) -> Delivery:
        path = shared.job_path(job_id, "deliveries", delivery_id, "redeliver")
        return Delivery.from_json(self._call("POST", path, json={}))

    # -- events ----------------------------------------------------------------------------------

    def _lines(self, path: str, params: dict, last_event_id: str | None,
               deadline: shared.Deadline) -> Iterator[Event | None]:  # fmt: skip
        """One connection to an event stream: each event, and None for every other line."""
        timeout = deadline.timeout(self.timeout, read=shared.STREAM_READ_TIMEOUT)
        try:
            with self._http.stream("GET", path, params=params, headers=shared.stream_headers(last_event_id),
                                   timeout=timeout) as response:  # fmt: skip
                if response.status_code >= 400:
                    response.read()
                    shared.answer(response)
                if not shared.is_event_stream(response):
                    raise shared.NotAStream(f"{path} answered {response.headers.get('content-type')!r}")
                parser = SSEParser()
                with shared.cut_off(response, deadline):
                    for line in response.iter_lines():
                        yield parser.feed(line)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"event stream {path}: {exc!r}") from exc

    def events(self, job_id: str | None = None, *, last_event_id: str | None = None, queue=None, name=None,
               event=None, max_reconnects: int = 10) -> Iterator[Event]:  # fmt: skip
        """A job's events (its timeline so far, every run of a retried job, then live, ending with
        its last event), or every job's events (filtered by queue, name, event; endless). A
        dropped connection is resumed after the last event received, so nothing is missed or
        repeated."""
        path = shared.job_path(job_id, "events") if job_id else "/api/events"
        params = {} if job_id else shared.event_params(queue, name, event)
        failures, endless = 0, shared.Deadline(None)
        while True:
            ended = False
            try:
                for item in self._lines(path, params, last_event_id, endless):
                    if item is None:
                        continue
                    failures = 0
                    last_event_id = item.id or last_event_id
                    yield item
                    ended = item.ends_job
                # The server ends a job's stream after its latest event once that one is terminal;
                # an earlier terminal event may be followed by a retry's run, so it goes on to the end.
                if job_id and ended:
                    return
            except TransientError:
                failures += 1
                if failures > max_reconnects:
                    raise
            time.sleep(shared.backoff(failures))

    def _look(self, job_id: str, deadline: shared.Deadline) -> Job:
        """`get`, within the time `wait` has left."""
        return Job.from_json(self._call("GET", shared.job_path(job_id), timeout=deadline.timeout(self.timeout)))

    def _first_look(self, job_id: str, deadline: shared.Deadline) -> Job:
        """The job as `wait` starts: a service that is down or restarting is asked again (with
        backoff) until the deadline; any other error (NotFound, Unauthorized...) is raised."""
        failures = 0
        while True:
            try:
                return self._look(job_id, deadline)
            except TransientError as exc:
                failures += 1
                if deadline.passed():
                    raise deadline.expired(job_id, None) from exc
            time.sleep(deadline.pause(shared.backoff(failures)))

    def wait(self, job_id: str, timeout: float | None = None, *, on_event: Callable[[Event], None] | None = None,
             poll_interval: float = 1.0) -> Job:  # fmt: skip
        """Block until the job has ended, then return it (with its result or error).

        Raises WaitTimeout (with `.job`, as last seen) after `timeout` seconds, NotFound for an
        unknown job. `on_event` is called with each event seen, progress included.
        Until then (without a timeout: until the job ends) a `TransientError` (no answer, a 503,
        a proxy's 502 or 504) is tried again, with backoff; the WaitTimeout's `__cause__` is the
        last one if the service was still failing, and its `.job` None if the job was never seen.
        Other errors (NotFound, Unauthorized, Forbidden...) are raised at once."""
        deadline = shared.Deadline(timeout)
        job = self._first_look(job_id, deadline)
        last_event_id, streaming, failures, error = job.last_event_id, True, 0, None
        while not job.done:
            if deadline.passed():
                raise deadline.expired(job_id, job) from error
            if streaming:
                try:
                    for item in self._lines(shared.job_path(job_id, "events"), {}, last_event_id, deadline):
                        if deadline.passed():
                            break
                        if item is None:
                            continue
                        failures, last_event_id = 0, item.id or last_event_id
                        if on_event is not None:
                            on_event(item)
                        if item.ends_job:
                            break
                except shared.NotAStream:
                    streaming = False
                except TransientError:  # a quiet stream's read timeout at the deadline included
                    failures += 1
            try:  # the stream ended, dropped or is not available: look at the job itself
                job, error = self._look(job_id, deadline), None
            except TransientError as exc:
                failures, error = failures + 1, exc
            if not job.done:
                pause = poll_interval if not streaming else shared.backoff(failures)
                time.sleep(deadline.pause(pause))
        return job
