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
server `make run` starts (append-only file on, everysec) instead of a plain redis-server, and
`--server make-run-no-aof` against that server with its append-only file off.

`--callgrind` runs the redis-server under valgrind's callgrind and counts the instructions it
executes in each phase (instrumentation switched on for the phase only): a figure a loaded
machine does not disturb, unlike CPU time. The server runs some 50 × slower there, so use a
small N (200 is plenty).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from bench import handwritten
from bench.drain import start_worker, wait_idle
from bench.util import Progress, median, wait_until
from tests.servers import RedisServer, free_port, server_binary
from webapp import launcher
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


class CallgrindServer:
    """redis-server under valgrind's callgrind; `begin()`/`end()` count one phase's instructions."""

    def __init__(self, server: str = "bench"):
        """`server`: bench (the bench's redis-server, no persistence), make-run (the command line
        `make run` starts its embedded server with) or make-run-no-aof (that, append-only file off)."""
        self.server = server
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="jobsvc-callgrind-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> CallgrindServer:
        if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
            raise RuntimeError("--callgrind needs valgrind: apt-get install -y valgrind")
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={self.dir / 'callgrind.out'}",
        ]
        if self.server == "bench":
            command += [server_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir)]
            command += ["--save", "", "--appendonly", "no"]
        else:
            command += launcher.embedded_server_command(self.port, self.dir)
            if self.server == "make-run-no-aof":
                command += ["--appendonly", "no"]  # the last setting on the command line wins
        with (self.dir / "valgrind.log").open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        connection = Redis.from_url(self.url, socket_connect_timeout=1)

        def up():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server under valgrind exited; see {self.dir / 'valgrind.log'}")
            try:
                return connection.ping()
            except RedisError:
                return False

        wait_until(up, 60, interval=0.2, what="redis-server under callgrind")
        want = "no" if self.server in ("bench", "make-run-no-aof") else "yes"
        if connection.config_get("appendonly")["appendonly"] != want:
            raise RuntimeError(f"the server under callgrind has appendonly != {want}")
        return self

    def control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.process.pid)], check=True, capture_output=True)

    def begin(self) -> None:
        self.control("-i", "on")
        self.control("-z")

    def end(self) -> int:
        """Instructions executed since `begin()` (a callgrind dump's totals); the dump is kept
        as `self.last_dump` for `functions()`."""
        before = set(self.dir.glob("callgrind.out.*"))
        self.control("-d")
        self.control("-i", "off")
        dumps = sorted(set(self.dir.glob("callgrind.out.*")) - before, key=lambda path: path.stat().st_mtime)
        if not dumps:
            raise RuntimeError("callgrind wrote no dump")
        self.last_dump = dumps[-1]
        for line in dumps[-1].read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1])
        raise RuntimeError(f"no totals in {dumps[-1]}")

    def functions(self) -> dict[str, int]:
        """The last dump's named functions with their inclusive instructions (callgrind_annotate)."""
        output = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(self.last_dump)],
            capture_output=True,
            text=True,
        ).stdout
        found: dict[str, int] = {}
        for match in re.finditer(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", output, re.M):
            function = match.group(2).rsplit(" [", 1)[0].rsplit(":", 1)[-1]
            if function.startswith("0x") or "'" in function or function == "PROGRAM TOTALS":
                continue  # unnamed (static Lua internals) and recursive instances
            found.setdefault(function, int(match.group(1).replace(",", "")))
        return found

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


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


def measure(url: str, kind: str, n: int, processes: int = 1, counter: CallgrindServer | None = None) -> dict:
    """One round of one kind: {"submit": ..., "run": ...}, each per job; with `counter`, each
    phase also gives the instructions the server executed per job."""
    connection = Redis.from_url(url)
    connection.flushall()
    if kind == "service":
        # the app's start-up and the scripts' first load (EVAL) happen before the first snapshot;
        # FLUSHALL keeps the server's script cache
        submit_service(url, 5)
        connection.flushall()
    before = snapshot(connection)
    if counter:
        counter.begin()
    if kind == "service":
        submit_service(url, n)
    else:
        submit_handwritten(connection, n)
    instructions = counter.end() if counter else None
    submitted = phase_delta(before, snapshot(connection), n)
    if counter:
        submitted["instructions_per_job"] = instructions / n
        submitted["functions"] = counter.functions()

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
        if counter:
            counter.begin()
        with connection.pipeline() as pipe:
            pipe.rename(STAGING, queue)
            if parked_wake:
                pipe.rename(STAGING_WAKE, wake)
            pipe.execute()
        # under callgrind the polls would count: poll seldom there
        wait_until(done, max(120.0, n / 20), interval=0.25 if counter else 0.01, what=f"{kind}: {n} jobs to finish")
        instructions = counter.end() if counter else None
        ran = phase_delta(before, snapshot(connection), n, own_calls())
        if counter:
            ran["instructions_per_job"] = instructions / n
            ran["functions"] = counter.functions()
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


def measure_all(
    url: str, rounds: int, n: int, progress: Progress, processes: int = 1, counter: CallgrindServer | None = None
) -> dict:
    """Both kinds, interleaved per round; per phase the medians of the rounds."""
    runs: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for round_no in range(rounds):
        for kind in KINDS:
            with progress.phase("redis-cost", round_no + 1, rounds, f"{KINDS[kind]}, N={n}") as step:
                result = measure(url, kind, n, processes, counter)
                step.result(
                    f"Redis CPU ms/job: submit {result['submit']['cpu_ms_per_job']:.3f}, "
                    f"run {result['run']['cpu_ms_per_job']:.3f}"
                    + (
                        f"; instructions/job: submit {result['submit']['instructions_per_job']:,.0f}, "
                        f"run {result['run']['instructions_per_job']:,.0f}"
                        if counter
                        else ""
                    )
                )
            runs[kind].append(result)
    return {
        "jobs": n,
        "rounds": rounds,
        "processes": processes,
        "callgrind": counter is not None,
        **{
            kind: {"runs": found, **{phase: median_phase([run[phase] for run in found]) for phase in PHASES}}
            for kind, found in runs.items()
        },
    }


# (function names of Redis 7, then of Valkey 9, where they differ)
SCRIPTS = ("evalGenericCommand", "luaCallFunction")
SCRIPT_CALLS = ("scriptCall", "VM_CallArgv")
BREAKDOWN = (
    ("processMultibulkBuffer", "parsing requests"),
    ("writeToClient", "writing replies"),
    ("feedAppendOnlyFile", "feeding the append-only file (when it is on)"),
    ("__printf_fp", "formatting numbers (printf %g: Lua tostring, float replies)"),
    ("serverCron", "serverCron (timers: not per job)"),
)


def first(functions: dict[str, int], names: tuple[str, ...]) -> int | None:
    return next((functions[name] for name in names if name in functions), None)


def breakdown(phase: dict) -> list[str]:
    """Where the server's instructions go in one phase: scripts vs Lua vs each command."""
    functions, jobs = phase["functions"], phase["jobs"]
    total = phase["instructions_per_job"] * jobs
    rows = []
    scripts, calls = first(functions, SCRIPTS), first(functions, SCRIPT_CALLS)
    if scripts is not None:
        rows.append(("scripts (EVALSHA), all included", scripts))
        if calls is not None:
            rows.append(("  commands the scripts call, their execution included", calls))
            rows.append(("  Lua itself (scripts minus the commands they call)", scripts - calls))
    rows.extend((label, functions[name]) for name, label in BREAKDOWN if name in functions)
    commands = sorted(
        (
            (name, count)
            for name, count in functions.items()
            if name.endswith("Command")
            and "generic" not in name.lower()
            and not name.startswith(("eval", "process", "slowlog", "isInside", "exec", "after"))
        ),
        key=lambda item: -item[1],
    )
    rows.extend((f"{name} (inclusive)", count) for name, count in commands[:8])
    return [f"{count / jobs:10,.0f}  {count / total:6.1%}  {label}" for label, count in rows]


def report(data: dict) -> list[str]:
    lines = []
    add = lines.append
    add("")
    add(
        f"(h) Redis per job, by phase (bench.redis_cost, N={data['jobs']}, medians of {data['rounds']} rounds; "
        "CPU = used_cpu_user+sys of the server)"
    )
    counted = data.get("callgrind")
    add(
        f"{'phase':7} {'who':42} {'CPU ms/job':>10} {'RT/job':>7} {'cmds/job':>8} {'script µs/job':>13} "
        f"{'commands µs/job':>15}" + (f" {'instructions/job':>16}" if counted else "")
    )
    totals, instructions = {}, {}
    for kind in KINDS:
        for phase in PHASES:
            r, label = data[kind][phase], ROWS[kind, phase]
            totals[kind] = totals.get(kind, 0.0) + r["cpu_ms_per_job"]
            line = (
                f"{phase:7} {label:42} {r['cpu_ms_per_job']:10.4f} {r['round_trips_per_job']:7.2f} "
                f"{r['commands_per_job']:8.1f} {r['script_usec_per_job']:13.2f} {r['commandstats_usec_per_job']:15.2f}"
            )
            if counted:
                instructions[kind] = instructions.get(kind, 0.0) + r["instructions_per_job"]
                line += f" {r['instructions_per_job']:16,.0f}"
            add(line)
    for kind, label in KINDS.items():
        total = totals[kind]
        ceiling = 1000 / total if total else float("nan")
        add(f"  {label}: submit + run {total:.4f} ms of Redis CPU per job → one Redis core: {ceiling:,.0f} jobs/s")
    if counted:
        service, hand = instructions["service"], instructions["handwritten"]
        add(
            f"  instructions per job, submit + run: service {service:,.0f}, hand-written {hand:,.0f} "
            f"(× {service / hand:.1f}); CPU time under valgrind is not the server's: read the instructions"
        )
    add("  script µs: EVALSHA as a whole; commands µs: every other command, those the scripts call included")
    add("  target (issue 16): service submit + run ≤ 0.075 ms")
    if counted:
        for kind in KINDS:
            for phase in PHASES:
                add("")
                add(f"  {ROWS[kind, phase]}: redis-server's instructions per job, inclusive (last round)")
                lines.extend(f"    {line}" for line in breakdown(data[kind]["runs"][-1][phase]))
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


def summary(data: dict, server: str) -> list[str]:
    """The per-phase Redis CPU of both kinds in a few lines (the full table is `report`'s)."""
    totals = {kind: sum(data[kind][phase]["cpu_ms_per_job"] for phase in PHASES) for kind in KINDS}
    lines = [
        "",
        f"(h) the same against {server} (N={data['jobs']}, medians of {data['rounds']} rounds), Redis CPU ms per job:",
    ]
    for kind, label in KINDS.items():
        phases = ", ".join(f"{phase} {data[kind][phase]['cpu_ms_per_job']:.4f}" for phase in PHASES)
        lines.append(
            f"  {label:42} {phases}; submit + run {totals[kind]:.4f} → one core: {1000 / totals[kind]:,.0f} jobs/s"
        )
    lines.append(f"  service ÷ hand-written: × {totals['service'] / totals['handwritten']:.1f} the Redis CPU per job")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1, help="worker processes in the run phase")
    parser.add_argument(
        "--callgrind", action="store_true", help="count redis-server's instructions per job under valgrind"
    )
    parser.add_argument(
        "--server",
        choices=("bench", "make-run", "make-run-no-aof"),
        default="bench",
        help="bench: a private redis-server without persistence; make-run: the server `make run` starts (AOF on, "
        "everysec); make-run-no-aof: that server with its append-only file switched off",
    )
    options = parser.parse_args(argv)
    counter = None
    if options.callgrind:
        server = counter = CallgrindServer(options.server).start()
    elif options.server.startswith("make-run"):
        from bench.makerun import EmbeddedServer

        server = EmbeddedServer(appendonly=options.server == "make-run").start()
    else:
        server = RedisServer().start()
    try:
        data = measure_all(server.url, options.rounds, options.jobs, Progress(), options.processes, counter)
    finally:
        server.cleanup()
    print("\n".join(report(data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
