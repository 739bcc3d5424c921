"""`flask schedules ...`: list, add, pause, resume, run, delete and sync periodic schedules.

The commands go through the same ScheduleService as the HTTP API (same validation, same
events), straight to Redis, with operator rights: they see every schedule, whoever owns it.
"""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup
from pydantic import ValidationError

import jobs as job_functions
from webapp.infra.errors import APIError
from webapp.service.schedule_models import ScheduleCreate
from webapp.service.schedules import ScheduleService
from webapp.service.validation import failed

schedules_group = AppGroup("schedules", help="List, add, pause, resume, run and delete periodic schedules.")

OPERATOR = None  # the CLI talks to Redis directly, with operator rights


def get_schedules() -> ScheduleService:
    return current_app.extensions["jobsvc_schedules"]


def _fail(exc: APIError) -> None:
    raise click.ClickException(exc.message)


def _when(view: dict) -> str:
    return view["cron"] + f" ({view['timezone']})" if view["cron"] else f"every {view['interval']} s"


@schedules_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")
def list_command(as_json):
    """Every schedule: timing, state, next run, last run."""
    views = get_schedules().list(OPERATOR)
    if as_json:
        click.echo(json.dumps({"schedules": views}, indent=2))
        return
    if not views:
        click.echo("no schedules (add one with `flask schedules add`, POST /api/schedules or jobs.SCHEDULES)")
        return
    for view in views:
        last = view["runs"][0] if view["runs"] else None
        last_text = f"last {last['status']} ({last['due_at']})" if last else "no runs yet"
        state = "paused" if view["paused"] else f"next {view['next_run_at']}"
        click.echo(f"{view['name']:<24} {_when(view):<32} {view['job']['name']:<10} {state:<34} {last_text}")


@schedules_group.command("add")
@click.argument("name")
@click.argument("job_name")
@click.argument("args", nargs=-1)
@click.option("--cron", default=None, help="5 fields, e.g. '0 2 * * *' (quote it).")
@click.option("--interval", type=int, default=None, help="Seconds between runs (instead of --cron).")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone of --cron.")
@click.option("--queue", default=None, help="high, default or low.")
@click.option("--kwargs", "kwargs", default=None, metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("--no-overlap", is_flag=True, help="Skip a tick while the previous run is queued or running.")
@click.option("--misfire", type=click.Choice(["run_once", "skip"]), default="run_once", show_default=True)
@click.option("--jitter", type=int, default=0, help="Interval schedules: delay each run by up to this many seconds.")
@click.option("--paused", is_flag=True, help="Create it paused.")
def add_command(name, job_name, args, cron, interval, timezone, queue, kwargs, no_overlap, misfire, jitter, paused):
    """Add schedule NAME running JOB_NAME with ARGS (each parsed as JSON when it can be)."""
    job: dict = {"name": job_name, "args": [_value(arg) for arg in args]}
    if kwargs:
        job["kwargs"] = _value(kwargs)
    if queue:
        job["queue"] = queue
    body = {"name": name, "job": job, "cron": cron, "interval": interval, "timezone": timezone,
            "no_overlap": no_overlap, "misfire": misfire, "jitter": jitter, "paused": paused}  # fmt: skip
    try:
        try:
            request = ScheduleCreate.model_validate(body)
        except ValidationError as exc:
            raise failed(exc, "") from None
        view = get_schedules().create(request, OPERATOR)
    except APIError as exc:
        _fail(exc)
    click.echo(f"{view['name']}: {_when(view)}, next run {view['next_run_at'] or '(paused)'}")


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


@schedules_group.command("pause")
@click.argument("name")
def pause_command(name):
    """Pause schedule NAME: no runs until resumed."""
    try:
        get_schedules().pause(name, OPERATOR)
    except APIError as exc:
        _fail(exc)
    click.echo(f"{name}: paused")


@schedules_group.command("resume")
@click.argument("name")
def resume_command(name):
    """Resume schedule NAME from its next tick (missed ticks are not run)."""
    try:
        view = get_schedules().resume(name, OPERATOR)
    except APIError as exc:
        _fail(exc)
    click.echo(f"{name}: resumed, next run {view['next_run_at']}")


@schedules_group.command("run")
@click.argument("name")
def run_command(name):
    """Enqueue one run of schedule NAME now; prints the job id."""
    try:
        started = get_schedules().run_now(name, OPERATOR)
    except APIError as exc:
        _fail(exc)
    click.echo(started["id"])


@schedules_group.command("delete")
@click.argument("name")
@click.confirmation_option(prompt="Delete this schedule and its history (its jobs stay)?")
def delete_command(name):
    """Delete schedule NAME and its history (its jobs stay)."""
    try:
        get_schedules().delete(name, OPERATOR)
    except APIError as exc:
        _fail(exc)
    click.echo(f"{name}: deleted")


@schedules_group.command("sync")
def sync_command():
    """Apply jobs.SCHEDULES now (worker.py does it at start-up); exit 1 if one is invalid."""
    report = get_schedules().sync_declared(getattr(job_functions, "SCHEDULES", {}))
    for kind in ("created", "updated", "deleted", "unchanged"):
        if report[kind]:
            click.echo(f"{kind}: {', '.join(report[kind])}")
    for problem in report["invalid"]:
        click.echo(f"invalid: {problem}", err=True)
    click.echo(f"{sum(len(names) for names in report.values())} declared schedule(s) checked")
    if report["invalid"]:
        raise SystemExit(1)
