"""Redis's side of a job, by phase: `python -m bench.redis_cost [--jobs 2000] [--rounds 3]`.

Two phases, each measured on its own with INFO before and after:
- submit: N `add` jobs submitted one at a time through the service's own submit path (what
  POST /api/jobs runs after validation: one EVALSHA per job);
- run: the queue list (and the wake list the submissions filled) is parked under another
  key, `worker.py` starts and goes idle, one MULTI puts both back, and the clock stops when
  every job is in the finished registry.
Beside them, the hand-written baseline: LPUSH one at a time, then its BRPOP/SET worker.

Redis CPU is `used_cpu_user + used_cpu_sys` (the whole server: on a loaded machine it is
noisy); INFO commandstats gives each command's calls and the microseconds spent in it. The
EVALSHA line is the whole script, the commands it calls included (they are listed on their own
lines as well), so "in scripts" is the part of EVALSHA spent in those commands and the rest is
Lua and the script call itself. Medians over rounds. `--server make-run` measures against the
server `make run` starts (append-only file on, everysec) instead of a plain redis-server.
"""

from __future__ import annotations

import argparse
import json
import time

from redis import Redis

from bench import handwritten
from bench.drain import start_worker, wait_idle
from bench.util import Progress, median, wait_until
from tests.servers import RedisServer
from webapp.store import keys

PHASES = ("submit", "run")
KINDS = {"service": "service (submit EVALSHA, FastWorker STEP)", "handwritten": "hand-written (LPUSH, BRPOP/SET)"}
ROWS = {
    ("service", "submit"): "service: the submit path's EVALSHA",
    ("service", "run"): "service: FastWorker (STEP)",
    ("handwritten", "submit"): "hand-written: LPUSH",
    ("handwritten", "run"): "hand-written: BRPOP + SET",
}
STAGING = "bench:cost:staging"
STAGING_WAKE = "bench:cost:staging-wake"
SCRIPT_COMMANDS = {"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"}
# Commands a phase's measuring client sends itself; subtracted by name where counted (see below).
OWN = {"info"}


def snapshot(connection: Redis) -> dict:
    info = connection.info("all")
    return {
        "cpu": info["used_cpu_user"] + info["used_cpu_sys"],
        "reads": info["total_reads_processed"],
        "commands": {
            key.removeprefix("cmdstat_"): {"calls": value["calls"], "usec": value["usec"]}
            for key, value in info.items()
            if key.startswith("cmdstat_")
        },
    }


def phase_delta(before: dict, after: dict, n: int, own: dict[str, int] | None = None) -> dict:
    """Per job: Redis CPU, round trips and every command's calls and µs, minus our own calls."""
    own = own or {}
    commands = {}
    for name, row in after["commands"].items():
        if name in OWN:
            continue
        was = before["commands"].get(name, {"calls": 0, "usec": 0})
        calls = row["calls"] - was["calls"] - own.get(name, 0)
        usec = row["usec"] - was["usec"]
        if calls > 0:  # (a command only the measuring client sent is left out, its µs too)
            commands[name] = {"calls_per_job": calls / n, "usec_per_job": usec / n}
    own_reads = sum(own.values()) + 2  # the polls, the MULTI block's one read, the INFO after
    return {
        "jobs": n,
        "cpu_ms_per_job": (after["cpu"] - before["cpu"]) * 1000 / n,
        "round_trips_per_job": max(0, after["reads"] - before["reads"] - own_reads) / n,
        "commands_per_job": sum(row["calls_per_job"] for row in commands.values()),
        "commandstats_usec_per_job": sum(
            row["usec_per_job"] for name, row in commands.items() if name not in SCRIPT_COMMANDS
        ),
        "script_usec_per_job": sum(row["usec_per_job"] for name, row in commands.items() if name in SCRIPT_COMMANDS),
        "commands": commands,
    }


def submit_service(url: str, n: int) -> None:
    from webapp import create_app
    from webapp.service.submission import SubmitRequest

    app = create_app({"REDIS_URL": url, "SUBMIT_RATE_LIMIT": "", "LOG_LEVEL": "WARNING"})
    service = app.extensions["jobsvc"]
    for number in range(n):
        service.enqueue([service.plan(SubmitRequest(name="add", args=[number, 1]))], None)


def submit_handwritten(connection: Redis, n: int) -> None:
    for number in range(n):
        connection.lpush(handwritten.QUEUE, json.dumps({"id": f"cost{number}", "a": number, "b": 1}))


