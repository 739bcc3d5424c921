"""Periodic schedules in Redis: definitions, state, run history and events.

Each schedule is a hash (`jobsvc:schedule:<name>`): its definition as JSON (`spec`: the job,
cron or interval, options), its owner and source (`api` or `code`), `paused`, a revision token
`rev` that every write replaces, the next tick `next_due` (ms, nominal) and `next_run` (the tick
plus its jitter), the last run's job id. Beside it: the set of every name, the sorted set of
active schedules by `next_run` (what tickers poll), the list of the latest runs and skips, and
a stream of schedule events, published like job events on a channel of their own.

Every write is one script: definition changes (lua/schedule_write.lua) are guarded by the
revision; a schedule's transitions (a tick's run, a catch-up run, a skip, a manual run:
lua/schedule_tick.lua) are guarded by the revision and the tick, and carry the job's writes, so
a tick is claimed and its job written in the same step (see the service's notes).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import NoScriptError

from webapp.infra.clock import now_iso
from webapp.store import keys, scripts
from webapp.store.admission import Admission, GuardedWriter, Outcome, outcome_of

# The per-schedule counters kept in keys.METRICS_SCHEDULES ("<schedule>\t<counter>").
EVENT_COUNTERS = ("schedule.run", "schedule.skipped")
LAG_SUM, LAG_COUNT, LAST_LAG = "lag_sum", "lag_count", "last_lag"
SKIP_REASONS = ("overlap", "misfire", "queue_full", "invalid_job")
RUN_KINDS = ("tick", "catch_up", "manual")
EVENT_NAMES = (
    "schedule.created",
    "schedule.updated",
    "schedule.paused",
    "schedule.resumed",
    "schedule.deleted",
    "schedule.run",
    "schedule.skipped",
)
LIVE_STATUSES = ("queued", "started", "scheduled", "deferred")  # a run still "in progress" (no_overlap)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def new_revision() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class Stored:
    """A schedule as Redis holds it."""

    name: str
    spec: dict[str, Any]
    owner: str | None
    source: str
    paused: bool
    rev: str
    next_due: int | None
    next_run: int | None
    last_job_id: str | None
    created_at: str
    updated_at: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_hash(cls, name: str, raw: Mapping, runs: list) -> Stored | None:
        if not raw:
            return None
        values = {_text(key): _text(value) for key, value in raw.items()}
        return cls(
            name=name,
            spec=json.loads(values["spec"]),
            owner=values.get("owner") or None,
            source=values.get("source", "api"),
            paused=values.get("paused") == "1",
            rev=values["rev"],
            next_due=int(values["next_due"]) if values.get("next_due") else None,
            next_run=int(values["next_run"]) if values.get("next_run") else None,
            last_job_id=values.get("last_job_id") or None,
            created_at=values.get("created_at", ""),
            updated_at=values.get("updated_at", ""),
            runs=[json.loads(_text(entry)) for entry in runs],
        )


@dataclass
class Transition:
    """One write of lua/schedule_tick.lua: what to check, what to write."""

    stored: Stored
    entry: dict[str, Any]  # the history entry
    event: str  # schedule.run or schedule.skipped
    event_fields: dict[str, Any]
    due: int | None = None  # the tick this handles (None: a manual run, no tick check)
    need_active: bool = True
    no_overlap: bool = False
    next_due: int | None = None  # what to store next (None: keep)
    next_run: int | None = None
    counters: list[tuple[str, Any, str]] = field(default_factory=list)  # (counter, amount, 'i'|'f'|'s')
    job_id: str = ""
    commands: list[tuple] = field(default_factory=list)
    admission: Admission | None = None


class ScheduleStore:
    """Reads and writes schedules for one process's connection and settings."""

    def __init__(self, connection: Redis, config: Mapping[str, Any]):
        self.connection = connection
        self.channel = keys.schedule_events_channel(config)
        self.maxlen = int(config["EVENTS_STREAM_MAXLEN"])
        self.history = int(config["SCHEDULE_HISTORY"])
        self.write_script = scripts.script("schedule_write")
        self.tick_script = scripts.script("schedule_tick")

    # -- reads ---------------------------------------------------------------------------

    def now_ms(self) -> int:
        """Redis's clock, in ms: one clock for every ticker on every machine."""
        seconds, micros = self.connection.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def names(self) -> list[str]:
        return sorted(_text(name) for name in self.connection.smembers(keys.SCHEDULES))

    def count(self) -> int:
        return int(self.connection.scard(keys.SCHEDULES))

    def read(self, name: str) -> Stored | None:
        found = self.read_many([name])
        return found[0] if found else None

    def read_many(self, names: list[str]) -> list[Stored]:
        """The schedules of `names` that exist, with their runs, in one round trip."""
        with self.connection.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(keys.schedule(name))
                pipe.lrange(keys.schedule_runs(name), 0, self.history - 1)
            replies = pipe.execute()
        found = []
        for index, name in enumerate(names):
            stored = Stored.from_hash(name, replies[2 * index], replies[2 * index + 1])
            if stored is not None:
                found.append(stored)
        return found

    def job_statuses(self, job_ids: list[str]) -> dict[str, str | None]:
        """Each job's current status (None: the job has expired)."""
        if not job_ids:
            return {}
        with self.connection.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(keys.job(job_id), "status")
            replies = pipe.execute()
        return {job_id: (_text(status) if status else None) for job_id, status in zip(job_ids, replies, strict=True)}

    def due(self, now_ms: int, limit: int) -> tuple[list[str], float | None]:
        """Names of active schedules due by `now_ms` (at most `limit`), and the next run time after them."""
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(keys.SCHEDULES_DUE, "-inf", now_ms, start=0, num=limit)
            pipe.zrangebyscore(keys.SCHEDULES_DUE, f"({now_ms}", "+inf", start=0, num=1, withscores=True)
            due, upcoming = pipe.execute()
        return [_text(name) for name in due], (float(upcoming[0][1]) if upcoming else None)

    # -- definition writes ---------------------------------------------------------------

    def event_payload(self, event: str, name: str, owner: str | None, **fields: Any) -> str:
        body: dict[str, Any] = {"event": event, "schedule": name, "at": now_iso()}
        if owner is not None:
            body["owner"] = owner
        body.update(fields)
        return json.dumps(body, separators=(",", ":"), default=str)

    def save(self, stored: Stored, expected_rev: str, event: str, **event_fields: Any) -> Outcome:
        """Create (`expected_rev` '') or replace a schedule's definition and state."""
        key = keys.schedule(stored.name)
        values = {
            "spec": json.dumps(stored.spec, separators=(",", ":"), sort_keys=True),
            "source": stored.source,
            "paused": "1" if stored.paused else "0",
            "rev": stored.rev,
            "next_due": stored.next_due if stored.next_due is not None else "",
            "next_run": stored.next_run if stored.next_run is not None else "",
            "created_at": stored.created_at,
            "updated_at": stored.updated_at,
        }
        commands: list[tuple] = [("HSET", key, *[part for pair in values.items() for part in pair])]
        commands.append(("HSET", key, "owner", stored.owner) if stored.owner else ("HDEL", key, "owner"))
        commands.append(("SADD", keys.SCHEDULES, stored.name))
        if stored.paused or stored.next_run is None:
            commands.append(("ZREM", keys.SCHEDULES_DUE, stored.name))
        else:
            commands.append(("ZADD", keys.SCHEDULES_DUE, stored.next_run, stored.name))
        payload = self.event_payload(event, stored.name, stored.owner, **event_fields)
        return self._write(stored.name, expected_rev, commands, event, payload)

    def delete(self, stored: Stored) -> Outcome:
        """Remove a schedule, its history, its jobs' index set and its counters (its jobs stay)."""
        name = stored.name
        counters = [f"{name}\t{counter}" for counter in self.counter_names()]
        commands = [
            ("DEL", keys.schedule(name), keys.schedule_runs(name), keys.index_by_schedule(name)),
            ("SREM", keys.SCHEDULES, name),
            ("ZREM", keys.SCHEDULES_DUE, name),
            ("HDEL", keys.METRICS_SCHEDULES, *counters),
        ]
        payload = self.event_payload("schedule.deleted", name, stored.owner)
        return self._write(name, "*", commands, "schedule.deleted", payload, count=False)

    @staticmethod
    def counter_names() -> list[str]:
        return [*EVENT_NAMES, LAG_SUM, LAG_COUNT, LAST_LAG, *(f"skipped:{reason}" for reason in SKIP_REASONS),
                *(f"runs:{kind}" for kind in RUN_KINDS)]  # fmt: skip

    def _write(self, name: str, expected_rev: str, commands: list[tuple], event: str, payload: str,
               count: bool = True) -> Outcome:  # fmt: skip
        argv: list = [keys.schedule(name), expected_rev, keys.SCHEDULE_EVENTS_STREAM, self.channel, self.maxlen]
        argv += [payload, keys.METRICS_SCHEDULES if count else "", name, event]
        argv.append(len(commands))
        for command in commands:
            argv.append(len(command))
            argv.extend(command)
        return outcome_of(self._run(self.write_script, argv))

    # -- transitions ---------------------------------------------------------------------

    def transition(self, step: Transition) -> Outcome:
        """Run one transition behind its guard (lua/schedule_tick.lua)."""
        stored = step.stored
        name = stored.name
        argv: list = [
            keys.schedule(name),
            keys.SCHEDULES_DUE,
            name,
            stored.rev,
            "" if step.due is None else step.due,
            "1" if step.need_active else "0",
            "1" if step.no_overlap else "0",
            "" if step.next_due is None else step.next_due,
            "" if step.next_run is None else step.next_run,
            keys.schedule_runs(name),
            self.history,
            json.dumps(step.entry, separators=(",", ":")),
            keys.SCHEDULE_EVENTS_STREAM,
            self.channel,
            self.maxlen,
            self.event_payload(step.event, name, stored.owner, **step.event_fields),
            step.event,
            keys.METRICS_SCHEDULES,
            len(step.counters),
        ]
        for counter, amount, kind in step.counters:
            argv += [f"{name}\t{counter}", amount, kind]
        argv.append(step.job_id)
        if step.job_id:
            argv += GuardedWriter.argv(step.commands, step.admission or Admission())
        return outcome_of(self._run(self.tick_script, argv))

    def _run(self, script, argv: list):
        try:
            return self.connection.evalsha(script.sha, 0, *argv)
        except NoScriptError:
            return self.connection.eval(script.script, 0, *argv)

    # -- metrics -------------------------------------------------------------------------

    def counters(self) -> dict[str, dict[str, float]]:
        """schedule -> counter -> value, for /metrics."""
        found: dict[str, dict[str, float]] = {}
        for raw_field, raw_value in self.connection.hgetall(keys.METRICS_SCHEDULES).items():
            schedule, _, counter = _text(raw_field).partition("\t")
            found.setdefault(schedule, {})[counter] = float(_text(raw_value))
        return found
