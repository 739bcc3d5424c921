"""Console scripts of the installed package (pyproject.toml `[project.scripts]`).

`jobsvc` is the `flask` command with this app preset, so an installed service needs neither
`--app` nor a `.flaskenv` in the current folder: `jobsvc listen`, `jobsvc jobs submit add 2 3`.
`jobsvc-worker` is the Procfile's `python worker.py`, runnable from any folder.
"""

from __future__ import annotations

import sys

from flask.cli import FlaskGroup

from webapp import create_app


def worker() -> None:
    from webapp.worker.main import main

    sys.exit(main(create_app))


cli = FlaskGroup(create_app=create_app, help="The job service's commands (the `flask` CLI with the app preset).")
