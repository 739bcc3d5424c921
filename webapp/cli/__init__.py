"""Command-line tools, as `flask` commands: `flask listen` and `flask jobs ...`."""

from __future__ import annotations

from flask import Flask

from webapp.cli.jobs import jobs_group
from webapp.cli.listen import listen_command


def init_app(app: Flask) -> None:
    app.cli.add_command(listen_command)
    app.cli.add_command(jobs_group)