def measure(url: str, kind: str, n: int, processes: int = 1) -> dict:
    """One round of one kind: {"submit": ..., "run": ...}, each per job."""
    connection = Redis.from_url(url)
    connection.flushall()
    if kind == "service":
        # the app's own start-up (script loading, catalog) happens before the first snapshot
        from webapp import create_app

        create_app({"REDIS_URL": url, "SUBMIT_RATE_LIMIT": "", "LOG_LEVEL": "WARNING"})
    before = snapshot(connection)
    if kind == "service":
        submit_service(url, n)
    else:
        submit_handwritten(connection, n)
    submitted = phase_delta(before, snapshot(connection), n)

    queue = keys.queue("default") if kind == "service" else handwritten.QUEUE
    wake = keys.wake("default")
    parked_wake = kind == "service" and connection.exists(wake)
    with connection.pipeline() as pipe:
        pipe.rename(queue, STAGING)
        if parked_wake:
            pipe.rename(wake, STAGING_WAKE)
        pipe.execute()
    worker = start_worker(kind, url, processes)
    try:
        wait_idle(connection, processes, worker)
        time.sleep(0.2)  # start-up maintenance settles
        polls = 0
        if kind == "service":
            finished, failed = keys.registry("finished", "default"), keys.registry("failed", "default")

            def done():
                nonlocal polls
                polls += 1
                with connection.pipeline(transaction=False) as pipe:
                    pipe.zcard(finished)
                    pipe.zcard(failed)
                    return sum(pipe.execute()) >= n

            own_calls = lambda: {"zcard": 2 * polls, "rename": 1 + bool(parked_wake), "multi": 1, "exec": 1}  # noqa: E731
        else:

            def done():
                nonlocal polls
                polls += 1
                return connection.dbsize() >= n  # n result keys; the queue list is gone

            own_calls = lambda: {"dbsize": polls, "rename": 1, "multi": 1, "exec": 1}  # noqa: E731
        before = snapshot(connection)
        with connection.pipeline() as pipe:
            pipe.rename(STAGING, queue)
            if parked_wake:
                pipe.rename(STAGING_WAKE, wake)
            pipe.execute()
        wait_until(done, max(120.0, n / 20), interval=0.01, what=f"{kind}: {n} jobs to finish")
        ran = phase_delta(before, snapshot(connection), n, own_calls())
    finally:
        worker.stop()
    if kind == "service" and connection.zcard(keys.registry("failed", "default")):
        raise AssertionError("jobs failed in the run phase")
    return {"submit": submitted, "run": ran}


def median_phase(runs: list[dict]) -> dict:
    names = {name for run in runs for name in run["commands"]}
    scalar = [key for key, value in runs[0].items() if isinstance(value, float | int) and key != "jobs"]
    return {
        **{key: median(run[key] for run in runs) for key in scalar},
        "commands": {
            name: {
                field: median(run["commands"].get(name, {}).get(field, 0.0) for run in runs)
                for field in ("calls_per_job", "usec_per_job")
            }
            for name in names
        },
    }


def measure_all(url: str, rounds: int, n: int, progress: Progress, processes: int = 1) -> dict:
    """Both kinds, interleaved per round; per phase the medians of the rounds."""
    runs: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for round_no in range(rounds):
        for kind in KINDS:
            with progress.phase("redis-cost", round_no + 1, rounds, f"{KINDS[kind]}, N={n}") as step:
                result = measure(url, kind, n, processes)
                step.result(
                    f"Redis CPU ms/job: submit {result['submit']['cpu_ms_per_job']:.3f}, "
                    f"run {result['run']['cpu_ms_per_job']:.3f}"
                )
            runs[kind].append(result)
    return {
        "jobs": n,
        "rounds": rounds,
        "processes": processes,
        **{
            kind: {"runs": found, **{phase: median_phase([run[phase] for run in found]) for phase in PHASES}}
            for kind, found in runs.items()
        },
    }


def report(data: dict) -> list[str]:
    lines = []
    add = lines.append
    add("")
    add(
        f"(h) Redis per job, by phase (bench.redis_cost, N={data['jobs']}, medians of {data['rounds']} rounds; "
        "CPU = used_cpu_user+sys of the server)"
    )
    add(
        f"{'phase':7} {'who':42} {'CPU ms/job':>10} {'RT/job':>7} {'cmds/job':>8} {'script µs/job':>13} "
        f"{'commands µs/job':>15}"
    )
    totals = {}
    for kind in KINDS:
        for phase in PHASES:
            r, label = data[kind][phase], ROWS[kind, phase]
            totals[kind] = totals.get(kind, 0.0) + r["cpu_ms_per_job"]
            add(
                f"{phase:7} {label:42} {r['cpu_ms_per_job']:10.4f} {r['round_trips_per_job']:7.2f} "
                f"{r['commands_per_job']:8.1f} {r['script_usec_per_job']:13.2f} {r['commandstats_usec_per_job']:15.2f}"
            )
    for kind, label in KINDS.items():
        total = totals[kind]
        ceiling = 1000 / total if total else float("nan")
        add(f"  {label}: submit + run {total:.4f} ms of Redis CPU per job → one Redis core: {ceiling:,.0f} jobs/s")
    add("  script µs: EVALSHA as a whole; commands µs: every other command, those the scripts call included")
    add("  target (issue 16): service submit + run ≤ 0.075 ms")
    for phase in PHASES:
        commands = data["service"][phase]["commands"]
        add("")
        add(f"  service, {phase} phase: INFO commandstats per job (by µs; evalsha includes the commands it calls)")
        add(f"  {'command':26} {'calls/job':>9} {'µs/job':>8} {'µs/call':>8}")
        for name, row in sorted(commands.items(), key=lambda item: -item[1]["usec_per_job"]):
            if row["calls_per_job"] < 0.01 and row["usec_per_job"] < 0.05:
                continue
            per_call = f"{row['usec_per_job'] / row['calls_per_job']:8.2f}" if row["calls_per_job"] else f"{'-':>8}"
            add(f"  {name:26} {row['calls_per_job']:9.2f} {row['usec_per_job']:8.2f} {per_call}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1, help="worker processes in the run phase")
    parser.add_argument(
        "--server",
        choices=("bench", "make-run"),
        default="bench",
        help="bench: a private redis-server without persistence; make-run: the server `make run` starts (AOF)",
    )
    options = parser.parse_args(argv)
    if options.server == "make-run":
        from bench.makerun import EmbeddedServer

        server = EmbeddedServer(appendonly=True).start()
    else:
        server = RedisServer().start()
    try:
        data = measure_all(server.url, options.rounds, options.jobs, Progress(), options.processes)
    finally:
        server.cleanup()
    print("\n".join(report(data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
