"""(a) HTTP: POST /api/jobs and GET /api/jobs/<id> against baseline routes on the same server.

Load comes from `wrk` (8 connections). Server CPU is the user + system time of gunicorn's
whole process tree over the run, divided by the requests served.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from redis import Redis

from bench.util import Progress, memory_kb, process_tree, tree_cpu
from tests.servers import start_web, start_worker

BENCH_APP = "bench.app:create_bench_app()"  # the service plus the baseline routes

ENQUEUE_BODY = json.dumps({"name": "add", "args": [1, 2]})
QUEUE_KEY = "rq:queue:default"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk_script(method: str, body: str | None) -> str:
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = '{body}'")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    path = Path(tempfile.mkstemp(prefix="jobsvc-wrk-", suffix=".lua")[1])
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run_wrk(url: str, method: str, body: str | None, seconds: float, connections: int = 8) -> dict:
    """One wrk run; returns requests, 2xx, req/s and latency percentiles (ms)."""
    script = wrk_script(method, body)
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", script, url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    Path(script).unlink()
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    percentiles = {}
    for label, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M):
        percentiles[f"p{label}_ms"] = float(value) * UNITS[unit]
    return {
        "requests": requests,
        "ok": requests - (int(non2xx.group(1)) if non2xx else 0),
        "socket_errors": errors.group(1) if errors else "",
        "req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        **percentiles,
    }


def measure(web_pid: int, url: str, method: str, body: str | None, seconds: float) -> dict:
    cpu_before = tree_cpu(web_pid)
    result = run_wrk(url, method, body, seconds)
    result["cpu_ms_per_request"] = (tree_cpu(web_pid) - cpu_before) * 1000 / max(1, result["requests"])
    return result


CASE_LABELS = {
    "plain": "POST /bench/plain (JSON only)",
    "lpush": "POST /bench/lpush (one LPUSH)",
    "enqueue": "POST /api/jobs",
    "get": "GET /bench/get (one GET)",
    "status": "GET /api/jobs/<id>",
}


def http_bench(
    redis_url: str,
    rounds: int,
    seconds: float,
    progress: Progress | None = None,
    only: tuple[str, ...] = tuple(CASE_LABELS),
    sync: bool = True,
    section: str = "http",
    round_offset: int = 0,
    round_total: int | None = None,
) -> dict:
    """Every case once per round, interleaved, so drifts of a shared machine hit all alike.

    `only` picks the cases (the baselines are cheap: keep them beside what they compare with);
    `sync` adds the plain and submit routes under gunicorn's sync workers. Each case announces
    itself on `progress` as "[section round/total] ..."."""
    progress = progress or Progress()
    round_total = round_total or rounds
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    connection = Redis.from_url(redis_url)
    connection.flushall()
    web, base = start_web(redis_url, app=BENCH_APP, SUBMIT_RATE_LIMIT="", LOG_LEVEL="WARNING")
    try:
        # one finished job to read back, and the value the GET baseline reads
        job_id = httpx.post(f"{base}/api/jobs", content=ENQUEUE_BODY, headers={"Content-Type": "application/json"})
        job_id = job_id.json()["id"]
        burst = start_worker(redis_url, "--burst")
        burst.process.wait(60)
        burst.stop()  # closes its log
        connection.set("bench:value", "x" * 64)
        cases = {
            "plain": ("POST", "/bench/plain", ENQUEUE_BODY),
            "lpush": ("POST", "/bench/lpush", ENQUEUE_BODY),
            "enqueue": ("POST", "/api/jobs", ENQUEUE_BODY),
            "get": ("GET", "/bench/get", None),
            "status": ("GET", f"/api/jobs/{job_id}", None),
        }
        cases = {name: case for name, case in cases.items() if name in only}
        run_wrk(base + "/bench/plain", "POST", ENQUEUE_BODY, 1)  # warm up
        results: dict[str, list[dict]] = {name: [] for name in cases}
        accepted = 0
        for round_no in range(rounds):
            for name, (method, path, body) in cases.items():
                queued_before = connection.llen(QUEUE_KEY)
                what = f"{CASE_LABELS[name]}, wrk 8 connections {seconds:g} s"
                with progress.phase(section, round_offset + round_no + 1, round_total, what) as step:
                    result = measure(web.pid, base + path, method, body, seconds)
                    step.result(f"{result['req_per_s']:,.0f} req/s, p99 {result.get('p99_ms', float('nan')):.2f} ms")
                if name == "enqueue":
                    # wrk may drop replies in flight at its end: jobs >= 2xx, by at most 8
                    result["jobs_created"] = connection.llen(QUEUE_KEY) - queued_before
                    accepted += result["ok"]
                results[name].append(result)
        # every job id in the queue has its job hash
        ids = connection.lrange(QUEUE_KEY, 0, -1)
        with connection.pipeline(transaction=False) as pipe:
            for job in ids:
                pipe.exists(b"rq:job:" + job)
            missing = len(ids) - sum(pipe.execute())
        memory = {str(pid): memory_kb(pid) for pid in process_tree(web.pid)}
    finally:
        web.stop()
        time.sleep(0.2)
    found = {
        "cases": results,
        "jobs_in_queue": len(ids),
        "accepted_2xx": accepted,
        "jobs_without_hash": missing,
        "web_memory": memory,
    }
    if not sync:
        return found
    # the same two routes under gunicorn's sync workers, to choose the worker class by measurement
    sync_results: dict[str, list[dict]] = {"plain": [], "enqueue": []}
    web, base = start_web(redis_url, app=BENCH_APP, SUBMIT_RATE_LIMIT="", LOG_LEVEL="WARNING", WEB_WORKER_CLASS="sync")
    try:
        run_wrk(base + "/bench/plain", "POST", ENQUEUE_BODY, 1)
        for round_no in range(rounds):
            for name in sync_results:
                method, path, body = cases[name]
                what = f"{CASE_LABELS[name]}, gunicorn sync workers, wrk 8 connections {seconds:g} s"
                with progress.phase(f"{section} sync", round_no + 1, rounds, what) as step:
                    result = measure(web.pid, base + path, method, body, seconds)
                    step.result(f"{result['req_per_s']:,.0f} req/s")
                sync_results[name].append(result)
    finally:
        web.stop()
    return {**found, "sync_cases": sync_results}
