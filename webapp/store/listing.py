"""Listing jobs newest first with a stable cursor, at a cost bounded by the page size.

RQ keeps a job in one of many places (the queue list, a registry per state, each scored
differently), none of which orders all jobs by submission. So the service keeps its own
index: sorted sets of job ids scored by the job's creation time in microseconds, written in
the same pipeline as the enqueue (`index_job`):

- `jobsvc:index`: every job;
- `jobsvc:index:queue:<queue>`: the jobs of one queue;
- `jobsvc:index:name:<name>`: the jobs of one job type.

Jobs expire (RQ deletes the hash after `result_ttl`/`failure_ttl`), so the index is trimmed
two ways, both bounded: enqueues sweep a few entries of each set they write, on average (a
roving position moves through the set and drops ids whose hash is gone), and a listing drops
the gone ids it meets.

A page reads at most `LISTING_SCAN_FACTOR * limit` index entries. With a status filter that
matches few jobs, the page may hold fewer than `limit` jobs (even none) while `next_cursor`
is still set: keep following the cursor until it is null.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from webapp import jobstore
from webapp.errors import BadRequest
from webapp.events import job_stream_key

INDEX_KEY = "jobsvc:index"
QUEUE_INDEX_PREFIX = "jobsvc:index:queue:"
NAME_INDEX_PREFIX = "jobsvc:index:name:"
OWNER_INDEX_PREFIX = "jobsvc:index:owner:"
SWEEP_KEY = "jobsvc:index:sweep"
SWEEP_EVERY = 16  # enqueues per sweep, per process
SWEEP_BATCH = 48  # entries a sweep checks in each index set: 3 per enqueue on average
TIES_READ = 1000  # jobs created in the same microsecond that a cursor can step over

# KEYS: the index sets, then the sweep-position hash. ARGV[1] job id, ARGV[2] score,
# ARGV[3] job key prefix, ARGV[4] entries to sweep per set.
# The sweep resumes after the score it stopped at (per set) and wraps to the start at the end.
_INDEX_AND_SWEEP = """
local sweep_key = KEYS[#KEYS]
local per_set = tonumber(ARGV[4])
local function sweep(key, from, count)
  local entries = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', 0, count)
  for j = 1, #entries, 2 do
    if redis.call('EXISTS', ARGV[3] .. entries[j]) == 0 then
      redis.call('ZREM', key, entries[j])
    end
  end
  if #entries > 0 then redis.call('HSET', sweep_key, key, entries[#entries]) end
  return #entries / 2
end
for i = 1, #KEYS - 1 do
  local key = KEYS[i]
  redis.call('ZADD', key, ARGV[2], ARGV[1])
  local from = redis.call('HGET', sweep_key, key)
  local done = 0
  if from then done = sweep(key, '(' .. from, per_set) end
  if done < per_set then
    -- reached the newest entry: wrap around to the oldest
    redis.call('HDEL', sweep_key, key)
    sweep(key, '-inf', per_set - done)
  end
end
return 1
"""


# EVALSHA: the pipeline loads the script when Redis lacks it, in the check it makes anyway.
_index_and_sweep = Script(None, _INDEX_AND_SWEEP.encode())
_enqueues = itertools.count()

_CURSOR = re.compile(r"^v1:(\d{1,20}):([A-Za-z0-9_-]{1,128})$")


def score_of(job: Job) -> int:
    """The job's index score: its creation time in microseconds since the epoch."""
    return int(job.created_at.timestamp() * 1_000_000)


def owner_of(job: Job) -> str | None:
    """The client a job belongs to, when API keys are in use (kept in the job's meta)."""
    return job.meta.get("owner")


def index_keys(queue: str | None, name: str | None, owner: str | None = None) -> list[str]:
    keys = [INDEX_KEY]
    if queue:
        keys.append(QUEUE_INDEX_PREFIX + queue)
    if name:
        keys.append(NAME_INDEX_PREFIX + name)
    if owner:
        keys.append(OWNER_INDEX_PREFIX + owner)
    return keys


def index_job(pipe: Pipeline, job: Job) -> None:
    """Add an RQ job to the listing index, in the caller's (enqueue) pipeline."""
    for command in index_commands(job.id, score_of(job), job.origin, job.meta.get("name"), owner_of(job)):
        if command[0] == "EVALSHA":
            numkeys = command[2]
            _index_and_sweep(keys=command[3 : 3 + numkeys], args=command[3 + numkeys :], client=pipe)
        else:
            pipe.execute_command(*command)


def index_commands(job_id: str, score: int, queue: str | None, name: str | None, owner: str | None) -> list[tuple]:
    """The commands that add a job to the listing index (sent with the enqueue's writes).

    Every SWEEP_EVERY-th call in a process also sweeps SWEEP_BATCH entries of each set: on
    average 3 entries per set per enqueue, which keeps a set within about 1.5 times the number
    of live jobs, at a fraction of the cost of a sweep on every enqueue.
    """
    keys = index_keys(queue, name, owner)
    if next(_enqueues) % SWEEP_EVERY:
        return [("ZADD", key, score, job_id) for key in keys]
    return [
        (
            "EVALSHA",
            _index_and_sweep.sha,
            len(keys) + 1,
            *keys,
            SWEEP_KEY,
            job_id,
            score,
            Job.redis_job_namespace_prefix,
            SWEEP_BATCH,
        )
    ]


def encode_cursor(score: int, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"v1:{score}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (score, id) position a cursor stands for; anything else is a 400."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    match = _CURSOR.fullmatch(text)
    if not match:
        raise BadRequest("invalid cursor: pass the next_cursor of a previous page unchanged")
    return int(match.group(1)), match.group(2)


class JobLister:
    """Reads pages of the index and the job hashes behind them."""

    def __init__(self, connection: Redis, names: Mapping[str, str], queues: Iterable[str], job_names: Iterable[str]):
        self.connection = connection
        self.names = names
        self.all_index_keys = [INDEX_KEY]
        self.all_index_keys += [QUEUE_INDEX_PREFIX + queue for queue in queues]
        self.all_index_keys += [NAME_INDEX_PREFIX + name for name in job_names]

    def entries_after(self, key: str, position: tuple[int, str] | None, count: int) -> list[tuple[str, int]]:
        """Up to `count` index entries after `position`, newest first (ties by id, descending)."""
        if position is None:
            raw = self.connection.zrevrangebyscore(key, "+inf", "-inf", start=0, num=count, withscores=True)
            return [(member.decode(), int(score)) for member, score in raw]
        score, last_id = position
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(key, score, score, start=0, num=TIES_READ)
            pipe.zrevrangebyscore(key, f"({score}", "-inf", start=0, num=count, withscores=True)
            ties, older = pipe.execute()
        same = sorted((member.decode() for member in ties if member.decode() < last_id), reverse=True)
        entries = [(member, score) for member in same]
        entries += [(member.decode(), int(found)) for member, found in older]
        return entries[:count]

    def fetch_hashes(self, ids: list[str]) -> list[dict]:
        with self.connection.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(Job.key_for(job_id))
            return pipe.execute()

    def views(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """The list view of each job: latest result and latest event id in one round trip."""
        with self.connection.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.xrevrange(Result.get_key(job.id), "+", "-", count=1)
                pipe.xrevrange(job_stream_key(job.id), "+", "-", count=1)
            replies = pipe.execute()
        views = []
        for index, job in enumerate(jobs):
            results, events = replies[2 * index], replies[2 * index + 1]
            result = None
            if results:
                result_id, payload = results[0]
                result = Result.restore(job.id, result_id.decode(), payload, self.connection, JSONSerializer)
            last_event_id = events[0][0].decode() if events else None
            view = jobstore.to_dict(job, result, last_event_id, self.names)
            view["description"] = job.description
            views.append(view)
        return views

    def forget(self, ids: list[str], key_read: str) -> None:
        """Drop ids whose job hash is gone from every index set (owners' sets: the one read)."""
        with self.connection.pipeline(transaction=False) as pipe:
            for key in {*self.all_index_keys, key_read}:
                pipe.zrem(key, *ids)
            pipe.execute()

    def page(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        status: str | None = None,
        queue: str | None = None,
        name: str | None = None,
        owner: str | None = None,
        scan_factor: int = 10,
    ) -> dict[str, Any]:
        """One page of jobs, newest first, and the cursor of the next page (None at the end).

        `owner` (from the caller's credentials, never from the query) limits the page to that
        client's jobs, read from its own index set.
        """
        position = decode_cursor(cursor) if cursor else None
        if owner:
            key = OWNER_INDEX_PREFIX + owner
        elif name:
            key = NAME_INDEX_PREFIX + name
        elif queue:
            key = QUEUE_INDEX_PREFIX + queue
        else:
            key = INDEX_KEY
        filtering = bool(status) or sum(1 for given in (owner, name, queue) if given) > 1
        budget = max(limit, scan_factor * limit)
        examined = 0
        matched: list[Job] = []
        exhausted = leftover = False
        while len(matched) < limit and examined < budget:
            wanted = limit - len(matched)
            # Without a filter every live entry matches: read one more to know if a next page exists.
            chunk = min(budget - examined, wanted * 4 if filtering else wanted + 1)
            entries = self.entries_after(key, position, chunk)
            exhausted = len(entries) < chunk
            hashes = self.fetch_hashes([job_id for job_id, _ in entries])
            gone = []
            leftover = False
            for (job_id, score), raw in zip(entries, hashes, strict=True):
                if len(matched) == limit:
                    leftover = True
                    break
                examined += 1
                position = (score, job_id)
                if not raw:
                    gone.append(job_id)
                    continue
                if status and (raw.get(b"status") or b"").decode() != status:
                    continue
                job = Job(job_id, connection=self.connection, serializer=JSONSerializer)
                job.restore(raw)
                if (queue and job.origin != queue) or (name and job.meta.get("name") != name):
                    continue
                if owner and owner_of(job) != owner:
                    continue
                matched.append(job)
            if gone:
                self.forget(gone, key)
            if exhausted:
                break
        more = leftover or not exhausted
        next_cursor = encode_cursor(*position) if position is not None and more else None
        return {"jobs": self.views(matched), "next_cursor": next_cursor}


def attempts_of(results: list[Result]) -> list[dict[str, Any]]:
    """Each try of a job, oldest first, from RQ's result history (RQ keeps the last 10)."""
    outcomes = {
        Result.Type.SUCCESSFUL: "finished",
        Result.Type.FAILED: "failed",
        Result.Type.STOPPED: "stopped",
        Result.Type.RETRIED: "retried",
        Result.Type.MAX_RETRIES_EXCEEDED: "failed",
    }
    attempts = []
    for result in reversed(results):
        error = None
        if result.exc_string:
            last = result.exc_string.strip().splitlines()[-1]
            kind, _, message = last.partition(": ")
            error = {"type": kind.rsplit(".", 1)[-1], "message": message or kind}
        attempts.append(
            {
                "outcome": outcomes.get(result.type, "failed"),
                "worker": result.worker_name or None,
                "started_at": _iso(result.execution_started_at),
                "ended_at": _iso(result.execution_ended_at or result.created_at),
                "error": error,
            }
        )
    return attempts


def _iso(moment: datetime | None) -> str | None:
    return jobstore.isoformat(moment)


def describe_job(connection: Redis, job_id: str, names: Mapping[str, str]) -> dict[str, Any]:
    """The detail view: the list view plus the job's description and attempts, one round trip."""
    job, results, last_event_id = jobstore.read(connection, job_id, results=None)
    view = jobstore.to_dict(job, results[0] if results else None, last_event_id, names)
    view["description"] = job.description
    view["attempts"] = attempts_of(results)
    return view
