"""The benchmark's drain measurement runs and verifies every job (tiny N; no timings asserted)."""

from __future__ import annotations

from bench.drain import drain


def test_drain_checks_every_result_and_counts_round_trips(redis_server):
    handwritten = drain(redis_server.url, "handwritten", 30)
    assert handwritten["verified"] == 30
    assert 1.5 <= handwritten["round_trips_per_job"] <= 2.5  # BRPOP + SET
    service = drain(redis_server.url, "service", 30)
    assert service["verified"] == 30
    assert service["round_trips_per_job"] <= 2  # one STEP per job, plus start-up noise
    assert service["commands_per_job"] > service["round_trips_per_job"]
    redis_server.client().flushall()
