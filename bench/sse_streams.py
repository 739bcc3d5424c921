"""Hold many SSE streams on ONE web process; count Redis connections and memory.

    .venv/bin/python bench/sse_streams.py                     # 500 streams, gevent and gthread
    .venv/bin/python bench/sse_streams.py --streams 200 --classes gevent --json out.json

For each gunicorn worker class it starts a private Redis, the web (WEB_CONCURRENCY=1) and
one worker.py, then opens the streams in steps (half `GET /api/events`, half
`GET /api/jobs/<id>/events` on a job nobody runs), and at each step reads the web
process's RSS and thread count and Redis's `CLIENT LIST` size. With every stream open it
appends an event for that job and times its delivery to every client (fan-out), times
`POST /api/jobs` against the same server with no streams open (the baseline), and finally
appends the job's terminal event and checks that every job stream ends.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rq import Queue  # noqa: E402
from rq.serializers import JSONSerializer  # noqa: E402

from tests.servers import RedisServer, start_web, start_worker  # noqa: E402
from tests.sse import StreamCrowd  # noqa: E402
from webapp.store.events import EventLog  # noqa: E402


def child_pid(master_pid: int) -> int:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {children}")
    return int(children[0])


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "Threads"):
            fields[name] = int(value.split()[0])
    return fields


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


POST_CLIENT = """
import statistics, sys, time, httpx
timings = []
with httpx.Client(timeout=10) as http:
    for i in range(int(sys.argv[2])):
        started = time.perf_counter()
        response = http.post(sys.argv[1] + "/api/jobs", json={"name": "add", "args": [i, 1]})
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 202, response.text
print(statistics.median(timings))
"""


def post_latency_ms(base: str, count: int = 200) -> float:
    """Median of sequential `POST /api/jobs` (add), from its own process (not this one's GIL)."""
    done = subprocess.run([sys.executable, "-c", POST_CLIENT, base, str(count)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr)
    return float(done.stdout)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(worker_class: str, streams: int) -> dict:
    server = RedisServer().start()
    redis = server.client()
    web, base = start_web(
        server.url,
        WEB_CONCURRENCY="1",
        WEB_WORKER_CLASS=worker_class,
        WEB_THREADS=str(streams + 32),  # gthread: one thread per held stream
        WEB_WORKER_CONNECTIONS=str(streams + 100),
        LOG_LEVEL="WARNING",
    )
    worker = start_worker(server.url, LOG_LEVEL="WARNING")
    try:
        pid = child_pid(web.pid)
        parked = Queue("parked", connection=redis, serializer=JSONSerializer).enqueue("jobs.basic.add", 1, 2)
        cpu_before = cpu_seconds(pid)
        post_ms_idle = post_latency_ms(base)
        post_cpu_idle = (cpu_seconds(pid) - cpu_before) / 200 * 1000
        time.sleep(1)
        steps = []

        def sample(open_streams: int) -> None:
            time.sleep(1.0)
            status = proc_status(pid)
            clients = redis.client_list()
            steps.append(
                {
                    "streams": open_streams,
                    "redis_clients": len(clients) - 1,  # less this bench's own
                    "web_stream_connections": sum(c["name"].startswith("jobsvc-sse-") for c in clients),
                    "rss_kb": status["VmRSS"],
                    "threads": status["Threads"],
                }
            )

        sample(0)
        half = streams // 2
        urls = [f"{base}/api/events"] * half + [f"{base}/api/jobs/{parked.id}/events"] * (streams - half)
        plan = [1, streams // 5, streams // 2, streams]
        crowds = []
        with ExitStack() as stack:
            opened_so_far = 0
            for target in plan:
                batch = urls[opened_so_far:target]
                crowd = stack.enter_context(StreamCrowd(batch))
                crowds.append(crowd)
                size = len(batch)
                crowd.wait(lambda c=crowd, n=size: c.opened() == n, 120, f"{target} streams to open")
                opened_so_far = target
                sample(target)

            everyone = [s for crowd in crowds for s in crowd.streams]
            cpu_before = cpu_seconds(pid)
            post_ms_loaded = post_latency_ms(base)
            post_cpu_loaded = (cpu_seconds(pid) - cpu_before) / 200 * 1000
            log = EventLog(redis, "jobsvc:events", maxlen=10000, default_ttl=3600)
            cpu_before = cpu_seconds(pid)
            sent_at = time.time()
            marker = log.append("progress", job_id=parked.id, name="add", queue="parked", status="started").decode()

            def delivered() -> list[float]:
                return [t - sent_at for s in everyone for t, e in s.events if e["id"] == marker]

            for crowd in crowds:
                crowd.wait(lambda: len(delivered()) == streams, 60, "the event to reach every stream")
            fanout = [d * 1000 for d in delivered()]
            fanout_cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000
            log.append("finished", job_id=parked.id, name="add", queue="parked", status="finished")
            job_streams = [s for s in everyone if "/api/jobs/" in s.url]
            for crowd in crowds:
                crowd.wait(lambda: all(s.ended for s in job_streams), 60, "job streams to end at the terminal event")
            sample(streams - len(job_streams))
        first, loaded = steps[0], steps[-2]
        return {
            "worker_class": worker_class,
            "streams": streams,
            "steps": steps,
            "redis_clients_idle": first["redis_clients"],
            "redis_clients_loaded": loaded["redis_clients"],
            "rss_mb_idle": round(first["rss_kb"] / 1024, 1),
            "rss_mb_loaded": round(loaded["rss_kb"] / 1024, 1),
            "kb_per_stream": round((loaded["rss_kb"] - first["rss_kb"]) / streams, 1),
            "threads_loaded": loaded["threads"],
            "fanout_ms_p50": round(statistics.median(fanout), 2),
            "fanout_ms_p99": round(percentile(fanout, 0.99), 2),
            "fanout_ms_max": round(max(fanout), 2),
            "fanout_web_cpu_ms": round(fanout_cpu_ms, 1),
            "post_ms_idle": round(post_ms_idle, 2),
            "post_ms_loaded": round(post_ms_loaded, 2),
            "post_ratio": round(post_ms_loaded / post_ms_idle, 2),
            "post_cpu_ms_idle": round(post_cpu_idle, 2),
            "post_cpu_ms_loaded": round(post_cpu_loaded, 2),
        }
    finally:
        worker.stop()
        web.stop()
        server.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--classes", default="gevent,gthread", help="gunicorn worker classes to compare")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the results here")
    options = parser.parse_args()
    results = [run_one(name.strip(), options.streams) for name in options.classes.split(",") if name.strip()]

    print(f"\n{options.streams} SSE streams on one web process (WEB_CONCURRENCY=1)\n")
    for result in results:
        print(f"== {result['worker_class']}")
        print(f"{'streams':>8} {'redis clients':>14} {'of them SSE':>12} {'RSS MB':>8} {'threads':>8}")
        for step in result["steps"]:
            print(
                f"{step['streams']:>8} {step['redis_clients']:>14} {step['web_stream_connections']:>12} "
                f"{step['rss_kb'] / 1024:>8.1f} {step['threads']:>8}"
            )
        print(
            f"memory per stream {result['kb_per_stream']} KB; fan-out of one event to all streams "
            f"p50 {result['fanout_ms_p50']} ms, p99 {result['fanout_ms_p99']} ms, max {result['fanout_ms_max']} ms "
            f"(as received by this bench's client; web CPU for it: {result['fanout_web_cpu_ms']} ms)"
        )
        print(
            f"POST /api/jobs median {result['post_ms_idle']} ms without streams, {result['post_ms_loaded']} ms "
            f"with {options.streams} open ({result['post_ratio']}x); web CPU per POST (its 3 events fanned out "
            f"to {options.streams // 2} global streams included) {result['post_cpu_ms_idle']} -> "
            f"{result['post_cpu_ms_loaded']} ms\n"
        )
    if options.json_path:
        Path(options.json_path).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
