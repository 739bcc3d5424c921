"""URL converters: a job id in a path is checked by the router itself.

`<job_id:job_id>` matches what a job id can be (store/jobreads.py `JOB_ID_PATTERN`) except the
words `batch` and `bulk`, so `/api/jobs/batch` and `/api/jobs/bulk` are only their POST routes:
GET or DELETE on them is a 405 that names POST, not a lookup of a job called "batch". Anything
else is a 404 before any view runs.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import BaseConverter

# The characters of a job id (store/jobreads.py), minus the batch and bulk routes' own segments.
JOB_ID_REGEX = r"(?!(?:batch|bulk)(?:/|$))[A-Za-z0-9_-]{1,128}"
JOB_ID_SCHEMA_PATTERN = r"^(?!(?:batch|bulk)$)[A-Za-z0-9_-]{1,128}$"


class JobIdConverter(BaseConverter):
    regex = JOB_ID_REGEX


def init_app(app: Flask) -> None:
    app.url_map.converters["job_id"] = JobIdConverter
