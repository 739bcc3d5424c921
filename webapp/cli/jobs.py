"""`flask jobs ...`: submit, watch, list, cancel and retry jobs from a terminal; bulk actions on a filter.

The commands go through the same JobService as the HTTP API (same validation, same limits),
straight to Redis, with operator rights: they see every job, whoever submitted it.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

import click
from flask import current_app
from flask.cli import AppGroup

from webapp.cli.audit import AUDIT_OUTCOME
from webapp.cli.queues import _operator as operator_login
from webapp.infra.errors import APIError
from webapp.service.bulk import ACTIONS, BulkFilter, BulkRunner
from webapp.service.jobservice import JobService
from webapp.store.states import STATUSES, TERMINAL

jobs_group = AppGroup("jobs", help="Submit, inspect, cancel and retry jobs.")

OPERATOR = None  # the CLI talks to Redis directly, with operator rights: it sees every job


def get_service() -> JobService:
    return current_app.extensions["jobsvc"]


def _value(text: str):
    """A command-line argument as JSON when it parses (`2`, `true`, `[1]`), else as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _fail(exc: APIError) -> None:
    raise click.ClickException(exc.message)


@jobs_group.command("submit")
@click.argument("name")
@click.argument("args", nargs=-1)
@click.option("--kwarg", "kwargs", multiple=True, metavar="KEY=VALUE", help="A keyword argument (repeatable).")
@click.option("--queue", default=None, help="high, default or low.")
@click.option("--wait", is_flag=True, help="Wait for the job to end, with a progress bar.")
@click.option("--wait-timeout", type=float, default=600.0, show_default=True, help="Give up waiting after this.")
def submit_command(name, args, kwargs, queue, wait, wait_timeout):
    """Submit job NAME with ARGS (each parsed as JSON when it can be, else a string)."""
    keyword = {}
    for item in kwargs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: use KEY=VALUE", param_hint="--kwarg")
        keyword[key] = _value(value)
    service = get_service()
    try:
        job = service.submit(OPERATOR, name, [_value(arg) for arg in args], keyword, queue)
    except APIError as exc:
        _fail(exc)
    job_id = job["id"]
    click.echo(job_id)
    if wait:
        view = _wait(service, job_id, wait_timeout)
        _print_outcome(view)
        if view["status"] != "finished":
            sys.exit(1)


def _wait(service, job_id: str, timeout: float) -> dict:
    """Poll until the job ends: a progress bar on a terminal, a line per change otherwise."""
    stream = sys.stderr
    if stream.isatty():
        with click.progressbar(length=100, label=f"job {job_id[:8]}", file=stream) as bar:
            return _poll(service, job_id, timeout, lambda done, view: bar.update(done - bar.pos))

    def line(done: int, view: dict) -> None:
        message = (view.get("progress") or {}).get("message") or ""
        click.echo(f"{view['status']:<9} {done:3d}% {message}".rstrip(), err=True)

    return _poll(service, job_id, timeout, line)


def _poll(service, job_id: str, timeout: float, show) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while True:
        view = service.describe(job_id, OPERATOR)
        percent = 100 if view["status"] == "finished" else int((view.get("progress") or {}).get("percent") or 0)
        if (percent, view["status"]) != last:
            show(percent, view)
            last = (percent, view["status"])
        if view["status"] in TERMINAL:
            return view
        if time.monotonic() > deadline:
            raise click.ClickException(f"job {job_id} is still {view['status']} after {timeout:g} s")
        time.sleep(0.1)


def _print_outcome(view: dict) -> None:
    if view["status"] == "finished":
        click.echo(json.dumps(view["result"]))
    else:
        error = view.get("error") or {}
        click.echo(f"{view['status']}: {error.get('type', '')}: {error.get('message', '')}".rstrip(": "), err=True)


@jobs_group.command("status")
@click.argument("job_id")
def status_command(job_id):
    """Print the job's JSON view (status, result, error, progress, times)."""
    try:
        click.echo(json.dumps(get_service().describe(job_id, OPERATOR), indent=2))
    except APIError as exc:
        _fail(exc)


@jobs_group.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Per queue and state.")
def list_command(limit):
    """Recent job ids per queue and state, from RQ's queues and registries."""
    for job_id, queue, state in get_service().recent_ids(limit):
        click.echo(f"{job_id}  {queue:<8} {state}")


@jobs_group.command("cancel")
@click.argument("job_id")
def cancel_command(job_id):
    """Cancel a waiting job, or stop a running one."""
    try:
        view, stopping = get_service().cancel(job_id, OPERATOR)
    except APIError as exc:
        _fail(exc)
    click.echo(f"{job_id} {'stop requested' if stopping else view['status']}")


@jobs_group.command("retry")
@click.argument("job_id")
def retry_command(job_id):
    """Requeue a failed, stopped or canceled job."""
    try:
        view = get_service().retry(job_id, OPERATOR)
    except APIError as exc:
        _fail(exc)
    click.echo(f"{job_id} {view['status']}")


@jobs_group.command("bulk")
@click.argument("action", type=click.Choice(ACTIONS))
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only jobs in this state.")
@click.option("--queue", default=None, help="Only jobs of this queue.")
@click.option("--name", default=None, help="Only jobs of this type.")
@click.option("--schedule", default=None, help="Only jobs made by this periodic schedule.")
@click.option("--dry-run", is_flag=True, help="Count only: change nothing.")
def bulk_command(action, status, queue, name, schedule, dry_run):
    """Retry, cancel or delete every job matching the filters, printing progress per page."""
    config = current_app.config
    runner = BulkRunner(get_service(), page_size=config["BULK_PAGE_SIZE"], time_budget=config["BULK_TIME_BUDGET"])
    wanted = BulkFilter(status=status, queue=queue, name=name, schedule=schedule)
    verb = {"retry": "retried", "cancel": "canceled", "delete": "deleted"}[action]
    if dry_run:
        verb = f"would be {verb}"
    totals = Counter()
    started = time.monotonic()

    def progress(outcome) -> None:
        seen = {"matched": totals["matched"] + outcome.matched, "eligible": totals["eligible"] + outcome.eligible,
                "done": totals["done"] + outcome.done}  # fmt: skip
        done = seen["eligible"] if dry_run else seen["done"]
        click.echo(f"{seen['matched']} matched, {done} {verb} ({time.monotonic() - started:.1f} s)", err=True)

    cursor = None
    skipped = Counter()
    while True:
        try:
            outcome = runner.run(OPERATOR, action, wanted, dry_run=dry_run, cursor=cursor, on_page=progress,
                                 by=operator_login())  # fmt: skip
        except APIError as exc:
            _fail(exc)
        totals.update(matched=outcome.matched, eligible=outcome.eligible, done=outcome.done)
        skipped.update(outcome.skipped)
        cursor = outcome.next_cursor
        if cursor is None:
            break
    done = totals["eligible"] if dry_run else totals["done"]
    click.echo(f"{totals['matched']} matched, {done} {verb}")
    for (reason, state), count in sorted(skipped.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        why = f"status {state}" if reason == "status" else "changed meanwhile"
        click.echo(f"  skipped {count}: {why}")
    click.get_current_context().meta[AUDIT_OUTCOME] = {"matched": totals["matched"], "eligible": totals["eligible"],
                                                      "done": totals["done"]}  # fmt: skip
