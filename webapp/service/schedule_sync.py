"""Schedules declared in code (`jobs.SCHEDULES`), applied by `worker.py` at start-up and by
`flask schedules sync`: created or updated in Redis, their runtime state kept (paused,
history, the next tick unless the timing changed); code schedules no longer declared are
deleted. Every write is guarded by the schedule's revision, so many processes starting at
once apply them safely: the first writes, the others find them unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from webapp.infra.errors import APIError, Conflict, ValidationFailed
from webapp.service.schedule_models import NAME_PATTERN, ScheduleCreate, ScheduleDeclared, SchedulePatch, valid_name
from webapp.service.validation import failed

if TYPE_CHECKING:  # the service calls these functions with itself
    from webapp.service.schedules import ScheduleService

log = logging.getLogger("webapp.schedules")


def sync_declared(service: ScheduleService, declared: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Create or update the schedules of `jobs.SCHEDULES`; delete code schedules no longer
    declared. Runtime state (paused, history, the next tick unless the timing changed)
    is kept. Safe to run from many processes at once (every write is guarded)."""
    report: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": [], "deleted": [], "invalid": []}
    for name, raw in declared.items():
        try:
            _sync_one(service, name, raw, report)
        except APIError as exc:
            log.error("jobs.SCHEDULES[%r] is invalid and was not applied: %s", name, exc.message)
            report["invalid"].append(f"{name}: {exc.message}")
    for stored in service.store.read_many(service.store.names()):
        if stored.source == "code" and stored.name not in declared:
            service.delete(stored.name, None, declared=True)
            report["deleted"].append(stored.name)
    return report


def _sync_one(service: ScheduleService, name: str, raw: Mapping[str, Any], report: dict[str, list[str]]) -> None:
    if not valid_name(name):
        raise ValidationFailed(f"the name must match {NAME_PATTERN}")
    try:
        body = ScheduleDeclared.model_validate(dict(raw))
    except ValidationError as exc:
        raise failed(exc, "") from None
    spec = service._spec(body, body.job)
    service._timing(spec)  # normalizes the cron expression
    service._plan(spec["job"])
    for _attempt in range(5):
        stored = service.store.read(name)
        if stored is None:
            try:
                create = ScheduleCreate.model_validate({**body.model_dump(exclude={"owner"}), "name": name})
                service.create(create, None, source="code", owner=body.owner)
                report["created"].append(name)
                return
            except Conflict:
                continue  # another process created it meanwhile: compare with theirs
        if (stored.spec, stored.owner, stored.source) == (spec, body.owner, "code"):
            report["unchanged"].append(name)
            return
        service.update(name, SchedulePatch.model_validate(spec), None, declared=(body.owner,))
        report["updated"].append(name)
        return
    raise Conflict(f"schedule {name!r} kept changing while it was synced")
