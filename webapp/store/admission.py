"""Admission checks and writes in one round trip: one EVALSHA per submission (lua/submit.lua).

The caller builds a submission's writes as a list of commands (a queued job's are built
directly, see `webapp.store.jobrecord`; RQ's own code records a scheduled job's on a redis-py
pipeline that is never executed, see `recorded`). They are handed to one script that first
runs the admission checks (rate limit, idempotency key, queue depth) and then, only if all
pass, runs the commands: the job hash, the queue push or schedule, the event, the index. So a
submission costs one round trip, is all-or-nothing, and a refused one leaves nothing behind.

The script is sent by EVALSHA, with EVAL as the fallback when the server does not know it yet
(first use, or after a restart or SCRIPT FLUSH), instead of redis-py's registered-script path,
which adds a SCRIPT EXISTS round trip per pipeline. It is idempotent by job id: a send retried
after a lost connection finds the first job's hash and does nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis import Redis
from redis.client import Pipeline

from webapp.store import scripts


@dataclass
class Admission:
    """The checks a write must pass. Empty fields switch a check off."""

    rate_key: str = ""
    rate_limit: int = 0
    rate_window: int = 1
    cost: int = 1
    idempotency_key: str = ""
    idempotency_value: str = ""
    idempotency_ttl: int = 1
    depth_cap: int = 0
    creates: str = ""  # the key of a job this submission creates: its existence means "done already"
    added_per_queue: dict[str, int] = field(default_factory=dict)  # queue key -> jobs added


@dataclass(frozen=True)
class Outcome:
    """`ok`, or why nothing was written: `limited` (retry_after_ms), `duplicate` (stored value),
    `full` (queue key, depth)."""

    status: str
    detail: tuple = ()


class GuardedWriter:
    """Runs a submission's commands behind its admission checks, in one EVALSHA."""

    def __init__(self, connection: Redis):
        self.connection = connection
        self.script = scripts.script("submit")

    def recorder(self) -> Pipeline:
        """A pipeline for RQ's code to record writes on; pass it to `recorded`, never execute it."""
        return self.connection.pipeline(transaction=False)

    @staticmethod
    def recorded(recorder: Pipeline) -> list[tuple]:
        """The commands recorded on `recorder`, which is emptied."""
        commands = [args for args, _options in recorder.command_stack]
        recorder.reset()
        return commands

    def run(self, commands: list[tuple], admission: Admission) -> Outcome:
        return outcome_of(scripts.call(self.connection, self.script, (), self.argv(commands, admission)))

    @staticmethod
    def argv(commands: list[tuple], admission: Admission) -> list:
        """The fields lua/lib/submission.lua reads: the checks, then the commands."""
        argv: list = [
            admission.rate_key,
            admission.rate_limit,
            admission.rate_window,
            admission.cost,
            admission.idempotency_key,
            admission.idempotency_value,
            admission.idempotency_ttl,
            admission.depth_cap,
            admission.creates,
            len(admission.added_per_queue),
        ]
        for queue_key, added in admission.added_per_queue.items():
            argv += [queue_key, added]
        argv.append(len(commands))
        for args in commands:
            argv.append(len(args))
            argv.extend(args)
        return argv


def outcome_of(reply: list) -> Outcome:
    """A script's reply (`{status, details...}`) as an Outcome."""
    status = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
    return Outcome(status, tuple(reply[1:]))
