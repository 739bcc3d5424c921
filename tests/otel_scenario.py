"""A submission and its job's run in one process, for tests/test_tracing.py (run in a subprocess,
so the tracer provider it may install never leaks into other tests).

`python -m tests.otel_scenario REDIS_URL MODE`: MODE `sdk` installs OpenTelemetry's SDK with an
in-memory exporter and submits under a client span; `plain` installs nothing. It prints JSON:
the jobs' meta and status, the spans exported, and the OpenTelemetry modules the service
imported (redis-py imports a few of its own when OpenTelemetry is installed: those are not counted).
"""

from __future__ import annotations

import contextlib
import json
import sys


def _otel_modules() -> set[str]:
    return {name for name in sys.modules if name.split(".")[0] == "opentelemetry"}


def main(redis_url: str, mode: str, tracing: str) -> None:
    import flask  # noqa: F401
    import redis  # noqa: F401 (redis-py imports parts of OpenTelemetry itself when it is installed)
    import rq  # noqa: F401

    baseline = _otel_modules()
    exporter = None
    client_span = contextlib.nullcontext()
    if mode == "sdk":
        from opentelemetry import propagate, trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        client_span = trace.get_tracer("a-client").start_as_current_span("client request")

    from rq import Queue
    from rq.serializers import JSONSerializer

    from webapp import create_app
    from webapp.store import keys
    from webapp.worker.fastworker import FastWorker

    app = create_app({"REDIS_URL": redis_url, "TESTING": True, "RQ_DASHBOARD_PASSWORD": "x", "TRACING": tracing})
    web = app.test_client()
    ids = []
    with client_span:
        headers: dict[str, str] = {}
        if mode == "sdk":
            propagate.inject(headers)  # the calling service's trace, as an instrumented client sends it
        for body in ({"name": "add", "args": [2, 3]}, {"name": "fail", "args": ["boom"], "retry": {"max": 0}}):
            response = web.post("/api/jobs", json=body, headers=headers)
            assert response.status_code == 202, response.get_json()
            ids.append(response.get_json()["id"])
    connection = app.extensions["redis_factory"].client(socket_timeout=None, name="jobsvc-worker")
    queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in app.config["QUEUES"]]
    FastWorker.from_app(app, connection, queues).work(burst=True)
    store = app.extensions["redis"]
    jobs = {job_id: {"meta": json.loads(store.hget(keys.job(job_id), "meta")),
                     "status": store.hget(keys.job(job_id), "status").decode()} for job_id in ids}  # fmt: skip
    spans = []
    for span in exporter.get_finished_spans() if exporter else []:
        spans.append({
            "name": span.name,
            "trace_id": format(span.context.trace_id, "032x"),
            "span_id": format(span.context.span_id, "016x"),
            "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
            "kind": span.kind.name,
            "start": span.start_time,
            "end": span.end_time,
            "status": span.status.status_code.name,
            "events": [event.name for event in span.events],
            "attributes": dict(span.attributes or {}),
        })  # fmt: skip
    # OpenTelemetry modules imported by the service itself (beyond what its libraries import).
    loaded = sorted(_otel_modules() - baseline)
    print(json.dumps({"ids": ids, "jobs": jobs, "spans": spans, "otel_modules": loaded}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "auto")
