"""Bulk actions: retry, cancel or delete every job that matches a listing filter.

A bulk call walks the listing index (webapp/store/listing.py) newest first, `page_size` ids
at a time: per page, one read of the index, one pipelined read of the job hashes, then the
action on each matching job through the very functions the single-job routes use
(`JobService.requeue_ended`, `cancel_waiting`, `delete_loaded`), with the page's events
written in one more pipelined round trip. Memory and Redis calls per page are bounded by
the page size, whatever the number of matching jobs.

A call stops after `time_budget` seconds (at a page boundary) and answers with `next_cursor`,
the index position it reached; calling again with that cursor goes on from there. Positions
are creation times, so the walk is stable while jobs change state, are deleted or are
submitted meanwhile (newer jobs are not part of a walk that started before them).

The filter is ANDed with ownership: an owner key walks its own index set only, so it can
never count or touch another client's jobs. A job whose status does not allow the action is
skipped and counted by status; one that changed between the read and the action, too.

Each call reports its progress as operator events (webapp/store/opevents.py, beside the queue
events): `bulk.started` (action, filter, dry_run, who, the call's `bulk_id`; `owner`: the key name
when an owner key made the call, whose walk is limited to its own jobs, else null), `bulk.progress`
after every page (the running counts and the cursor) and `bulk.finished` (the totals and
`next_cursor`). One script call per page, never one per job. They carry counts and the filter,
no list of jobs: the only id in them is inside the cursor, a position of the caller's own walk
(an owner's cursor names one of its own jobs).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from webapp.infra.errors import ValidationFailed
from webapp.service import access
from webapp.service.access import Caller
from webapp.service.jobservice import JobService
from webapp.store import jobreads, listing, states
from webapp.store.opevents import OperatorEvents

ACTIONS = ("retry", "cancel", "delete")

# The statuses each action takes; any other status is skipped (cancel never stops a running
# job in bulk: stop those one by one; delete refuses running jobs as the single delete does).
ALLOWED = {
    "retry": states.RETRYABLE,
    "cancel": frozenset({"queued", "scheduled", "deferred"}),
    "delete": frozenset(states.STATUSES) - {"started"},
}


@dataclass
class BulkFilter:
    """The listing's filters (GET /api/jobs): every one given must match."""

    status: str | None = None
    queue: str | None = None
    name: str | None = None
    schedule: str | None = None

    def given(self) -> dict[str, str]:
        return {key: value for key, value in vars(self).items() if value is not None}


@dataclass
class BulkOutcome:
    """What one bulk call did (counts of this call only; a client following the cursor adds them)."""

    action: str
    dry_run: bool
    matched: int = 0
    done: int = 0
    skipped: Counter = field(default_factory=Counter)  # (reason, status) -> count
    pages: int = 0
    next_cursor: str | None = None

    @property
    def eligible(self) -> int:
        """Matched jobs whose status allows the action (in a dry run: what a real run would act on)."""
        return self.matched - sum(count for (reason, _), count in self.skipped.items() if reason == "status")

    def to_dict(self) -> dict[str, Any]:
        skipped = sorted(self.skipped.items(), key=lambda item: (item[0][0], item[0][1] or ""))
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "matched": self.matched,
            "eligible": self.eligible,
            "done": self.done,
            "skipped": [{"reason": reason, "status": status, "count": count} for (reason, status), count in skipped],
            "next_cursor": self.next_cursor,
        }


def check_filter(service: JobService, wanted: BulkFilter) -> None:
    """422 naming the field for a queue or job type this service does not have."""
    if wanted.queue is not None and wanted.queue not in service.queues:
        raise ValidationFailed(f"filter.queue: unknown queue {wanted.queue!r}: configured queues are "
                               f"{', '.join(service.queues)}")  # fmt: skip
    if wanted.name is not None and wanted.name not in service.catalog:
        raise ValidationFailed(f"filter.name: unknown job name {wanted.name!r}: valid names are "
                               f"{', '.join(sorted(service.catalog))}")  # fmt: skip


def _text(raw: dict, field_name: bytes) -> str | None:
    value = raw.get(field_name)
    return value.decode() if value is not None else None


