"""Admission checks and writes in one round trip: one EVALSHA per submission.

The caller builds a submission's writes as a list of commands (a queued job's are built
directly, see webapp.jobrecord; RQ's own code records a scheduled job's on a redis-py
pipeline that is never executed, see `recorded`). They are handed to one Lua script that
first runs the admission checks (rate limit, idempotency key, queue depth) and then, only if
all pass, runs the commands: the job hash, the queue push or schedule, the event. So a
submission costs one round trip, is all-or-nothing, and a refused one leaves nothing behind.

Sub-scripts recorded as EVALSHA (the event log's) are inlined as Lua functions, since a script
cannot call EVALSHA itself. The script is sent by EVALSHA, with EVAL as the fallback when the
server does not know it yet (first use, or after a restart or SCRIPT FLUSH), instead of
redis-py's registered-script path, which adds a SCRIPT EXISTS round trip per pipeline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError

# ARGV layout:
#  1 rate-limit key ('' = none)   2 limit   3 window (s)   4 cost (jobs in this request)
#  5 idempotency key ('' = none)  6 value to store          7 ttl (s)
#  8 queue-depth cap (0 = none)   9 n queue keys, then n pairs (queue key, jobs added to it)
#  then the number of commands, then per command: argc, then argc arguments.
_PREAMBLE = """
local rate_key = ARGV[1]
if rate_key ~= '' then
  local count = redis.call('INCRBY', rate_key, ARGV[4])
  if redis.call('TTL', rate_key) < 0 then redis.call('EXPIRE', rate_key, ARGV[3]) end
  if count > tonumber(ARGV[2]) then
    return {'limited', redis.call('PTTL', rate_key)}
  end
end
local idem_key = ARGV[5]
if idem_key ~= '' then
  local previous = redis.call('GET', idem_key)
  if previous then return {'duplicate', previous} end
end
local cap = tonumber(ARGV[8])
local nqueues = tonumber(ARGV[9])
local i = 10
for _ = 1, nqueues do
  if cap > 0 then
    local depth = redis.call('LLEN', ARGV[i])
    if depth + tonumber(ARGV[i + 1]) > cap then return {'full', ARGV[i], depth} end
  end
  i = i + 2
end
if idem_key ~= '' then redis.call('SET', idem_key, ARGV[6], 'EX', ARGV[7]) end
local ncommands = tonumber(ARGV[i])
i = i + 1
for _ = 1, ncommands do
  local argc = tonumber(ARGV[i])
  local command = {}
  for k = 1, argc do command[k] = ARGV[i + k] end
  i = i + argc + 1
  local name = string.upper(command[1])
  if name == 'EVALSHA' then
    local sub = subscripts[command[2]]
    if not sub then return redis.error_reply('guarded write: unknown sub-script ' .. command[2]) end
    local nkeys = tonumber(command[3])
    local keys, args = {}, {}
    for k = 1, nkeys do keys[k] = command[3 + k] end
    for k = 4 + nkeys, argc do args[#args + 1] = command[k] end
    sub(keys, args)
  else
    redis.call(unpack(command))
  end
end
return {'ok'}
"""


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
    added_per_queue: dict[str, int] = field(default_factory=dict)  # queue key -> jobs added


@dataclass(frozen=True)
class Outcome:
    """`ok`, or why nothing was written: `limited` (retry_after_ms), `duplicate` (stored value),
    `full` (queue key, depth)."""

    status: str
    detail: tuple = ()


class GuardedWriter:
    """Runs recorded pipeline commands behind admission checks, in one EVALSHA."""

    def __init__(self, connection: Redis, subscripts: list[Script]):
        self.connection = connection
        functions = "".join(
            f"subscripts['{script.sha}'] = function(KEYS, ARGV)\n{_source(script)}\nend\n" for script in subscripts
        )
        self.source = "local subscripts = {}\n" + functions + _PREAMBLE
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

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
        argv: list = [
            admission.rate_key,
            admission.rate_limit,
            admission.rate_window,
            admission.cost,
            admission.idempotency_key,
            admission.idempotency_value,
            admission.idempotency_ttl,
            admission.depth_cap,
            len(admission.added_per_queue),
        ]
        for queue_key, added in admission.added_per_queue.items():
            argv += [queue_key, added]
        argv.append(len(commands))
        for args in commands:
            argv.append(len(args))
            argv.extend(args)
        try:
            reply = self.connection.evalsha(self.sha, 0, *argv)
        except NoScriptError:
            reply = self.connection.eval(self.source, 0, *argv)
        status = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        return Outcome(status, tuple(reply[1:]))


def _source(script: Script) -> str:
    source = script.script
    return source.decode() if isinstance(source, bytes) else source
