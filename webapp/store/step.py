"""STEP, the fast worker's one Redis call per job: its arguments, by name, and its script.

STEP (lua/step.lua) FINISHes a successful job and CLAIMs the next in one script, writing what
RQ 3's own worker writes, so a busy worker makes one round trip per job and a job is always
either queued or registered as started (RQ's multi-queue `BLPOP` leaves a window between the
two). tests/test_fastworker_compat.py pins what it writes against the installed RQ.

Its arguments are named here, once: `STEP_FIELDS` is the order of ARGV, `Claim` and `Finish`
hold the values, and the script gets a table `A` built from the same list (`A.worker_name`
is ARGV[2]), so the Lua and the Python cannot disagree on positions
(tests/test_step_args.py also checks that every field the script reads exists here).

Wake-up lists (`jobsvc:wake:<queue>`): an enqueuer pushes a token beside the job; an idle
worker blocks on its queues' wake lists. CLAIM keeps at most one token per queued job and at
least one while jobs remain, so a burst wakes every idle worker in turn and tokens never pile
up; jobs pushed by plain RQ code (no token) are found by the idle wait's short timeout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields

from redis.commands.core import Script

from webapp.store import keys, scripts


@dataclass(frozen=True)
class Claim:
    """What every STEP sends: who claims, the clock, event settings, and whether to claim."""

    queue_count: int
    worker_name: str
    now_text: str  # RQ's timestamp text
    now: str  # Unix seconds
    execution_id: str  # the new execution, if a job is claimed
    heartbeat_ttl: int  # RQ's default worker ttl, for a job without a timeout
    channel: str
    events_maxlen: int
    events_ttl: int  # how long a job's timeline is kept while it is not over
    job_events_maxlen: int
    event_at: str  # ISO 8601, the `at` of the `started` event
    claim: str  # '1' to claim a job, '0' only to finish


@dataclass(frozen=True)
class Finish:
    """The outcome of the job just run, a plain success."""

    done_job_id: str
    done_queue: str
    done_execution_id: str
    done_ended_text: str  # RQ's timestamp text
    done_result_ttl: int
    done_ended: str  # Unix seconds
    done_return_value: str  # base64 of the serialized value, '' for None
    done_started: str  # the execution's start, Unix seconds
    done_working_time: str  # seconds
    done_event_ttl: int  # how long the finished job's timeline is kept
    done_event: str  # the `finished` event, a JSON object
    done_limit_key: str = ""  # the job's limit key, whose slot is given back ('' for none)


CLAIM_FIELDS = tuple(field.name for field in fields(Claim))
FINISH_FIELDS = tuple(field.name for field in fields(Finish))
NO_FINISH = ("",) * len(FINISH_FIELDS)
_FIELD_READ = re.compile(r"\bA\.([a-z_]+)\b")
STEP_FIELDS = CLAIM_FIELDS + FINISH_FIELDS


def argv(claim: Claim, finish: Finish | None) -> list:
    """STEP's ARGV, in STEP_FIELDS order. (Not `dataclasses.astuple`, which deep-copies every
    value: a tenth of the fast worker's CPU per job.)"""
    values = [getattr(claim, name) for name in CLAIM_FIELDS]
    if finish is None:
        values += NO_FINISH
    else:
        values += [getattr(finish, name) for name in FINISH_FIELDS]
    return values


def step_script(names_by_path: dict[str, str]) -> Script:
    """STEP for one catalog: jobs enqueued by plain RQ code are named from it in their events."""
    names = json.dumps(names_by_path or {}, separators=(",", ":"))
    if "]==]" in names:
        raise ValueError("a job name or path contains ']==]'")
    # The script reads `A.<field>`; each becomes a local `A_<field>` read from ARGV once: a table
    # of 24 named fields cost Redis more to build on every call than all the reads of it.
    declarations = "\n".join(f"local A_{name} = ARGV[{index}]" for index, name in enumerate(STEP_FIELDS, start=1))
    script = scripts.script("step", STEP_ARGS=declarations, NAMES_JSON=names)
    return Script(None, _FIELD_READ.sub(r"A_\1", script.script.decode()).encode())


def step_keys(worker_key: str, executions_key: str, queue_names: list[str]) -> list[str]:
    """STEP's KEYS: the global stream, the worker's hash and execution index, the queues, their wake lists."""
    return [
        keys.EVENTS_STREAM,
        worker_key,
        executions_key,
        *(keys.queue(name) for name in queue_names),
        *(keys.wake(name) for name in queue_names),
    ]
