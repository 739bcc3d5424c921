"""Queue depth and the wait of the oldest queued job, for people (`GET /api/queues`) and
autoscalers (`/metrics`), against a real Redis and a real worker process; and the Grafana
dashboard in the repository plots only series the service exports."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import start_web, start_worker

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"
README = Path(__file__).resolve().parent.parent / "README.md"
METRIC_NAME = re.compile(r"\bjobsvc_[a-z_]+\b")


def submit(client, queue: str) -> str:
    response = client.post("/api/jobs", json={"name": "add", "args": [1, 2], "queue": queue})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def api_view(client, name: str) -> dict:
    return next(queue for queue in client.get("/api/queues").get_json()["queues"] if queue["name"] == name)


def scraped(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric_view(client, name: str) -> tuple[float, float | None]:
    samples = scraped(client.get("/metrics").get_data(as_text=True))
    labels = (("queue", name),)
    return samples[("jobsvc_queue_depth", labels)], samples.get(("jobsvc_queue_oldest_age_seconds", labels))


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_age_grows_while_the_oldest_job_waits_and_is_zero_once_drained(redis_server, client):
    empty = api_view(client, "low")
    assert (empty["depth"], empty["oldest_age"]) == (0, 0.0)
    assert metric_view(client, "low") == (0.0, 0.0)
    submit(client, "low")
    first = api_view(client, "low")
    assert first["depth"] == 1 and 0.0 <= first["oldest_age"] < 1.0
    wait_until(lambda: api_view(client, "low")["oldest_age"] >= first["oldest_age"] + 1.0, 5, "the wait to grow")
    for _ in range(4):
        submit(client, "low")  # newer jobs behind it: the wait is still the oldest one's
    view = api_view(client, "low")
    assert view["depth"] == view["counts"]["queued"] == 5
    assert view["oldest_age"] >= first["oldest_age"] + 1.0
    depth, age = metric_view(client, "low")
    assert depth == 5 and age >= first["oldest_age"] + 1.0
    assert metric_view(client, "default") == (0.0, 0.0)  # other queues: empty, no wait

    worker = start_worker(redis_server.url, "--burst")
    try:
        assert worker.process.wait(60) == 0, worker.output()
    finally:
        worker.stop()
    drained = api_view(client, "low")
    assert (drained["depth"], drained["oldest_age"]) == (0, 0.0)
    assert metric_view(client, "low") == (0.0, 0.0)


def test_paused_state_is_a_metric(client):
    assert scraped(client.get("/metrics").get_data(as_text=True))[("jobsvc_queue_paused", (("queue", "low"),))] == 0
    assert client.post("/api/queues/low/pause").status_code == 200
    samples = scraped(client.get("/metrics").get_data(as_text=True))
    assert samples[("jobsvc_queue_paused", (("queue", "low"),))] == 1
    assert samples[("jobsvc_queue_paused", (("queue", "high"),))] == 0


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    expressions += [variable["definition"] for variable in board["templating"]["list"]]
    return expressions


def readme_scaling_queries() -> list[str]:
    """The Prometheus queries of the README's KEDA ScaledObject."""
    text = README.read_text()
    block = text[text.index("kind: ScaledObject") :]
    block = block[: block.index("```")]
    return [line.split("query:", 1)[1].strip() for line in block.splitlines() if "query:" in line]


def test_every_dashboard_expression_names_a_series_the_service_exports(redis_server, redis_conn):
    """The dashboard's queries (and the README's KEDA queries) against the metric names a real
    gunicorn serves on /metrics."""
    web, base = start_web(redis_server.url)
    try:
        exported = {name for name, _ in scraped(httpx.get(base + "/metrics", timeout=10).text)}
    finally:
        web.stop()
    scaling = readme_scaling_queries()
    assert len(scaling) == 2
    expressions = dashboard_expressions() + scaling
    assert len(expressions) >= 12
    named = set()
    for expression in expressions:
        names = set(METRIC_NAME.findall(expression))
        assert names, expression
        named |= names
        assert names <= exported, (expression, names - exported)
    wanted = {"jobsvc_queue_depth", "jobsvc_queue_oldest_age_seconds", "jobsvc_workers_alive"}
    assert wanted | {"jobsvc_job_events_total"} <= named  # depth, age, workers, throughput and failures
    assert any('event="failed"' in expression for expression in expressions)