def _meta(raw: dict) -> dict:
    try:
        meta = json.loads(raw.get(b"meta") or b"{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


class BulkRunner:
    """Runs bulk actions for one JobService."""

    def __init__(self, service: JobService, *, page_size: int, time_budget: float):
        self.service = service
        self.page_size = max(1, int(page_size))
        self.time_budget = max(0.0, float(time_budget))
        self.lister = listing.JobLister(service.connection, service.names_by_path, service.queues, service.catalog)
        self.events = OperatorEvents(service.connection, service.config)

    def run(self, caller: Caller, action: str, wanted: BulkFilter, *, dry_run: bool = False,
            cursor: str | None = None, on_page: Callable[[BulkOutcome], None] | None = None,
            time_budget: float | None = None, by: str | None = None) -> BulkOutcome:  # fmt: skip
        """Act on the jobs matching `wanted` from `cursor` on, until done or out of time.

        `on_page` is called after each page with the running totals (the CLI's progress). The
        events name the caller's key, or `by` when there is none (the command line's operator)."""
        if action not in ACTIONS:
            raise ValidationFailed(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
        access.check_may_write(caller)
        check_filter(self.service, wanted)
        owner = access.owner_filter(caller)  # the filter is ANDed with ownership
        key = listing.index_to_read(queue=wanted.queue, name=wanted.name, owner=owner, schedule=wanted.schedule)
        position = listing.decode_cursor(cursor) if cursor else None
        outcome = BulkOutcome(action=action, dry_run=dry_run)
        budget = self.time_budget if time_budget is None else time_budget
        deadline = time.monotonic() + budget
        about = {"bulk_id": uuid.uuid4().hex, "action": action, "dry_run": dry_run,
                 "by": caller.name if caller is not None else by, "owner": owner}  # fmt: skip
        self.events.record("bulk.started", "bulk", **about, filter=wanted.given(), cursor=cursor)
        while True:
            entries = self.lister.entries_after(key, position, self.page_size)
            if entries:
                position = entries[-1][1], entries[-1][0]
                self._page(entries, key, caller, action, wanted, owner, dry_run, outcome)
                outcome.pages += 1
                self.events.record("bulk.progress", "bulk", **about, page=outcome.pages, matched=outcome.matched,
                                   eligible=outcome.eligible, done=outcome.done,
                                   cursor=listing.encode_cursor(*position))  # fmt: skip
            if len(entries) < self.page_size:
                outcome.next_cursor = None
                break
            outcome.next_cursor = listing.encode_cursor(*position)
            if on_page is not None:
                on_page(outcome)
            if time.monotonic() >= deadline:
                break
        if on_page is not None and outcome.next_cursor is None:
            on_page(outcome)
        totals = outcome.to_dict()
        del totals["action"], totals["dry_run"]
        self.events.record("bulk.finished", "bulk", **about, filter=wanted.given(), pages=outcome.pages, **totals)
        return outcome

    def _page(self, entries: list[tuple[str, int]], key: str, caller: Caller, action: str, wanted: BulkFilter,
              owner: str | None, dry_run: bool, outcome: BulkOutcome) -> None:  # fmt: skip
        ids = [job_id for job_id, _ in entries]
        hashes = self.lister.fetch_hashes(ids)
        gone, chosen = [], []
        allowed = ALLOWED[action]
        for job_id, raw in zip(ids, hashes, strict=True):
            if not raw:
                gone.append(job_id)
                continue
            status = _text(raw, b"status")
            status = "deferred" if status == "ready_to_enqueue" else status
            if wanted.status is not None and status != wanted.status:
                continue
            if wanted.queue is not None and _text(raw, b"origin") != wanted.queue:
                continue
            meta = _meta(raw)
            if wanted.name is not None and meta.get("name") != wanted.name:
                continue
            if wanted.schedule is not None and meta.get("schedule") != wanted.schedule:
                continue
            if not access.may_see(meta.get("owner"), caller) or (owner is not None and meta.get("owner") != owner):
                continue
            outcome.matched += 1
            if status not in allowed:
                outcome.skipped["status", status] += 1
                continue
            chosen.append((job_id, raw, status))
        if gone:
            self.lister.forget(gone, key)
        if dry_run or not chosen:
            return
        service = self.service
        jobs = [(jobreads.restore(job_id, raw, service.connection), status) for job_id, raw, status in chosen]
        with service.connection.pipeline(transaction=False) as pipe:
            if action == "retry":
                changed = len(service.requeue_ended(jobs, pipe))
            elif action == "cancel":
                changed = len(service.cancel_waiting(jobs, pipe))
            else:
                changed = 0
                for job, status in jobs:
                    service.delete_loaded(job, status, pipe)
            pipe.execute()
        outcome.done += len(jobs) - changed
        if changed:
            outcome.skipped["changed", None] += changed
