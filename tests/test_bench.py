"""The benchmark's measurements run, verify every job and report what they measured (tiny N; no timings asserted)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from bench import __main__ as bench_main
from bench import latency, makerun, redis_cost, route_cost
from bench.drain import drain
from bench.makerun import EmbeddedServer
from bench.util import Progress


def test_drain_checks_every_result_and_counts_round_trips(redis_server):
    handwritten = drain(redis_server.url, "handwritten", 30)
    assert handwritten["verified"] == 30
    assert 1.5 <= handwritten["round_trips_per_job"] <= 2.5  # BRPOP + SET
    service = drain(redis_server.url, "service", 30)
    assert service["verified"] == 30
    assert service["round_trips_per_job"] <= 2  # one STEP per job, plus start-up noise
    assert service["commands_per_job"] > service["round_trips_per_job"]
    redis_server.client().flushall()


def test_the_process_tree_of_a_process_that_just_exited_is_its_pid_alone():
    """A process gone when the bench walks its tree (RQ's work horses exit mid-walk) is no error."""
    from bench.util import process_tree, tree_cpu

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert process_tree(gone.pid) == [gone.pid]
    assert tree_cpu(gone.pid) == 0


def test_progress_announces_each_phase_then_its_result_and_failures():
    stream = io.StringIO()
    progress = Progress(stream)
    with progress.phase("drain", 2, 3, "FastWorker, 1 process, N=5000") as step:
        step.result("2,951 jobs/s")
    with pytest.raises(ValueError), progress.phase("http", 1, 3, "POST /api/jobs"):
        raise ValueError("wrk failed")
    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(r"\[drain 2/3\] FastWorker, 1 process, N=5000 …  2,951 jobs/s \(\d+\.\d s; 0:\d\d in\)", first)
    assert re.fullmatch(r"\[http 1/3\] POST /api/jobs …  failed \(\d+\.\d s\)", second)


def test_redis_cost_splits_submit_and_run_with_their_commands(redis_server):
    service = redis_cost.measure(redis_server.url, "service", 20)
    submit, run = service["submit"], service["run"]
    assert submit["jobs"] == run["jobs"] == 20
    # one EVALSHA per submission; the run is STEP, one script per job, calling many commands
    assert submit["commands"]["evalsha"]["calls_per_job"] == pytest.approx(1, abs=0.1)
    assert run["commands"]["evalsha"]["calls_per_job"] >= 1
    assert run["commands_per_job"] > 10 * run["round_trips_per_job"] > 0
    assert submit["cpu_ms_per_job"] > 0 and run["cpu_ms_per_job"] > 0
    assert run["script_usec_per_job"] > 0
    assert "info" not in run["commands"]  # the measuring client's own INFO is left out
    hand = redis_cost.measure(redis_server.url, "handwritten", 20)
    assert set(hand["submit"]["commands"]) == {"lpush"}
    assert hand["submit"]["commands"]["lpush"]["calls_per_job"] == 1
    assert hand["run"]["commands"]["set"]["calls_per_job"] == 1
    assert hand["run"]["commands"]["brpop"]["calls_per_job"] >= 1
    assert "dbsize" not in hand["run"]["commands"]  # the polls are subtracted
    redis_server.client().flushall()


def test_route_cost_times_the_routes_and_each_piece_in_place_then_puts_everything_back():
    affinity = os.sched_getaffinity(0)
    data = route_cost.measure(rounds=2, requests=40, progress=Progress(io.StringIO()))
    assert os.sched_getaffinity(0) == affinity  # the pin is lifted for the sections that follow
    assert set(data["routes"]) == set(route_cost.ROUTES)  # each answered 2xx, or measure raised
    assert all(value > 0 for value in data["routes"].values())
    # without the whole enqueue or the whole job view a route does less: far less than its CPU
    assert data["without"]["service"] < data["routes"]["enqueue"] * 0.8
    assert data["without"]["view"] < data["routes"]["status"] * 0.9
    text = "\n".join(route_cost.report(data))
    for _route, label in data["labels"].values():
        assert label in text
    assert re.search(r"POST /api/jobs costs \d+ µs more than the one-LPUSH route", text)


def test_replaced_puts_back_a_method_and_an_instance_attribute():
    class Thing:
        def __init__(self):
            self.value = 1

        def method(self):
            return "method"

    thing = Thing()
    with route_cost.replaced(thing, "method", lambda: "stand-in"), route_cost.replaced(thing, "value", 2):
        assert thing.method() == "stand-in" and thing.value == 2
    assert thing.method() == "method" and thing.value == 1 and vars(thing) == {"value": 1}


def test_redis_cost_report_has_both_phases_the_baseline_and_the_ceiling(redis_server):
    data = redis_cost.measure_all(redis_server.url, 1, 10, Progress(io.StringIO()))
    text = "\n".join(redis_cost.report(data))
    for row in redis_cost.ROWS.values():
        assert row in text
    assert re.search(r"service .*submit \+ run [\d.]+ ms of Redis CPU per job → one Redis core: [\d,]+ jobs/s", text)
    assert "service, submit phase" in text and "service, run phase" in text
    short = "\n".join(redis_cost.summary(data, "the make-run server"))
    assert re.search(r"service .*submit [\d.]+, run [\d.]+; submit \+ run [\d.]+ → one core: [\d,]+ jobs/s", short)
    assert re.search(r"service ÷ hand-written: × [\d.]+ the Redis CPU per job", short)
    redis_server.client().flushall()


def test_make_run_server_is_the_launchers_with_and_without_its_append_only_file():
    servers = [EmbeddedServer(appendonly=True), EmbeddedServer(appendonly=False)]
    try:
        for server in servers:
            server.start()
        on, off = (server.describe() for server in servers)
        assert on["appendonly"] == "yes" and on["appendfsync"] == "everysec"
        assert off["appendonly"] == "no" and off["appendfsync"] == "everysec"
        assert on["server"] == off["server"]
        aof = servers[0].client().info("persistence")
        assert aof["aof_enabled"] == 1
        result = drain(servers[0].url, "service", 20)  # jobs run and are verified against it
        assert result["verified"] == 20
        assert any(servers[0].dir.rglob("*.aof"))  # the launcher's files, in the server's own directory
    finally:
        for server in servers:
            server.cleanup()
    assert not any(server.dir.exists() for server in servers)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_bench_make_run_section_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_main, "RESULTS", tmp_path)
    assert bench_main.main(["--only", "make-run", "--rounds", "1", "--jobs", "20", "--seconds", "1"]) == 0
    out, err = capsys.readouterr()
    for server in ("AOF on", "AOF off"):
        for label in makerun.DRAINS:
            assert f"[make-run {server} 1/1] {bench_main.DRAIN_LABELS[label]}, N=20 …" in err
        assert f"[make-run {server} http 1/1] POST /api/jobs, wrk 8 connections 1 s …" in err
    assert "(g) the `make run` configuration" in out
    assert "appendonly yes, appendfsync everysec" in out
    for label in ("hand-written BRPOP/SET, 1 process", "FastWorker, 2 processes", "POST /bench/lpush (one LPUSH)"):
        assert label in out
    saved = json.loads((tmp_path / "latest.json").read_text())
    assert saved["make_run"]["drain"]["aof"]["service"]["runs"][0]["verified"] == 20


