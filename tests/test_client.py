"""The Python client (client/, `pip install ./client`) against the real service: gunicorn and
worker.py processes, including an event stream dropped in the middle of `wait`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.receiver import readme_verify
from tests.servers import free_port, start_web, start_worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "client"))

import jobsvc_client  # noqa: E402
from jobsvc_client import AsyncClient, Client, submission  # noqa: E402
from jobsvc_client.errors import NotFound  # noqa: E402


@pytest.fixture(scope="module")
def stack(redis_server):
    web, base = start_web(redis_server.url, BULK_PAGE_SIZE="2", BULK_TIME_BUDGET="0")  # bulk: a page per call
    worker = start_worker(redis_server.url, WORKER_PROCESSES="2")
    processes = {"web": web, "base": base, "worker": worker, "redis": redis_server}
    yield processes
    worker.stop()
    processes["web"].stop()  # the one running now: a test may have restarted it


@pytest.fixture
def client(stack):
    with Client(stack["base"]) as jobs:
        yield jobs


def test_submit_then_wait_returns_the_typed_result(client):
    job = client.submit("add", 2, 3)
    assert isinstance(job, jobsvc_client.Submitted) and job.status == "queued" and job.name == "add"
    done = client.wait(job.id, timeout=30)
    assert isinstance(done, jobsvc_client.Job)
    assert done.succeeded and done.done and done.result == 5 and done.error is None
    assert done.ended_at >= done.started_at and done.attempts[0].outcome == "finished"


def test_a_failed_job_waits_to_its_error_and_is_retried(client):
    job = client.submit("fail", "boom", retry={"max": 0})
    failed = client.wait(job.id, timeout=30)
    assert failed.status == "failed" and failed.error == jobsvc_client.JobError("RuntimeError", "boom")
    again = client.retry(job.id)
    assert again.id == job.id and again.status == "queued"
    assert client.wait(job.id, timeout=30).status == "failed"


def test_each_error_code_is_its_own_exception(client, stack):
    with pytest.raises(jobsvc_client.NotFound) as missing:
        client.get("no-such-job")
    assert missing.value.status == 404 and missing.value.code == "not_found"
    with pytest.raises(jobsvc_client.ValidationError) as invalid:
        client.submit("add", "two", 3)
    assert invalid.value.status == 422 and invalid.value.details[0]["argument"] == "a"
    with pytest.raises(jobsvc_client.ValidationError):
        client.submit("no_such_job")
    job = client.submit("add", 1, 1)
    client.wait(job.id, timeout=30)
    with pytest.raises(jobsvc_client.Conflict):
        client.retry(job.id)
    with pytest.raises(jobsvc_client.Conflict):
        client.cancel(job.id)
    with pytest.raises(jobsvc_client.ServiceUnreachable), Client("http://127.0.0.1:9") as nowhere:
        nowhere.get("x")
    with pytest.raises(jobsvc_client.JobsvcError):  # every class shares the base
        client.get("no-such-job")


def test_an_api_key_is_sent_and_a_wrong_one_is_unauthorized(stack):
    web, base = start_web(stack["redis"].url, API_KEYS="alice:alice-key-123")
    try:
        with pytest.raises(jobsvc_client.Unauthorized), Client(base, api_key="wrong") as stranger:
            stranger.get("x")
        with Client(base, api_key="alice-key-123") as alice:
            job = alice.submit("add", 4, 4)
            assert alice.get(job.id).id == job.id
    finally:
        web.stop()


def test_cancel_batch_and_listing_every_page(client):
    scheduled = client.submit("add", 1, 2, enqueue_in=600, description="later")
    assert scheduled.status == "scheduled"
    assert client.cancel(scheduled.id).status == "canceled"
    client.delete(scheduled.id)
    with pytest.raises(NotFound):
        client.get(scheduled.id)
    batch = client.submit_batch([submission("add", i, i, queue="low") for i in range(5)])
    assert [entry.queue for entry in batch] == ["low"] * 5
    for entry in batch:
        client.wait(entry.id, timeout=30)
    listed = [job.id for job in client.jobs(queue="low", page_size=2)]  # three pages
    assert set(entry.id for entry in batch) <= set(listed) and len(listed) == len(set(listed))
    assert [job.id for job in client.jobs(queue="low", name="add", status="finished", page_size=2)][:5]


def test_bulk_follows_the_cursor_to_the_end(client):
    failed = client.submit_batch([submission("fail", "boom", queue="high", retry={"max": 0}) for _ in range(5)])
    for entry in failed:
        assert client.wait(entry.id, timeout=30).status == "failed"
    seen = []
    dry = client.bulk("retry", {"status": "failed", "queue": "high"}, dry_run=True, on_progress=seen.append)
    assert (dry.matched, dry.eligible, dry.done, dry.skipped) == (5, 5, 0, {})
    assert dry.calls >= 3 and len(seen) == dry.calls  # pages of 2, one per call
    done = client.bulk("retry", {"status": "failed", "queue": "high", "name": "fail"})
    assert (done.matched, done.done) == (5, 5)
    for entry in failed:
        again = client.wait(entry.id, timeout=30)
        assert again.status == "failed" and len(again.attempts) == 2
    skipped = client.bulk("cancel", {"queue": "high", "name": "fail"}, dry_run=True)
    assert (skipped.matched, skipped.eligible, skipped.skipped) == (5, 0, {"status:failed": 5})


def test_events_of_a_job_end_with_its_last_event(client):
    job = client.submit("sleep", 0.3)
    events = list(client.events(job.id))
    names = [event.event for event in events]
    assert names[0] == "queued" and names[-1] == "finished" and "progress" in names
    assert events[-1].ends_job and all(event.job_id == job.id for event in events)


def test_events_of_a_retried_job_show_both_runs(client, stack):
    job = client.submit("fail", "first", retry={"max": 0})
    assert client.wait(job.id, timeout=30).status == "failed"
    client.retry(job.id)
    assert client.wait(job.id, timeout=30).status == "failed"
    expected = ["queued", "started", "failed", "queued", "started", "failed"]
    assert [event.event for event in client.events(job.id)] == expected

    async def read_all() -> list[str]:
        async with AsyncClient(stack["base"]) as aclient:
            return [event.event async for event in aclient.events(job.id)]

    assert asyncio.run(read_all()) == expected


def _restart_web(stack, port: int) -> None:
    stack["web"].signal(signal.SIGTERM)  # the web ends its open event streams at once
    stack["web"].process.wait(15)
    stack["web"].stop()
    stack["web"], _ = start_web(stack["redis"].url, port=port)


def test_wait_resumes_a_dropped_stream_with_last_event_id(client, stack):
    port = int(stack["base"].rsplit(":", 1)[1])
    job = client.submit("sleep", 3.0)
    seen: list[jobsvc_client.Event] = []
    outcome: dict = {}
    waiter = threading.Thread(target=lambda: outcome.update(job=client.wait(job.id, timeout=60, on_event=seen.append)))
    waiter.start()
    deadline = time.monotonic() + 20
    while not any(event.event == "progress" for event in seen):
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    _restart_web(stack, port)  # mid-job: the stream is dropped, then the web is back
    waiter.join(60)
    assert outcome["job"].status == "finished"
    ids = [event.id for event in seen]
    assert len(ids) == len(set(ids)), "an event was delivered twice across the reconnect"
    # Every event of the job's timeline after the snapshot, none lost across the drop.
    timeline = [event.id for event in client.events(job.id)]
    assert ids == timeline[len(timeline) - len(ids) :] and seen[-1].event == "finished"


class _BufferingProxy:
    """A real HTTP proxy that answers event-stream requests with a plain 200, as a buffering
    proxy without SSE support would, and passes everything else to the web."""

    def __init__(self, upstream: str):
        upstream_client = httpx.Client(base_url=upstream)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path.endswith("/events"):
                    body, status, kind = b"buffered", 200, "text/plain"
                else:
                    answer = upstream_client.get(self.path)
                    body, status, kind = answer.content, answer.status_code, answer.headers["content-type"]
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.upstream = upstream_client
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_wait_falls_back_to_polling_without_an_event_stream(client, stack):
    proxy = _BufferingProxy(stack["base"])
    try:
        job = client.submit("sleep", 0.5)
        with Client(proxy.base) as through_proxy:
            done = through_proxy.wait(job.id, timeout=30, poll_interval=0.1)
        assert done.status == "finished"
        with pytest.raises(jobsvc_client.WaitTimeout) as late, Client(proxy.base) as through_proxy:
            through_proxy.wait(client.submit("sleep", 5).id, timeout=0.5, poll_interval=0.1)
        assert late.value.job.status in ("queued", "started")
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()
        proxy.upstream.close()


def test_the_async_twin(stack):
    async def scenario():
        async with AsyncClient(stack["base"]) as jobs:
            job = await jobs.submit("add", 20, 22)
            done = await jobs.wait(job.id, timeout=30)
            events = [event.event async for event in jobs.events(job.id)]
            listed = [entry.id async for entry in jobs.jobs(name="add", page_size=3)]
            counted = await jobs.bulk("delete", {"status": "finished", "name": "add"}, dry_run=True)
            assert counted.eligible == counted.matched >= 1 and counted.done == 0
            with pytest.raises(jobsvc_client.NotFound):
                await jobs.get("no-such-job")
            return done, events, listed, job

    done, events, listed, job = asyncio.run(scenario())
    assert done.result == 42 and events[-1] == "finished" and job.id in listed


def test_verify_webhook_checks_the_signature_and_its_age():
    body = b'{"id": "1-0"}'
    stamp = int(time.time())
    code = hmac.new(b"s3cret-s3cret-s3cret", f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={stamp},v1=0000,v1={code}"
    assert jobsvc_client.verify_webhook("s3cret-s3cret-s3cret", header, body)
    assert not jobsvc_client.verify_webhook("other-secret-000000", header, body)
    assert not jobsvc_client.verify_webhook("s3cret-s3cret-s3cret", header, body + b"x")
    old = f"t={stamp - 3600},v1={code}"
    assert not jobsvc_client.verify_webhook("s3cret-s3cret-s3cret", old, body)


@pytest.mark.parametrize("verify", [jobsvc_client.verify_webhook, readme_verify()], ids=["client", "readme"])
def test_a_malformed_signature_header_is_false_never_an_exception(verify):
    """Anyone can send a request with any `Jobsvc-Signature`: both checks (the client's and the
    README's) say False to every malformed one, a crafted one included."""
    secret, body, stamp = "s3cret-s3cret-s3cret", b'{"id": "1-0"}', str(int(time.time()))
    code = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert verify(secret, f" t={stamp} , v1={code}", body)
    malformed = [
        "",
        ",,,",
        "garbage",
        f"v1={code}",  # no t
        f"t={stamp}",  # no v1
        f"t={stamp},v1",  # a part without "="
        f"t={stamp},t={stamp},v1={code}",  # two t
        f"t=,v1={code}",
        f"t=-{stamp},v1={code}",
        f"t=+{stamp},v1={code}",
        f"t={stamp}.5,v1={code}",
        "t=²,v1=00",  # isdigit() is true for "²", int() refuses it
        f"t={stamp.translate(str.maketrans('0123456789', '٠١٢٣٤٥٦٧٨٩'))},v1={code}",  # int() reads these
        f"t={stamp},v1=é",  # compare_digest raises TypeError on a str that is not ASCII
        f"t={stamp},v1={code[:-1]}é",
        f"t={stamp},v1=\udc80",  # a lone surrogate, as surrogateescape decodes a stray byte
        f"t=\x00{stamp},v1={code}",
        "t=" + "9" * 5000 + ",v1=00",  # int() refuses more than 4300 digits
        "t=" + "9" * 400 + ",v1=00",  # too large for a float
        f"t={stamp}," + ",".join(["v1=" + "0" * 64] * 2000),
        f"t={stamp},v1=" + "é" * 100_000,
    ]
    for header in malformed:
        assert verify(secret, header, body) is False, header[:80]


# -- wait within its timeout, through failures -------------------------------------------------

MARGIN = 1.5  # what a bounded wait may take beyond its timeout here (a busy two-core machine)


class _Script:
    """A proxy in front of the web, as a test scripts it: it answers the first requests of each
    kind ("job": GET /api/jobs/<id>, "events": the job's stream) with the given statuses and an
    HTML page, as nginx does while the web restarts, and forwards the others to the real web;
    `on_stream` is called as a stream opens (to freeze the web behind it)."""

    def __init__(self, job: tuple[int, ...] = (), events: tuple[int, ...] = (),
                 on_stream: Callable[[], None] | None = None):  # fmt: skip
        self.left = {"job": list(job), "events": list(events)}
        self.on_stream = on_stream

    def early(self, request: httpx.Request) -> httpx.Response | None:
        statuses = self.left["events" if request.url.path.endswith("/events") else "job"]
        if not statuses:
            return None
        status = statuses.pop(0)
        return httpx.Response(status, html=f"<html><body><h1>{status}</h1><hr>nginx</body></html>")

    def forwarded(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/events") and self.on_stream is not None:
            self.on_stream()


class _Proxy(httpx.HTTPTransport):
    def __init__(self, script: _Script):
        super().__init__()
        self.script = script

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if (early := self.script.early(request)) is not None:
            return early
        response = super().handle_request(request)
        self.script.forwarded(request)
        return response


class _AsyncProxy(httpx.AsyncHTTPTransport):
    def __init__(self, script: _Script):
        super().__init__()
        self.script = script

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if (early := self.script.early(request)) is not None:
            return early
        response = await super().handle_async_request(request)
        self.script.forwarded(request)
        return response


def _through(kind: str, base: str, script: _Script, method: str, *args, **kwargs) -> tuple[object, float]:
    """`method` of a Client ("sync") or an AsyncClient ("async") on `base`, through `script`'s
    proxy: what it returned (a list, for `events`) or raised, and the seconds it took."""

    def run_sync():
        with Client(base, transport=_Proxy(script)) as jobs:
            result = getattr(jobs, method)(*args, **kwargs)
            return list(result) if method == "events" else result

    async def run_async():
        async with AsyncClient(base, transport=_AsyncProxy(script)) as jobs:
            result = getattr(jobs, method)(*args, **kwargs)
            return [item async for item in result] if method == "events" else await result

    started = time.monotonic()
    try:
        outcome = run_sync() if kind == "sync" else asyncio.run(run_async())
    except jobsvc_client.JobsvcError as exc:
        outcome = exc
    return outcome, time.monotonic() - started


def _family(pid: int) -> list[int]:
    """A gunicorn master this test started, and its workers."""
    children = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
        except OSError:
            continue  # ended meanwhile
    return [pid, *children]


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wait_ends_at_its_timeout_while_the_stream_is_quiet(client, stack, kind):
    job = client.submit("add", 1, 2, enqueue_in=60)  # no event for a minute but keep-alives (15 s)
    try:
        late, took = _through(kind, stack["base"], _Script(), "wait", job.id, timeout=2)
    finally:
        client.cancel(job.id)
    assert isinstance(late, jobsvc_client.WaitTimeout), late
    assert late.job.status == "scheduled" and late.__cause__ is None
    assert 2 <= took < 2 + MARGIN, f"WaitTimeout after {took:.1f} s"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wait_ends_at_its_timeout_when_the_web_freezes(client, stack, kind):
    web, base = start_web(stack["redis"].url, WEB_CONCURRENCY="1")
    frozen = _family(web.pid)
    freezer = threading.Timer(2.5, _signal_all, (frozen, signal.SIGSTOP))
    scheduled = client.submit("add", 1, 2, enqueue_in=60)
    running = client.submit("sleep", 20)  # a progress event every 0.2 s
    try:
        # Frozen while events flow: the stream's last read began just before the deadline, and
        # its read timeout (the time left as the stream opened) would outlast it by as long.
        freezer.start()
        late, took = _through(kind, base, _Script(), "wait", running.id, timeout=3)
        _signal_all(frozen, signal.SIGCONT)
        assert isinstance(late, jobsvc_client.WaitTimeout), late
        assert late.job.status == "started" and 3 <= took < 3 + MARGIN, f"WaitTimeout after {took:.1f} s"
        # Frozen once the stream is open: its read, then the last look at the job, end in time.
        freeze = _Script(on_stream=lambda: _signal_all(frozen, signal.SIGSTOP))
        late, took = _through(kind, base, freeze, "wait", scheduled.id, timeout=2)
        assert isinstance(late, jobsvc_client.WaitTimeout), late
        assert late.job.status == "scheduled" and isinstance(late.__cause__, jobsvc_client.ServiceUnreachable)
        assert 2 <= took < 2 + MARGIN, f"WaitTimeout after {took:.1f} s"
        # Frozen as wait starts: its first look ends in time too, the job never seen.
        late, took = _through(kind, base, _Script(), "wait", scheduled.id, timeout=2)
        assert isinstance(late, jobsvc_client.WaitTimeout) and late.job is None, late
        assert isinstance(late.__cause__, jobsvc_client.ServiceUnreachable)
        assert 2 <= took < 2 + MARGIN, f"WaitTimeout after {took:.1f} s"
    finally:
        freezer.cancel()
        freezer.join()
        _signal_all(frozen, signal.SIGCONT)  # never leave a process of ours stopped
        web.stop()
        client.cancel(scheduled.id)
        client.cancel(running.id)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wait_and_events_try_again_through_a_proxys_502_503_504(client, stack, kind):
    job = client.submit("sleep", 2.0)  # still running once the first look has got through
    script = _Script(job=(502, 503, 504), events=(504, 502, 503))
    done, _ = _through(kind, stack["base"], script, "wait", job.id, timeout=30)
    assert isinstance(done, jobsvc_client.Job) and done.status == "finished", done
    assert script.left == {"job": [], "events": []}  # every failure was met, and ridden out
    script = _Script(events=(502, 504))
    events, _ = _through(kind, stack["base"], script, "events", job.id)
    assert [event.event for event in events][-1] == "finished" and script.left["events"] == []
    assert issubclass(jobsvc_client.BadGateway, jobsvc_client.TransientError)
    assert issubclass(jobsvc_client.GatewayTimeout, jobsvc_client.TransientError)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wait_raises_a_permanent_error_at_once(client, stack, kind):
    job = client.submit("add", 1, 2, enqueue_in=60)
    try:
        for script, error in [
            (_Script(), jobsvc_client.NotFound),  # the real web's 404, for an unknown job
            (_Script(job=(401,)), jobsvc_client.Unauthorized),
            (_Script(job=(403,)), jobsvc_client.Forbidden),
            (_Script(events=(403,)), jobsvc_client.Forbidden),
        ]:
            job_id = "no-such-job" if error is jobsvc_client.NotFound else job.id
            raised, took = _through(kind, stack["base"], script, "wait", job_id, timeout=30)
            assert isinstance(raised, error) and took < 2, (raised, took)
    finally:
        client.cancel(job.id)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wait_rides_out_a_web_that_is_down_as_it_starts(client, stack, kind):
    job = client.submit("add", 5, 6)
    port = free_port()
    outcome: dict = {}
    waiter = threading.Thread(
        target=lambda: outcome.update(done=_through(kind, f"http://127.0.0.1:{port}", _Script(), "wait", job.id, 30))
    )
    waiter.start()
    web, _ = start_web(stack["redis"].url, port=port, WEB_CONCURRENCY="1")  # seconds later
    try:
        waiter.join(30)
        done, took = outcome["done"]
        assert isinstance(done, jobsvc_client.Job) and done.result == 11, done
    finally:
        web.stop()
    # A web that never comes: WaitTimeout at the deadline, the connection error as its cause.
    late, took = _through(kind, f"http://127.0.0.1:{free_port()}", _Script(), "wait", job.id, timeout=1)
    assert isinstance(late, jobsvc_client.WaitTimeout) and late.job is None, late
    assert isinstance(late.__cause__, jobsvc_client.ServiceUnreachable)
    assert 1 <= took < 1 + MARGIN, f"WaitTimeout after {took:.1f} s"
