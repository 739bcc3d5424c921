"""The listing index's sweep: drops ids whose job hash is gone, from the reaper, off the submit path.

Jobs expire (RQ deletes the hash after `result_ttl`/`failure_ttl`) but their ids stay in the
listing index sets (webapp/store/listing.py) until something removes them. A submission only
ZADDs; the sweep runs in the reaper's pass (webapp/worker/recovery.py, every RECOVERY_INTERVAL
under the shared reaper lock, so in one process at a time), with native commands only:

- for each index set, read the next entries after its roving position (ZRANGE ... BYSCORE
  LIMIT, the position kept per set in the hash `keys.INDEX_SWEEP`), check them with pipelined
  EXISTS on the job hashes, ZREM the gone ones, store the new position, and wrap to the start
  at the end of the set. Ids are read without their scores (the server formats each score from
  a double, which costs it more than the EXISTS); ZSCORE gives the last one's. A pass checks a
  job hash once, whatever the number of sets it meets the id in (all, queue, name, owner: their
  positions move together);
- the budget of a set in one pass is `SWEEP_FACTOR` (3) entries per entry added since the last
  pass (its ZCARD now minus its size after the last pass, kept in `keys.INDEX_SWEEP_SIZES`),
  at least `SWEEP_MIN`, at most `SWEEP_MAX` (and never more than the set holds), read and
  checked `SWEEP_CHUNK` entries per pipeline.

The bound: while the budget is not capped, the roving position goes through a set of S entries
in the time S / 3 entries are added to it, so a job gone from Redis is dropped at most one such
round after it went: at most S / 3 entries are dead, and S <= 1.5 × the live jobs of the set
(the bound the enqueue-time sweep kept before). The cap (20,000 entries per set per pass, a few
tens of milliseconds of pipelined EXISTS) is reached only above ~6,700 additions to one set per
pass (3,300 jobs/s at a 2 s interval); beyond it sets may grow past the bound, and listings still
drop the gone ids they meet. A set that receives nothing is still checked `SWEEP_MIN` entries per
pass, so jobs expiring from it are dropped too; when idle the sweep costs about SWEEP_MIN EXISTS
per set per pass. Measured under callgrind: about 2,200 server instructions per entry checked
(some 20,000 per submitted job with three sets), against some 100,000 per job when the submit
script swept in Lua (~8,000 per `redis.call`).

Which sets: `keys.INDEX`, those the reaper knows from its configuration (one per queue, one
per job name of the catalog) and the sets registered in `keys.INDEX_SETS`. Owners and schedules
come and go, so the submit path registers every set it writes (`registration`): a per-process
memo SADDs a set's name with the first write of it and again after `REGISTER_EVERY` writes or
`REGISTER_AFTER` seconds, so the registry heals within a minute of a Redis restart that lost it,
at the cost of one SADD per set name per process per minute instead of one per submission.
(SCAN-based discovery would need no write on the submit path, but walks the whole keyspace to
find a handful of keys, at a cost that grows with the number of jobs.) A registered set that no
longer exists (Redis deletes an empty sorted set) leaves the registry in the sweep; a process
that writes to it again registers it again within `REGISTER_AFTER`, long before any of its new
jobs expire. (The memo counts a set as registered once the SADD is planned: if that submission
is refused, the set is registered by the next refresh instead, a delay of at most a minute.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from redis import Redis

from webapp.store import keys

SWEEP_FACTOR = 3  # entries checked per entry added to the set since the last pass
SWEEP_MIN = 100  # entries checked per set and pass, however few were added
SWEEP_MAX = 20_000  # entries checked per set and pass, however many were added
SWEEP_CHUNK = 1_000  # entries read and checked per pipeline
SEEN_MAX = 100_000  # job hashes a pass remembers having checked (forgotten beyond)
REGISTER_EVERY = 1_000  # index writes after which a process registers its sets again
REGISTER_AFTER = 60.0  # seconds after which a process registers its sets again

# -- the submit path: registering the sets it writes ---------------------------------------


class _Registered:
    """The index set names this process registered, forgotten every REGISTER_EVERY writes or
    REGISTER_AFTER seconds (so each is registered again on its next write)."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.writes = 0
        self.since = time.monotonic()

    def new(self, sets: Iterable[str]) -> list[str]:
        self.writes += 1
        moment = time.monotonic()
        if self.writes > REGISTER_EVERY or moment - self.since > REGISTER_AFTER:
            self.names.clear()
            self.writes = 1
            self.since = moment
        fresh = [name for name in sets if name != keys.INDEX and name not in self.names]
        self.names.update(fresh)
        return fresh


_registered = _Registered()


def registration(sets: Iterable[str]) -> list[tuple]:
    """The command that registers the index sets a write adds to (none if this process did so
    lately): sent with the index writes."""
    fresh = _registered.new(sets)
    return [("SADD", keys.INDEX_SETS, *fresh)] if fresh else []


