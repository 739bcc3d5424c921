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


def test_limits_drains_verify_every_job(redis_server):
    """bench/limits.py: no-limit jobs drain while a limited key is live; one key with concurrency 4."""
    from bench.limits import drain as limits_drain

    in_flight = limits_drain(redis_server.url, "plain_limit_in_flight", 30)
    assert in_flight["jobs"] == 30 and in_flight["round_trips_per_job"] <= 2
    shared = limits_drain(redis_server.url, "one_key_c4", 30)
    assert shared["jobs"] == 30
    redis_server.client().flushall()
