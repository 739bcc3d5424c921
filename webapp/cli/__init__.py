"""Command-line tools, as `flask` commands: `flask listen`, `flask jobs ...`, `flask schedules ...`."""

from __future__ import annotations

from flask import Flask

from webapp.cli.jobs import jobs_group
from webapp.cli.listen import listen_command
from webapp.cli.schedules import schedules_group


def init_app(app: Flask) -> None:
    app.cli.add_command(listen_command)
    app.cli.add_command(jobs_group)
    app.cli.add_command(schedules_group)
