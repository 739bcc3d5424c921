"""What a client sends to create or change a periodic schedule, as pydantic models.

A schedule's `job` is a submission as `POST /api/jobs` takes it, less the options that time a
job (`enqueue_in`, `enqueue_at`, `depends_on`): each run is queued at its tick. It is checked
by the same planner as a submission (webapp/service/planning.py), so a schedule can never hold
a job that `POST /api/jobs` would refuse.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from annotated_types import Ge, Le
from pydantic import ConfigDict, Field, create_model

from webapp.service.schedule_timing import CRON_PATTERN, time_zones
from webapp.service.submission import Strict, SubmitRequest
from webapp.service.validation import FORMS, WHOLE_NUMBER

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
TIMING_OPTIONS = ("enqueue_in", "enqueue_at", "depends_on")


def valid_name(name: object) -> bool:
    return isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) is not None


MAX_INTERVAL = 366 * 86400
Misfire = Literal["run_once", "skip"]

ScheduledJob = create_model(
    "ScheduledJob",
    __base__=Strict,
    __doc__="The job each run submits: a submission as POST /api/jobs takes it, without its timing options.",
    **{
        name: (info.annotation, info) for name, info in SubmitRequest.model_fields.items() if name not in TIMING_OPTIONS
    },
)

FORMS["cron"] = (
    "a cron expression: 5 fields one space apart (minute hour day-of-month month day-of-week, e.g. '0 2 * * *', "
    "each *, a number, a range 1-5, a list 1,3 or a step */15; months and days also by name), or @hourly, @daily, "
    "@weekly, @monthly, @yearly"
)
FORMS["name"] = "a schedule name: a letter or digit, then letters, digits, '_', '.', '-' (at most 100)"
CRON = Field(
    None,
    max_length=200,
    pattern=CRON_PATTERN,
    description="5 fields one space apart: minute hour day-of-month month day-of-week, e.g. `0 2 * * *` (values, "
    "ranges, lists, steps; months and days also by name); or @hourly, @daily, @weekly, @monthly, @yearly.",
)
INTERVAL = Field(None, description="Seconds between runs (instead of `cron`).")
Seconds = Annotated[int, Ge(1), Le(MAX_INTERVAL), WHOLE_NUMBER]  # an interval; 5.0 is 5, as JSON has it
JitterSeconds = Annotated[int, Ge(0), Le(86400), WHOLE_NUMBER]
# The server checks the name against the same list (schedule_timing.parse_timezone).
ZONES = {"enum": list(time_zones())}
TIMEZONE = Field("UTC", description="IANA time zone of a cron expression.", json_schema_extra=ZONES)
NO_OVERLAP = Field(False, description="Skip a tick while the previous run is still queued or running.")
MISFIRE = Field(
    "run_once",
    description="Ticks missed while no worker ran: `run_once` makes one catch-up run, `skip` none.",
)
JITTER = Field(
    0,
    description="Interval schedules: delay each run by up to this many seconds (at most the interval less one).",
)
PAUSED = Field(False, description="A paused schedule makes no runs until resumed.")


class ScheduleOptions(Strict):
    cron: str | None = CRON
    interval: Seconds | None = INTERVAL
    timezone: str = TIMEZONE
    no_overlap: bool = NO_OVERLAP
    misfire: Misfire = MISFIRE
    jitter: JitterSeconds = JITTER
    paused: bool = PAUSED


IS_SET = {"not": {"type": "null"}}


def _given(field: str) -> dict:
    return {"required": [field], "properties": {field: IS_SET}}


# Rules across fields, for the document (the service checks them too: schedules.py `_timing`).
NOT_BOTH_TIMINGS = {"not": {"allOf": [_given("cron"), _given("interval")]}}
NO_JITTER_WITH_CRON = {"not": {"allOf": [_given("cron"), {"required": ["jitter"], "properties": {"jitter": {
    "exclusiveMinimum": 0}}}]}}  # fmt: skip


class ScheduleCreate(ScheduleOptions):
    """`POST /api/schedules`: a name, the job, and `cron` or `interval`."""

    model_config = ConfigDict(
        **Strict.model_config,
        json_schema_extra={
            "allOf": [NOT_BOTH_TIMINGS, NO_JITTER_WITH_CRON, {"anyOf": [_given("cron"), _given("interval")]}]
        },
    )

    name: str = Field(pattern=NAME_PATTERN, description="Letters, digits, `_`, `.`, `-`; at most 100.")
    job: ScheduledJob


class ScheduleDeclared(ScheduleOptions):
    """A schedule declared in code (`jobs.SCHEDULES`): as POST /api/schedules takes it, its name
    being its key in the table, with the API key name that owns its jobs, if any."""

    job: ScheduledJob
    owner: str | None = Field(None, min_length=1, max_length=100)


class SchedulePatch(Strict):
    """`PATCH /api/schedules/<name>`: any field; the others keep their values. Giving `cron`
    switches an interval schedule to cron and the other way round."""

    model_config = ConfigDict(
        **Strict.model_config, json_schema_extra={"allOf": [NOT_BOTH_TIMINGS, NO_JITTER_WITH_CRON]}
    )

    job: ScheduledJob | None = None
    cron: str | None = CRON
    interval: Seconds | None = INTERVAL
    timezone: str | None = Field(None, description=TIMEZONE.description, json_schema_extra=ZONES)
    no_overlap: bool | None = Field(None, description=NO_OVERLAP.description)
    misfire: Misfire | None = Field(None, description=MISFIRE.description)
    jitter: JitterSeconds | None = Field(None, description=JITTER.description)
    paused: bool | None = Field(None, description=PAUSED.description)


class RunNowRequest(Strict):
    """`POST /api/schedules/<name>/run`: no options; send `{}` (or no body)."""
