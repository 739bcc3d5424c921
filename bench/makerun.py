"""(g) The configuration `make run` starts: its embedded server, append-only file on, `everysec`.

The server is started by `webapp.launcher.start_embedded_redis` itself (the code `make run`
runs, so the bench follows any change to it), on a free port with a temporary data directory.
Beside it runs a second server started the same way whose append-only file is then switched
off (`CONFIG SET appendonly no`): the same binary and settings but persistence, so the ratio
of the two is the cost of persistence alone. Against each, interleaved per round: the drains
of the hand-written BRPOP/SET worker and of the FastWorker with 1 and 2 processes, and the
submit route beside its two baselines (plain JSON route, one-LPUSH route) under gunicorn.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from redis import Redis

from bench import http as http_module
from bench.util import Progress, median, wait_until
from tests.servers import free_port
from webapp import launcher

DRAINS = {
    "handwritten": dict(kind="handwritten"),
    "handwritten-2-processes": dict(kind="handwritten", processes=2),
    "service": dict(kind="service"),
    "service-2-processes": dict(kind="service", processes=2),
}
HTTP_CASES = ("plain", "lpush", "enqueue")
SERVERS = {"aof": "AOF on", "no-aof": "AOF off"}


class EmbeddedServer:
    """The server `make run` starts when nothing answers at REDIS_URL, on a free port."""

    def __init__(self, appendonly: bool = True):
        self.appendonly = appendonly
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="jobsvc-bench-makerun-"))
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        return Redis.from_url(self.url)

    def start(self) -> EmbeddedServer:
        self.process = launcher.start_embedded_redis(self.port, self.dir)

        def up():
            if self.process.poll() is not None:
                raise RuntimeError(f"the embedded server exited; see {self.dir / 'server.log'}")
            return launcher.redis_answers(self.url, 0.2)

        wait_until(up, 15, interval=0.05, what="the embedded server")
        connection = self.client()
        if not self.appendonly:
            connection.config_set("appendonly", "no")

        def settled():
            info = connection.info("persistence")
            return (
                info["aof_enabled"] == int(self.appendonly)
                and not info["aof_rewrite_in_progress"]
                and not info["aof_rewrite_scheduled"]
            )

        wait_until(settled, 30, interval=0.05, what="the append-only file's setting to settle")
        return self

    def describe(self) -> dict:
        connection = self.client()
        info = connection.info("server")
        settings = connection.config_get("appendonly")
        settings.update(connection.config_get("appendfsync"))
        name = "Valkey" if "valkey_version" in info else "Redis"
        version = info.get("valkey_version") or info.get("redis_version")
        return {"server": f"{name} {version}", **settings}

    def cleanup(self) -> None:
        if self.process is not None:
            launcher.stop_process(self.process, "embedded server", 5)
        shutil.rmtree(self.dir, ignore_errors=True)


def run(rounds: int, n: int, seconds: float, progress: Progress, drain_once) -> dict:
    """Every drain and HTTP case against both servers, interleaved per round; medians."""
    servers = {name: EmbeddedServer(appendonly=name == "aof") for name in SERVERS}
    drains: dict[str, dict[str, list[dict]]] = {name: {case: [] for case in DRAINS} for name in SERVERS}
    http: dict[str, dict[str, list[dict]]] = {name: {case: [] for case in HTTP_CASES} for name in SERVERS}
    described = {}
    try:
        for server in servers.values():
            server.start()
        described = {name: server.describe() for name, server in servers.items()}
        for round_no in range(rounds):
            for name, server in servers.items():
                section = f"make-run {SERVERS[name]}"
                for case, options in DRAINS.items():
                    drains[name][case].append(
                        drain_once(server.url, case, {**options, "n": n}, progress, section, round_no + 1, rounds)
                    )
                found = http_module.http_bench(
                    server.url,
                    1,
                    seconds,
                    progress,
                    only=HTTP_CASES,
                    sync=False,
                    section=f"{section} http",
                    round_offset=round_no,
                    round_total=rounds,
                )
                for case in HTTP_CASES:
                    http[name][case].extend(found["cases"][case])
                time.sleep(0.2)
    finally:
        for server in servers.values():
            server.cleanup()
    drain_keys = ["jobs_per_s", "round_trips_per_job", "commands_per_job", "cpu_ms_per_job", "redis_cpu_ms_per_job"]
    http_keys = ["req_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request"]
    return {
        "servers": described,
        "drain": {
            name: {
                case: {"runs": runs, "median": {key: median(run[key] for run in runs) for key in drain_keys}}
                for case, runs in cases.items()
            }
            for name, cases in drains.items()
        },
        "http": {
            name: {
                case: {"runs": runs, "median": {key: median(run[key] for run in runs) for key in http_keys}}
                for case, runs in cases.items()
            }
            for name, cases in http.items()
        },
    }


def report(data: dict, ratio) -> list[str]:
    """The table of section (g): each figure with AOF on and off, and their ratio."""
    lines = []
    add = lines.append
    on = data["servers"].get("aof", {})
    add("")
    add(
        f"(g) the `make run` configuration: its embedded server ({on.get('server', '?')}, appendonly "
        f"{on.get('appendonly', '?')}, appendfsync {on.get('appendfsync', '?')}), "
        "beside the same server with AOF off"
    )
    add(f"{'drain, jobs/s (Redis CPU ms/job)':40} {'AOF on':>16} {'AOF off':>16} {'on ÷ off':>9}")
    labels = {
        "handwritten": "hand-written BRPOP/SET, 1 process",
        "handwritten-2-processes": "hand-written, 2 processes",
        "service": "FastWorker, 1 process",
        "service-2-processes": "FastWorker, 2 processes",
    }
    d = {name: {case: value["median"] for case, value in cases.items()} for name, cases in data["drain"].items()}
    for case, label in labels.items():
        a, b = d["aof"][case], d["no-aof"][case]
        add(
            f"{label:40} {a['jobs_per_s']:7.0f} ({a['redis_cpu_ms_per_job']:.3f}) "
            f"{b['jobs_per_s']:7.0f} ({b['redis_cpu_ms_per_job']:.3f}) {ratio(a['jobs_per_s'], b['jobs_per_s']):9.2f}"
        )
    for name in SERVERS:
        x = {case: d[name][case]["jobs_per_s"] for case in labels}
        add(
            f"  {SERVERS[name]}: FastWorker per process ÷ hand-written per process: 1 process "
            f"{ratio(x['service'], x['handwritten']):.2f}, 2 processes "
            f"{ratio(x['service-2-processes'], x['handwritten-2-processes']):.2f}; 2 processes ÷ one: FastWorker "
            f"×{ratio(x['service-2-processes'], x['service']):.2f}, hand-written "
            f"×{ratio(x['handwritten-2-processes'], x['handwritten']):.2f}"
        )
    add("  target (issue 16): FastWorker per process ≥ 0.75 × the hand-written worker against the make-run server")
    h = {name: {case: value["median"] for case, value in cases.items()} for name, cases in data["http"].items()}
    add(f"{'HTTP, req/s (server CPU ms/req)':40} {'AOF on':>16} {'AOF off':>16} {'on ÷ off':>9}")
    for case in HTTP_CASES:
        a, b = h["aof"][case], h["no-aof"][case]
        add(
            f"{http_module.CASE_LABELS[case]:40} {a['req_per_s']:7.0f} ({a['cpu_ms_per_request']:.3f}) "
            f"{b['req_per_s']:7.0f} ({b['cpu_ms_per_request']:.3f}) {ratio(a['req_per_s'], b['req_per_s']):9.2f}"
        )
    for name in SERVERS:
        x = {case: h[name][case]["req_per_s"] for case in HTTP_CASES}
        add(
            f"  {SERVERS[name]}: POST /api/jobs ÷ plain {ratio(x['enqueue'], x['plain']):.2f}, "
            f"÷ one-LPUSH {ratio(x['enqueue'], x['lpush']):.2f}"
        )
    add("  (make run starts `python worker.py` WORKERS times under honcho; here `worker.py --processes P`)")
    return lines