@pytest.mark.skipif(shutil.which("callgrind_control") is None, reason="valgrind is not installed")
@pytest.mark.parametrize("kind", ["bench", "make-run"])
def test_redis_cost_counts_instructions_per_phase_under_callgrind(kind):
    server = redis_cost.CallgrindServer(kind).start()
    try:
        data = redis_cost.measure_all(server.url, 1, 10, Progress(io.StringIO()), counter=server)
    finally:
        server.cleanup()
    service, hand = data["service"], data["handwritten"]
    for phase in redis_cost.PHASES:
        assert service[phase]["instructions_per_job"] > hand[phase]["instructions_per_job"] > 0
    assert "lpushCommand" in hand["runs"][0]["submit"]["functions"]
    assert any(name in service["runs"][0]["run"]["functions"] for name in redis_cost.SCRIPTS)
    text = "\n".join(redis_cost.report(data))
    assert "Lua itself (scripts minus the commands they call)" in text
    assert re.search(r"instructions per job, submit \+ run: service [\d,]+, hand-written [\d,]+", text)
    # the make-run server's append-only file is fed every write; the bench's server has none
    assert ("feeding the append-only file" in text) == (kind == "make-run")


def test_sse_section_runs_beside_its_pubsub_baseline(redis_server):
    assert latency.has_sse_route(redis_server.url)  # the route names a converter: it must still be found
    found = latency.sse_latency(redis_server.url, samples=3)
    assert found["samples"] == 3
    assert found["p50_ms"] > 0 and found["pubsub_p50_ms"] > 0
    redis_server.client().flushall()


def test_limits_drains_verify_every_job(redis_server):
    """bench/limits.py: no-limit jobs drain while a limited key is live; one key with concurrency 4."""
    from bench.limits import drain as limits_drain

    in_flight = limits_drain(redis_server.url, "plain_limit_in_flight", 30)
    assert in_flight["jobs"] == 30 and in_flight["round_trips_per_job"] <= 2
    shared = limits_drain(redis_server.url, "one_key_c4", 30)
    assert shared["jobs"] == 30
    redis_server.client().flushall()


def test_idle_profile_times_each_hop_of_a_lone_job():
    from bench import idle_profile

    medians = idle_profile.profile(warm=5, idle=2, idle_seconds=0.3)
    for kind in ("warm", "idle"):
        hops = medians[kind]
        assert set(idle_profile.HOPS) <= set(hops)
        assert all(hops[name] >= 0 for name in idle_profile.HOPS), hops
        # per job the worker wakes before the result exists, so the medians keep that order
        assert 0 < hops["submit → woken"] < hops["total"] <= hops["total p99"], hops
