"""Command-line tools, as `flask` commands: `flask listen`, `flask jobs ...` and `flask settings`."""

from __future__ import annotations

from flask import Flask

from webapp.cli.jobs import jobs_group
from webapp.cli.listen import listen_command
from webapp.cli.settings import settings_command


def init_app(app: Flask) -> None:
    app.cli.add_command(listen_command)
    app.cli.add_command(jobs_group)
    app.cli.add_command(settings_command)
