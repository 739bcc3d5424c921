"""Periodic schedules: create, change, pause, run and delete them for a caller, and tick them.

Exactly one enqueue per due tick, however many `worker.py` tickers run: a tick is identified
by its schedule and its nominal due time, which every ticker computes alike from the stored
definition. The ticker that handles a tick plans the job, then sends ONE script
(lua/schedule_tick.lua) that checks the schedule is still at the revision it planned from
and still waits for that very tick, writes the job exactly as a submission (job hash, queue,
`queued` event, index, wake token), advances the stored tick, appends the history entry and
the `schedule.run` event. The others' scripts find the tick already advanced and write
nothing. A process killed before its script leaves the tick to the others; one killed after
it has written all of it. No lease, no leader: there is nothing to hand over when a process
dies, so no tick waits for a lease to expire. (The cost: every ticker plans each due tick;
the losers' scripts are refused by the guard before they write anything.)

What "exactly" rests on: Redis runs a script atomically and keeps it durable as far as its
persistence goes (AOF with fsync); a failover to a replica that had not yet received the
script's writes loses them with the tick's job, and the new master runs that tick again
(a possible duplicate, never a gap). Times come from Redis (`TIME`), one clock for all.

Every operation takes the caller (owner rule of webapp/service/access.py); runs of a
schedule are jobs of the schedule's owner.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from webapp.infra.clock import iso_from_timestamp, now_iso
from webapp.infra.errors import APIError, Conflict, NotFound, Unavailable, ValidationFailed
from webapp.service import access
from webapp.service.access import Caller
from webapp.service.jobservice import JobService
from webapp.service.planning import PlannedJob
from webapp.service.schedule_models import (
    ScheduleCreate,
    ScheduleOptions,
    SchedulePatch,
    valid_name,
)
from webapp.service.schedule_sync import sync_declared
from webapp.service.schedule_timing import Timing, decide, parse_cron, parse_timezone
from webapp.service.submission import SubmitRequest
from webapp.service.validation import failed
from webapp.store.schedules import ScheduleStore, Stored, Transition, new_revision

log = logging.getLogger("webapp.schedules")

TIMING_FIELDS = ("cron", "interval", "timezone", "jitter")
DUE_BATCH = 100  # due schedules one ticker pass handles before looking again


def _iso_ms(moment_ms: int | None) -> str | None:
    return None if moment_ms is None else iso_from_timestamp(moment_ms / 1000)


def not_found(name: str) -> NotFound:
    return NotFound(f"no schedule named {name!r}")


class ScheduleService:
    """Schedules over one job service (its Redis client, planner and submission writer)."""

    def __init__(self, jobs: JobService):
        self.jobs = jobs
        self.config = jobs.config
        self.store = ScheduleStore(jobs.connection, jobs.config)

    # -- validation ----------------------------------------------------------------------

    def _plan(self, job: dict[str, Any]) -> PlannedJob:
        """The schedule's job, checked exactly like a submission; errors name `job.<field>`."""
        try:
            return self.jobs.plan(SubmitRequest.model_validate(job))
        except ValidationError as exc:
            raise failed(exc, "job: ") from None
        except APIError as exc:
            details = [{**detail, "argument": f"job.{detail.get('argument') or ''}".rstrip(".")}
                       for detail in (exc.details or [])]  # fmt: skip
            if not details and isinstance(exc, ValidationFailed):
                details = [{"argument": "job.name" if "job name" in exc.message else "job", "message": exc.message,
                            "type": exc.code}]  # fmt: skip
            exc.message = f"job: {exc.message}"
            exc.details = details or None
            raise

    def _timing(self, spec: dict[str, Any], *, patched: bool = False) -> Timing:
        """The timing `spec` asks for. What the API's schema refuses on its own (both cron and
        interval, jitter with cron) is a 422; what only a PATCH merged with the stored schedule can
        get wrong (taking away its only timing, jitter on a cron schedule) conflicts with that
        schedule: a 409."""
        cron, interval, jitter = spec.get("cron"), spec.get("interval"), spec.get("jitter") or 0
        refuse = Conflict if patched else ValidationFailed
        if (cron is None) == (interval is None):
            message = "give either cron (e.g. '0 2 * * *') or interval (seconds), not both" if cron else (
                "give cron (e.g. '0 2 * * *') or interval (seconds)")  # fmt: skip
            raise refuse(message, details=[{"argument": "cron", "message": message, "type": "timing"}])
        parse_timezone(spec["timezone"])
        if cron is not None:
            spec["cron"] = parse_cron(cron)
            if jitter:
                raise refuse("jitter: applies to interval schedules only (this one has a cron expression)")
        return Timing(cron=spec.get("cron"), timezone=spec["timezone"], interval=interval)

    def _spec(self, options: ScheduleOptions, job: Any) -> dict[str, Any]:
        spec = options.model_dump(
            mode="json", include={"cron", "interval", "timezone", "no_overlap", "misfire", "jitter"}
        )
        spec["job"] = job.model_dump(mode="json", exclude_none=True) if not isinstance(job, dict) else job
        return spec

    # -- reads ---------------------------------------------------------------------------

    def _visible(self, name: str, caller: Caller) -> Stored:
        if not valid_name(name):
            raise not_found(name)
        stored = self.store.read(name)
        if stored is None or not access.may_see(stored.owner, caller):
            raise not_found(name)
        return stored

    def view(self, stored: Stored) -> dict[str, Any]:
        """The API's view: definition, state, next run and the latest runs with their jobs' status."""
        return self.views([stored])[0]

    def views(self, schedules: list[Stored]) -> list[dict[str, Any]]:
        ids = [entry["job_id"] for stored in schedules for entry in stored.runs if entry.get("job_id")]
        statuses = self.store.job_statuses(ids)
        result = []
        for stored in schedules:
            runs = []
            for entry in stored.runs:
                job_id = entry.get("job_id")
                status = "skipped" if not job_id else (statuses.get(job_id) or "expired")
                runs.append({"job_id": job_id, "due_at": entry.get("due_at"), "enqueued_at": entry.get("enqueued_at"),
                             "status": status, "kind": entry.get("kind", "tick"), "reason": entry.get("reason"),
                             "missed": entry.get("missed")})  # fmt: skip
            spec = stored.spec
            result.append({
                "name": stored.name, "owner": stored.owner, "source": stored.source, "job": spec["job"],
                "cron": spec.get("cron"), "interval": spec.get("interval"), "timezone": spec.get("timezone", "UTC"),
                "no_overlap": spec.get("no_overlap", False), "misfire": spec.get("misfire", "run_once"),
                "jitter": spec.get("jitter", 0), "paused": stored.paused,
                "next_run_at": None if stored.paused else _iso_ms(stored.next_run),
                "created_at": stored.created_at, "updated_at": stored.updated_at, "runs": runs,
            })  # fmt: skip
        return result

    def list(self, caller: Caller) -> list[dict[str, Any]]:
        visible = [
            stored for stored in self.store.read_many(self.store.names()) if access.may_see(stored.owner, caller)
        ]
        return self.views(visible)

    def get(self, name: str, caller: Caller) -> dict[str, Any]:
        return self.view(self._visible(name, caller))

    # -- definition changes --------------------------------------------------------------

    def create(self, body: ScheduleCreate, caller: Caller, *, source: str = "api", owner: str | None = None) -> dict:
        """A new schedule (409 if the name is taken); its first tick is the first after now."""
        if self.store.count() >= self.config["MAX_SCHEDULES"]:
            raise Conflict(f"there are already {self.config['MAX_SCHEDULES']} schedules (MAX_SCHEDULES): delete some")
        now_ms = self.store.now_ms()
        spec = self._spec(body, body.job)
        timing = self._timing(spec)
        owner = owner if source == "code" else access.owner_of(caller)
        self.jobs.submitter.check_signable([self._plan(spec["job"])], owner)
        next_due = timing.first_tick(now_ms)
        stamp = now_iso()
        stored = Stored(body.name, spec, owner, source, body.paused, new_revision(), next_due,
                        self._run_at(next_due, spec), None, stamp, stamp)  # fmt: skip
        outcome = self.store.save(stored, "", "schedule.created", **self._summary(stored))
        if outcome.status == "exists":
            raise Conflict(f"a schedule named {body.name!r} exists already: PATCH it, or DELETE it first")
        return self.view(stored)

    def update(self, name: str, patch: SchedulePatch, caller: Caller, *, declared: tuple | None = None) -> dict:
        """Change any field; a change of timing (or a resume) restarts the ticks from now.

        `declared`: (owner,) when jobs.SCHEDULES sets the definition (source becomes `code`)."""
        for _attempt in range(5):
            stored = self._visible(name, caller)
            changes = patch.model_dump(mode="json", exclude_unset=True)
            if changes.get("cron") is not None and (changes.get("interval") is not None or changes.get("jitter")):
                raise ValidationFailed("give cron, or interval (and jitter), not both")
            definition = set(changes) - {"paused"}
            if stored.source == "code" and definition and declared is None:
                raise Conflict(
                    f"schedule {name!r} is declared in code (jobs.SCHEDULES): change it there and redeploy; "
                    "pause, resume and run-now work here"
                )
            spec = dict(stored.spec)
            if changes.get("cron") is not None:
                spec["interval"] = None
            if changes.get("interval") is not None:
                spec["cron"] = None
            for field in definition:
                if field == "job":
                    if patch.job is not None:  # null, as for the other fields: no change
                        spec["job"] = patch.job.model_dump(mode="json", exclude_none=True)
                elif changes[field] is not None or field in ("cron", "interval"):
                    spec[field] = changes[field]
            now_ms = self.store.now_ms()
            timing = self._timing(spec, patched=True)
            paused = stored.paused if changes.get("paused") is None else changes["paused"]
            owner, source = (declared[0], "code") if declared is not None else (stored.owner, stored.source)
            if changes.get("job") is not None:
                self.jobs.submitter.check_signable([self._plan(spec["job"])], owner)
            retimed = any(spec.get(field) != stored.spec.get(field) for field in TIMING_FIELDS)
            resumed = stored.paused and not paused
            new = replace(stored, spec=spec, paused=paused, owner=owner, source=source, rev=new_revision(),
                          updated_at=now_iso())  # fmt: skip
            if retimed or resumed or new.next_due is None:
                new.next_due = timing.first_tick(now_ms)
                new.next_run = self._run_at(new.next_due, spec)
            if spec != stored.spec or (owner, source) != (stored.owner, stored.source):
                event = "schedule.updated"
            elif paused != stored.paused:
                event = "schedule.paused" if paused else "schedule.resumed"
            else:
                return self.view(stored)  # nothing changes
            outcome = self.store.save(new, stored.rev, event, **self._summary(new))
            if outcome.status == "ok":
                return self.view(new)
            if outcome.status == "gone":
                raise not_found(name)
        raise Conflict(f"schedule {name!r} keeps changing under this request; retry")

    def pause(self, name: str, caller: Caller) -> dict:
        return self.update(name, SchedulePatch(paused=True), caller)

    def resume(self, name: str, caller: Caller) -> dict:
        return self.update(name, SchedulePatch(paused=False), caller)

    def delete(self, name: str, caller: Caller, *, declared: bool = False) -> None:
        stored = self._visible(name, caller)
        if stored.source == "code" and not declared:
            raise Conflict(
                f"schedule {name!r} is declared in code (jobs.SCHEDULES): remove it there and redeploy, "
                "or pause it here"
            )
        self.store.delete(stored)

    def _summary(self, stored: Stored) -> dict[str, Any]:
        return {"paused": stored.paused, "next_run_at": None if stored.paused else _iso_ms(stored.next_run)}

    @staticmethod
    def _run_at(due: int | None, spec: dict[str, Any]) -> int | None:
        """When tick `due` runs: delayed by up to `jitter` seconds (never into the next tick)."""
        if due is None:
            return None
        jitter = min(spec.get("jitter") or 0, (spec.get("interval") or 1) - 1)
        return due + (random.randint(0, jitter * 1000) if jitter > 0 else 0)

    # -- runs ----------------------------------------------------------------------------

    def run_now(self, name: str, caller: Caller) -> dict[str, Any]:
        """Enqueue one run now (also while paused); its tick schedule is unchanged. With
        `no_overlap`, 409 while the previous run is queued or running."""
        for _attempt in range(3):
            stored = self._visible(name, caller)
            now_ms = self.store.now_ms()
            step, created = self._run_step(stored, self._plan(stored.spec["job"]), now_ms, None, "manual", 0)
            step.need_active = False
            step.no_overlap = bool(stored.spec.get("no_overlap"))
            outcome = self.store.transition(step)
            if outcome.status == "ok":
                return {**created, "schedule": name}
            if outcome.status == "overlap":
                job_id, status = (part.decode() if isinstance(part, bytes) else part for part in outcome.detail[:2])
                raise Conflict(f"the previous run {job_id} is still {status} and schedule {name!r} has no_overlap set")
            if outcome.status == "full":
                raise Unavailable(f"queue {created['queue']!r} is full (MAX_QUEUE_DEPTH); retry later",
                                  headers={"Retry-After": "5"})  # fmt: skip
            if outcome.status == "gone":
                raise not_found(name)
        raise Conflict(f"schedule {name!r} keeps changing under this request; retry")

    def _run_step(self, stored: Stored, plan: PlannedJob, now_ms: int, due: int | None, kind: str, missed: int,
                  run_at: int | None = None) -> tuple[Transition, dict]:  # fmt: skip
        commands, admission, created = self.jobs.submitter.job_writes(plan, stored.owner, stored.name)
        entry = {"job_id": created["id"], "due_at": _iso_ms(due if due is not None else now_ms),
                 "enqueued_at": _iso_ms(now_ms), "kind": kind}  # fmt: skip
        if missed:
            entry["missed"] = missed
        lag = max(0.0, (now_ms - (run_at if run_at is not None else due if due is not None else now_ms)) / 1000)
        fields = {"job_id": created["id"], "due_at": entry["due_at"], "kind": kind, "lag_seconds": round(lag, 3)}
        if missed:
            fields["missed"] = missed
        step = Transition(stored, entry, "schedule.run", fields, due=due, job_id=created["id"], commands=commands,
                          admission=admission)  # fmt: skip
        step.counters = [(f"runs:{kind}", 1, "i")]
        if kind != "manual":
            step.counters += [("lag_sum", lag, "f"), ("lag_count", 1, "i"), ("last_lag", lag, "s")]
        return step, created

    def _skip_step(self, stored: Stored, now_ms: int, due: int, reason: str, missed: int, message: str = ""):
        entry = {"job_id": None, "due_at": _iso_ms(due), "enqueued_at": None, "kind": "skip", "reason": reason,
                 "at": _iso_ms(now_ms)}  # fmt: skip
        fields: dict[str, Any] = {"due_at": entry["due_at"], "reason": reason}
        if missed > 1:
            entry["missed"] = fields["missed"] = missed
        if message:
            fields["message"] = message
        return Transition(stored, entry, "schedule.skipped", fields, due=due, counters=[(f"skipped:{reason}", 1, "i")])

    def tick(self, stored: Stored, now_ms: int) -> str:
        """Handle `stored`'s due tick at `now_ms`: one transition, claimed by its guard.

        Returns what happened: run, catch_up, skip:<reason>, or stale (another ticker did it,
        or the schedule changed meanwhile), or early (not due yet)."""
        if stored.paused or stored.next_due is None or stored.next_run is None or stored.next_run > now_ms:
            return "early"
        spec = stored.spec
        timing = Timing(cron=spec.get("cron"), timezone=spec.get("timezone", "UTC"), interval=spec.get("interval"))
        decision = decide(timing, stored.next_due, stored.next_run, now_ms, spec.get("misfire", "run_once"),
                          int(self.config["SCHEDULE_MISFIRE_GRACE"] * 1000))  # fmt: skip
        next_due = decision.next_due
        next_run = self._run_at(next_due, spec)
        if decision.action == "skip":
            step = self._skip_step(stored, now_ms, decision.due, "misfire", decision.missed)
            return self._advance(step, stored, next_due, next_run, "skip:misfire")
        try:
            plan = self._plan(spec["job"])
        except APIError as exc:  # the catalog changed under a stored schedule (a redeploy)
            step = self._skip_step(stored, now_ms, decision.due, "invalid_job", decision.missed, exc.message)
            return self._advance(step, stored, next_due, next_run, "skip:invalid_job")
        kind = "tick" if decision.action == "run" else "catch_up"
        run_at = stored.next_run if decision.action == "run" else decision.due
        step, created = self._run_step(stored, plan, now_ms, decision.due, kind, decision.missed, run_at)
        step.no_overlap = bool(spec.get("no_overlap"))
        outcome = self._advance(step, stored, next_due, next_run, kind)
        if outcome == "overlap":
            step = self._skip_step(stored, now_ms, decision.due, "overlap", decision.missed)
            return self._advance(step, stored, next_due, next_run, "skip:overlap")
        if outcome == "full":
            step = self._skip_step(stored, now_ms, decision.due, "queue_full", decision.missed)
            return self._advance(step, stored, next_due, next_run, "skip:queue_full")
        return outcome

    def _advance(self, step: Transition, stored: Stored, next_due: int, next_run: int, done: str) -> str:
        step.due = stored.next_due
        step.next_due, step.next_run = next_due, next_run
        step.event_fields["next_run_at"] = _iso_ms(next_run)
        outcome = self.store.transition(step)
        if outcome.status == "ok":
            return done
        if outcome.status in ("overlap", "full"):
            return outcome.status
        return "stale"

    def tick_due(self, now_ms: int) -> tuple[dict[str, int], float | None]:
        """One ticker pass: every schedule due by `now_ms`. Returns the outcomes counted and
        the next run time (ms) after them, if any."""
        names, upcoming = self.store.due(now_ms, DUE_BATCH)
        counted: dict[str, int] = {}
        for stored in self.store.read_many(names) if names else []:
            try:
                outcome = self.tick(stored, now_ms)
            except APIError as exc:  # e.g. a cron expression this version no longer reads
                log.error("schedule %s: %s", stored.name, exc.message)
                outcome = "error"
            counted[outcome] = counted.get(outcome, 0) + 1
        if len(names) >= DUE_BATCH:
            upcoming = now_ms  # more are due: look again at once
        return counted, upcoming

    def sync_declared(self, declared: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
        """Apply `jobs.SCHEDULES` (webapp/service/schedule_sync.py)."""
        return sync_declared(self, declared)
