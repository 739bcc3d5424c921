"""Command-line tools, as `flask` commands: `flask listen`, `flask jobs ...`, `flask schedules ...`,
`flask queues ...`, `flask audit`, `flask sessions end-all`, `flask settings`. Every state-changing command is
written to the audit log, and every command's Redis trouble is one line that says what to do."""

from __future__ import annotations

from flask import Flask

from webapp.cli.audit import audit_command, audit_commands, read_only, sessions_group
from webapp.cli.errors import explain_redis_errors
from webapp.cli.jobs import jobs_group
from webapp.cli.listen import listen_command
from webapp.cli.queues import queues_group
from webapp.cli.schedules import schedules_group
from webapp.cli.settings import settings_command


def init_app(app: Flask) -> None:
    app.cli.add_command(listen_command)
    app.cli.add_command(jobs_group)
    app.cli.add_command(schedules_group)
    app.cli.add_command(queues_group)
    app.cli.add_command(settings_command)
    app.cli.add_command(audit_command)
    app.cli.add_command(sessions_group)
    read_only(jobs_group.commands["submit"])  # a submission is recorded as its job's `queued` event
    audit_commands(app.cli)  # audits every state-changing command added above
    explain_redis_errors(app.cli)  # keep last: outside the audit, which records a failed run too
