"""`flask audit`: read the audit log; and every state-changing `flask` command is written to it.

`audit_commands(app.cli)` wraps each command registered by then (call it last in
`webapp.cli.init_app`), so a group added later (`flask schedules pause`, `flask queues
pause`...) is recorded without a line of its own: actor = the operator's login, via = cli,
client = the host, target = the command's arguments, status = its exit status. Read-only
commands are left out: those marked `read_only(...)`, and by convention the subcommands named
list, show, status, get, watch, tail or listen.
"""

from __future__ import annotations

import functools
import getpass
import json
import socket
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from redis.exceptions import RedisError

from webapp.store import sessions
from webapp.store.audit import AuditLog

AUDIT_OUTCOME = "jobsvc.audit_outcome"  # a command puts what it did in its context's meta under this key
READ_ONLY_NAMES = frozenset({"list", "show", "status", "get", "watch", "tail", "listen"})


def read_only(command: click.Command) -> click.Command:
    """Mark a command that changes nothing (or records itself elsewhere): not audited."""
    command.read_only = True
    return command


def _audit_log() -> AuditLog:
    return AuditLog.from_config(current_app.extensions["redis"], current_app.config)


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _audited(command: click.Command, action: str) -> None:
    """Record every run of `command` (its arguments and exit status) after it ends."""
    run = command.callback
    if run is None or getattr(run, "audited", False):
        return

    @functools.wraps(run)
    def recorded(*args, **kwargs):
        status = 1
        try:
            result = run(*args, **kwargs)
            status = 0
            return result
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            raise
        finally:
            target = {name: str(value) for name, value in kwargs.items() if value not in (None, (), False)}
            context = click.get_current_context(silent=True)
            outcome = context.meta.get(AUDIT_OUTCOME) if context is not None else None
            try:
                _audit_log().record(actor=_operator(), role="operator", via="cli", action=action, target=target,
                                    details={"outcome": outcome} if outcome else None, status=status,
                                    client=socket.gethostname())  # fmt: skip
            except RedisError as exc:
                click.echo(f"warning: the audit log is unavailable, this action was not recorded ({exc})", err=True)

    recorded.audited = True
    command.callback = recorded


def audit_commands(group: click.Group, prefix: str = "") -> None:
    """Wrap every state-changing command under `group` (recursively) so its runs are audited."""
    for name, command in group.commands.items():
        action = f"{prefix}{name}"
        if getattr(command, "read_only", False):
            continue
        if isinstance(command, click.Group):
            audit_commands(command, action + " ")
        elif name not in READ_ONLY_NAMES:
            _audited(command, action)


def _print(entry: dict) -> None:
    who = entry["actor"] or "(open API)"
    target = " ".join(f"{key}={value}" for key, value in {**entry["target"], **entry["details"]}.items())
    mark = "ok " if entry["ok"] else "NO "
    line = f"{entry['at']}  {mark}{entry['status']:<3} {who} ({entry['role']}, {entry['via']})  {entry['action']}"
    click.echo(f"{line}  {target}  from {entry['client'] or '?'}".rstrip())


@click.command("audit")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Entries to show.")
@click.option("--actor", default=None, help="Only actions of this key name (or user).")
@click.option("--action", default=None, help="Only this action, e.g. cancelJob or 'jobs cancel'.")
@click.option("--target", default=None, help="Only actions whose target or details contain this (a job id...).")
@click.option("--since", type=click.DateTime(), default=None, help="Only actions at or after this time (UTC).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def audit_command(limit, actor, action, target, since, as_json):
    """Show the audit log, newest first: who changed what, when, from where, and the outcome."""
    since = since.replace(tzinfo=UTC) if since is not None else None
    cursor, shown = None, 0
    log = _audit_log()
    while shown < limit:
        page = log.page(limit=min(200, limit - shown), cursor=cursor, actor=actor, action=action, target=target,
                        since=since)  # fmt: skip
        for entry in page["entries"]:
            if as_json:
                click.echo(json.dumps(entry))
            else:
                _print(entry)
        shown += len(page["entries"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    if shown == 0 and not as_json:
        click.echo("no audit entries match", err=True)


read_only(audit_command)

sessions_group = AppGroup("sessions", help="Web UI sign-in sessions.")


@sessions_group.command("end-all")
def end_all_command():
    """Sign everyone out of the web UI (replaces the shared session secret; not with SECRET_KEY set)."""
    if not current_app.config.get("SECRET_KEY_GENERATED"):
        raise click.ClickException("SECRET_KEY is configured: change it on every web machine to end all sessions")
    sessions.forget_secret(current_app.extensions["redis"])
    click.echo(f"every session ended at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC (web processes notice within 30 s)")
