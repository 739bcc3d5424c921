"""OpenTelemetry traces from the request that submits a job to the job's end, when installed.

Nothing here imports OpenTelemetry unless `opentelemetry-api` is installed and TRACING is
`auto` (the default); otherwise every hook is a constant no-op and jobs carry nothing.

- The submit routes open a `jobsvc submit` span (PRODUCER) under the request's trace: the
  current span when the app is instrumented, else the `traceparent` header the request
  carried. Its W3C `traceparent` is kept in each job's meta.
- A worker that claims a job carrying one records the job's span (`jobsvc job <name>`,
  CONSUMER, a child of the submit span) from its claim to the recording of its end, with
  children `jobsvc claim`, `jobsvc run` (the function; an exception is recorded on it) and
  `jobsvc finish`.

The service never configures an SDK or exporter: the process that runs it does (for example
`opentelemetry-instrument gunicorn ...`), and without one the spans cost next to nothing and
are not recording; an incoming trace is still propagated to the job, as the API specifies.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Iterator, Mapping
from typing import Any

_STATE: dict[str, Any] = {}


def configure(config: Mapping[str, Any]) -> bool:
    """Decide from TRACING and what is installed (each app does, when it is created)."""
    _STATE["enabled"] = config.get("TRACING", "auto") != "off" and importlib.util.find_spec("opentelemetry") is not None
    return _STATE["enabled"]


def enabled() -> bool:
    """OpenTelemetry's API is installed and TRACING is not `off`."""
    if "enabled" not in _STATE:
        configure({})
    return _STATE["enabled"]


def _api():
    from opentelemetry import context, propagate, trace

    return trace, propagate, context


def _tracer():
    trace, _, _ = _api()
    return trace.get_tracer("jobsvc")


@contextlib.contextmanager
def submit_span(headers: Mapping[str, str], route: str) -> Iterator[str | None]:
    """Around a submission: yields the `traceparent` to keep in each job, or None."""
    if not enabled():
        yield None
        return
    trace, propagate, _ = _api()
    parent = None if trace.get_current_span().get_span_context().is_valid else propagate.extract(headers)
    with _tracer().start_as_current_span(f"jobsvc submit {route}", context=parent,
                                         kind=trace.SpanKind.PRODUCER) as span:  # fmt: skip
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        span.set_attribute("messaging.system", "rq")
        yield carrier.get("traceparent") if span.get_span_context().is_valid else None


def now_ns() -> int:
    return time.time_ns()


class JobTrace:
    """The spans of one job run in a worker; `claimed` are the claim's start and end (ns)."""

    def __init__(self, meta: Mapping[str, Any], job_id: str, name: str | None, queue: str, claimed: tuple[int, int]):
        trace, propagate, _ = _api()
        self._trace = trace
        parent = propagate.extract({"traceparent": meta["traceparent"]})
        attributes = {"messaging.system": "rq", "messaging.destination.name": queue, "jobsvc.job_id": job_id,
                      "jobsvc.job_name": name or ""}  # fmt: skip
        self.span = _tracer().start_span(f"jobsvc job {name}", context=parent, kind=trace.SpanKind.CONSUMER,
                                         attributes=attributes, start_time=claimed[0])  # fmt: skip
        self._context = trace.set_span_in_context(self.span)
        _tracer().start_span("jobsvc claim", context=self._context, start_time=claimed[0]).end(end_time=claimed[1])

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Any]:
        """A child span of the job's, current while the block runs (so the job's own spans nest)."""
        _, _, context = _api()
        span = _tracer().start_span(name, context=self._context)
        token = context.attach(self._trace.set_span_in_context(span))
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(exc)[:200]))
            raise
        finally:
            context.detach(token)
            span.end()

    def failed(self, message: str) -> None:
        self.span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, message[:200]))

    def end(self) -> None:
        self.span.end()


def job_trace(meta: Mapping[str, Any], job_id: str, name: str | None, queue: str,
              claimed: tuple[int, int] | None) -> JobTrace | None:  # fmt: skip
    """The job's trace when it carries a traceparent and tracing is on, else None."""
    if claimed is None or not meta.get("traceparent") or not enabled():
        return None
    return JobTrace(meta, job_id, name, queue, claimed)
