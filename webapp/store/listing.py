"""Listing jobs newest first with a stable cursor, at a cost bounded by the page size.

RQ keeps a job in one of many places (the queue list, a registry per state, each scored
differently), none of which orders all jobs by submission. So the service keeps its own
index: sorted sets of job ids scored by the job's creation time in microseconds, written in
the same script as the enqueue (`index_commands`): every job, the jobs of one queue, of one
job type, of one owner (webapp/store/keys.py names them).

Jobs expire (RQ deletes the hash after `result_ttl`/`failure_ttl`), so the index is trimmed
two ways, both bounded: the reaper's pass sweeps every set (a roving position moves through
the set and drops ids whose hash is gone, at least 3 entries per entry added: a set stays
within about 1.5 times its live jobs; webapp/store/indexsweep.py), and a listing drops the
gone ids it meets. An enqueue only ZADDs (and, now and then, registers the sets it writes so
the sweep finds them).

A page reads at most `LISTING_SCAN_FACTOR * limit` index entries. With a status filter that
matches few jobs, the page may hold fewer than `limit` jobs (even none) while `next_cursor`
is still set: keep following the cursor until it is null.

The cursor is `<score>:<job id>` (the position of the last job of the page), written plainly:
any cursor of that form is a valid position, so a client can never send one the API refuses
once it matches the documented pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq.job import Job

from webapp.infra.errors import BadRequest
from webapp.store import indexsweep, jobreads, keys

TIES_READ = 1000  # jobs created in the same microsecond that a cursor can step over

CURSOR_PATTERN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{1,128}$")


def score_of(job: Job) -> int:
    """The job's index score: its creation time in microseconds since the epoch."""
    return int(job.created_at.timestamp() * 1_000_000)


def index_keys(queue: str | None, name: str | None, owner: str | None = None, schedule: str | None = None) -> list[str]:
    sets = [keys.INDEX]
    if queue:
        sets.append(keys.index_by_queue(queue))
    if name:
        sets.append(keys.index_by_name(name))
    if owner:
        sets.append(keys.index_by_owner(owner))
    if schedule:
        sets.append(keys.index_by_schedule(schedule))
    return sets


def index_job(pipe: Pipeline, job: Job) -> None:
    """Add an RQ job to the listing index, in the caller's pipeline (which it executes itself;
    the submit script takes `index_commands` instead)."""
    meta = job.meta
    for command in index_commands(
        job.id, score_of(job), job.origin, meta.get("name"), meta.get("owner"), meta.get("schedule")
    ):
        pipe.execute_command(*command)


def index_commands(job_id: str, score: int, queue: str | None, name: str | None, owner: str | None,
                   schedule: str | None = None) -> list[tuple]:  # fmt: skip
    """The commands that add a job to the listing index (sent with the enqueue's writes): one
    ZADD per set, and the registration of sets this process has not registered lately (the
    reaper's sweep visits them, webapp/store/indexsweep.py). No sweep on the submit path."""
    sets = index_keys(queue, name, owner, schedule)
    return [("ZADD", key, score, job_id) for key in sets] + indexsweep.registration(sets)


def index_to_read(*, queue: str | None, name: str | None, owner: str | None, schedule: str | None) -> str:
    """The narrowest index set that holds every job of a filter (the others are checked per job)."""
    if schedule:
        return keys.index_by_schedule(schedule)
    if owner:
        return keys.index_by_owner(owner)
    if name:
        return keys.index_by_name(name)
    if queue:
        return keys.index_by_queue(queue)
    return keys.INDEX


def encode_cursor(score: int, job_id: str) -> str:
    return f"{score}:{job_id}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (score, id) position a cursor stands for; anything else is a 400."""
    if not CURSOR_PATTERN.fullmatch(cursor):
        raise BadRequest("invalid cursor: pass the next_cursor of a previous page unchanged")
    score, _, job_id = cursor.partition(":")
    return int(score), job_id


class JobLister:
    """Reads pages of the index and the job hashes behind them."""

    def __init__(self, connection: Redis, names: Mapping[str, str], queues: Iterable[str], job_names: Iterable[str]):
        self.connection = connection
        self.names = names
        self.all_index_keys = [keys.INDEX]
        self.all_index_keys += [keys.index_by_queue(queue) for queue in queues]
        self.all_index_keys += [keys.index_by_name(name) for name in job_names]

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
                pipe.hgetall(keys.job(job_id))
            return pipe.execute()

    def views(self, jobs: list[jobreads.Snapshot]) -> list[dict[str, Any]]:
        """The list view of each job: latest result and latest event id in one round trip."""
        with self.connection.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.xrevrange(keys.results(job.id), "+", "-", count=1)
                pipe.xrevrange(keys.job_events(job.id), "+", "-", count=1)
            replies = pipe.execute()
        views = []
        for index, job in enumerate(jobs):
            results, events = replies[2 * index], replies[2 * index + 1]
            result = jobreads.result_entry(*results[0]) if results else None
            last_event_id = events[0][0].decode() if events else None
            views.append(jobreads.to_dict(job, result, last_event_id, self.names))
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
        schedule: str | None = None,
        scan_factor: int = 10,
    ) -> dict[str, Any]:
        """One page of jobs, newest first, and the cursor of the next page (None at the end).

        `owner` (from the caller's credentials, never from the query) limits the page to that
        client's jobs, read from its own index set; `schedule`, to the jobs one schedule made.
        """
        position = decode_cursor(cursor) if cursor else None
        key = index_to_read(queue=queue, name=name, owner=owner, schedule=schedule)
        filtering = bool(status) or sum(1 for given in (owner, name, queue, schedule) if given) > 1
        budget = max(limit, scan_factor * limit)
        examined = 0
        matched: list[jobreads.Snapshot] = []
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
                job = jobreads.snapshot(job_id, raw)
                if (queue and job.origin != queue) or (name and job.meta.get("name") != name):
                    continue
                if owner and job.meta.get("owner") != owner:
                    continue
                if schedule and job.meta.get("schedule") != schedule:
                    continue
                matched.append(job)
            if gone:
                self.forget(gone, key)
            if exhausted:
                break
        more = leftover or not exhausted
        next_cursor = encode_cursor(*position) if position is not None and more else None
        return {"jobs": self.views(matched), "next_cursor": next_cursor}