def forget_registrations() -> None:
    """Make this process register every set again on its next write (tests, after a FLUSHALL)."""
    _registered.names.clear()


# -- the reaper: the sweep -----------------------------------------------------------------


@dataclass
class _Set:
    key: str
    budget: int
    start: str  # the lowest score to read, '-inf' or '(<score>'
    size: int
    removed: int = 0
    checked: int = 0
    wrapped: bool = False
    gone: list[str] = field(default_factory=list)


def _budget(size: int, last: int | None) -> int:
    added = size if last is None else max(0, size - last)
    return min(size, SWEEP_MAX, max(SWEEP_MIN, SWEEP_FACTOR * added))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def sweep(connection: Redis, known: Iterable[str] = ()) -> dict[str, int]:
    """One pass of the sweep over `keys.INDEX`, the `known` sets and the registered ones.

    Returns, per set, the entries checked in this pass (tests and benchmarks read it); ZREMs
    the ids whose job hash is gone.
    """
    registered = {_text(name) for name in connection.smembers(keys.INDEX_SETS)}
    names = sorted({keys.INDEX, *known, *registered})
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.zcard(name)
        pipe.hgetall(keys.INDEX_SWEEP)
        pipe.hgetall(keys.INDEX_SWEEP_SIZES)
        *sizes, positions, lasts = pipe.execute()
    positions = {_text(name): _text(score) for name, score in positions.items()}
    lasts = {_text(name): int(size) for name, size in lasts.items()}
    sets, empty = [], []
    for name, size in zip(names, sizes, strict=True):
        if not size:
            empty.append(name)
            continue
        start = f"({positions[name]}" if name in positions else "-inf"
        sets.append(_Set(name, _budget(size, lasts.get(name)), start, size))
    seen: dict[str, bool] = {}
    for swept in sets:
        _sweep_set(connection, swept, seen)
    with connection.pipeline(transaction=False) as pipe:
        if empty:
            pipe.srem(keys.INDEX_SETS, *empty)
            pipe.hdel(keys.INDEX_SWEEP, *empty)
            pipe.hdel(keys.INDEX_SWEEP_SIZES, *empty)
        # The size after this pass's removals: the next pass's budget counts what is added meanwhile.
        if sets:
            pipe.hset(keys.INDEX_SWEEP_SIZES, mapping={swept.key: swept.size - swept.removed for swept in sets})
        pipe.execute()
    return {swept.key: swept.checked for swept in sets}


def _sweep_set(connection: Redis, swept: _Set, seen: dict[str, bool]) -> None:
    """Check `swept.budget` entries of one set from its position, a chunk per three round trips.

    `seen`: what this pass found out already (job id -> its hash exists): the sets of the same
    jobs (all, queue, name, ...) are read at about the same positions, so each hash is checked
    about once per pass, not once per set.
    """
    while swept.checked < swept.budget:
        count = min(SWEEP_CHUNK, swept.budget - swept.checked)
        # Without WITHSCORES: a score in a reply is formatted from a double, which costs the
        # server more than the EXISTS itself. Only the last entry's score is needed (ZSCORE).
        ids = [_text(member) for member in connection.zrange(swept.key, swept.start, "+inf", byscore=True,
                                                              offset=0, num=count)]  # fmt: skip
        unknown = [job_id for job_id in ids if job_id not in seen]
        full = len(ids) == count
        with connection.pipeline(transaction=False) as pipe:
            for job_id in unknown:
                pipe.exists(keys.job(job_id))
            if full:
                pipe.zscore(swept.key, ids[-1])
            replies = pipe.execute() if unknown or full else []
        if len(seen) + len(unknown) > SEEN_MAX:
            seen.clear()
        seen.update(zip(unknown, (bool(found) for found in replies[: len(unknown)]), strict=True))
        gone = [job_id for job_id in ids if not seen.get(job_id, True)]
        swept.checked += len(ids)
        last = None
        if full:
            score = replies[-1]
            if score is None:  # the last entry left meanwhile (a listing dropped it): take the one before
                found = connection.zrange(swept.key, swept.start, "+inf", byscore=True, offset=max(0, count - 2),
                                          num=1, withscores=True)  # fmt: skip
                score = found[0][1] if found else None
            # Scores are whole microseconds. An entry sharing the last one's score but cut off
            # by LIMIT waits for the next round through the set (as with the former sweep).
            last = None if score is None else str(int(score))
        with connection.pipeline(transaction=False) as pipe:
            if gone:
                pipe.zrem(swept.key, *gone)
            if last is not None:
                swept.start = f"({last}"
                pipe.hset(keys.INDEX_SWEEP, swept.key, last)
            else:
                # the end of the set: the next round starts again from its oldest entry
                swept.start = "-inf"
                pipe.hdel(keys.INDEX_SWEEP, swept.key)
            replies = pipe.execute()
        swept.removed += replies[0] if gone else 0
        if last is None:
            if swept.wrapped:
                return
            swept.wrapped = True
