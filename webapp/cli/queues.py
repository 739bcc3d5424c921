"""`flask queues ...`: list the queues (depth, oldest wait, paused) and pause or resume one.

The commands go through the same QueueService as the HTTP API (same events), straight to
Redis, with operator rights; `paused_by` records the operator's login. Pause and resume are
written to the audit log like every state-changing command (webapp/cli/audit.py).
"""

from __future__ import annotations

import getpass
import json

import click
from flask import current_app
from flask.cli import AppGroup

from webapp.infra.errors import APIError
from webapp.service.queues import QueueService

queues_group = AppGroup("queues", help="List queues (depth, oldest wait, paused); pause and resume one.")

OPERATOR = None  # the CLI talks to Redis directly, with operator rights


def get_queues() -> QueueService:
    return current_app.extensions["jobsvc_queues"]


def _operator() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _line(view: dict) -> str:
    age = "-" if view["oldest_age"] is None else f"{view['oldest_age']:.1f} s"
    state = f"paused since {view['paused_at']}" + (f" by {view['paused_by']}" if view["paused_by"] else "")
    return f"{view['name']:<16} {view['depth']:>8} {age:>12}  {state if view['paused'] else 'running'}"


@queues_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")
def list_command(as_json):
    """Every queue in priority order: jobs waiting, the wait of the oldest, paused or running."""
    views = get_queues().list()
    if as_json:
        click.echo(json.dumps({"queues": views}, indent=2))
        return
    click.echo(f"{'queue':<16} {'waiting':>8} {'oldest wait':>12}  state")
    for view in views:
        click.echo(_line(view))


def _set(name: str, paused: bool) -> None:
    try:
        changed, view = get_queues().set_paused(OPERATOR, name, paused, by=_operator())
    except APIError as exc:
        raise click.ClickException(exc.message) from None
    verb = "paused" if paused else "resumed"
    click.echo(f"{name} {verb}" if changed else f"{name} was already {'paused' if paused else 'running'}")
    click.echo(_line(view))


@queues_group.command("pause")
@click.argument("name")
def pause_command(name):
    """Pause queue NAME: jobs are still accepted and kept, no worker takes them; running jobs finish."""
    _set(name, True)


@queues_group.command("resume")
@click.argument("name")
def resume_command(name):
    """Resume queue NAME: idle workers start on its jobs at once."""
    _set(name, False)
