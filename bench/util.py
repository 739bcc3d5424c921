"""Measuring helpers: process CPU and memory from /proc, Redis counters, medians."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from redis import Redis

TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux: /proc/<pid>/task/<tid>/children)."""
    found = [pid]
    for current in found:
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:  # it exited since its parent listed it (RQ's forked work horses do)
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                continue
            found.extend(int(child) for child in children if int(child) not in found)
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by the given processes."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def tree_cpu(pid: int) -> float:
    return cpu_seconds(process_tree(pid))


def memory_kb(pid: int) -> dict[str, int]:
    """Resident (RSS) and proportional (PSS: shared pages split between sharers) memory."""
    values = {"rss_kb": 0, "pss_kb": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                values["rss_kb"] = int(line.split()[1])
            elif line.startswith("Pss:"):
                values["pss_kb"] = int(line.split()[1])
    except OSError:
        pass
    return values


class RedisCounters:
    """Server-side counters: commands, read events (≈ client round trips), CPU, per command."""

    def __init__(self, connection: Redis):
        self.connection = connection

    def snapshot(self) -> dict:
        info = self.connection.info("all")
        return {
            "commands": info["total_commands_processed"],
            "reads": info["total_reads_processed"],
            "cpu": info["used_cpu_user"] + info["used_cpu_sys"],
            "per_command": {
                key[len("cmdstat_") :]: value["calls"] for key, value in info.items() if key.startswith("cmdstat_")
            },
        }

    @staticmethod
    def delta(before: dict, after: dict, own_reads: int = 0, own_commands: int = 0) -> dict:
        """What happened between two snapshots, minus the measuring client's own traffic."""
        per_command = {
            name: after["per_command"][name] - before["per_command"].get(name, 0)
            for name in after["per_command"]
            if after["per_command"][name] != before["per_command"].get(name, 0)
        }
        return {
            "commands": after["commands"] - before["commands"] - own_commands,
            "reads": after["reads"] - before["reads"] - own_reads,
            "cpu": after["cpu"] - before["cpu"],
            "per_command": per_command,
        }


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def percentile(values: Iterable[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def wait_until(predicate, timeout: float, interval: float = 0.01, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Progress:
    """What `make bench` is doing, on stderr: each phase with its round and N, then its result.

    `with progress.phase("drain", 2, 3, "FastWorker 1 process, N=5000") as step:` prints
    "[drain 2/3] FastWorker 1 process, N=5000 …" when the phase starts and, when it ends, what
    `step.result(...)` was given with the phase's own time and the time since the bench began.
    """

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.began = time.monotonic()

    def say(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def elapsed(self) -> str:
        seconds = int(time.monotonic() - self.began)
        return f"{seconds // 60}:{seconds % 60:02d}"

    @contextlib.contextmanager
    def phase(self, section: str, index: int, total: int, what: str):
        step = _Step()
        started = time.monotonic()
        print(f"[{section} {index}/{total}] {what} …", end="", file=self.stream, flush=True)
        try:
            yield step
        except BaseException:
            print(f"  failed ({time.monotonic() - started:.1f} s)", file=self.stream, flush=True)
            raise
        took = time.monotonic() - started
        print(f"  {step.text} ({took:.1f} s; {self.elapsed()} in)", file=self.stream, flush=True)


class _Step:
    text = "done"

    def result(self, text: str) -> None:
        self.text = text
