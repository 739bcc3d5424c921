"""Who sees which limit keys (`GET /api/limits`).

Admin and viewer keys (and the open API) see every active key. An owner key sees its own keys
(`<key name>/<key>`: a key given in a submission belongs to the submitting API key) and the
keys of the catalog's job-type defaults, which are shared by everyone and named by the operator.
"""

from __future__ import annotations

from typing import Any

from redis import Redis

from webapp.service.access import Caller
from webapp.service.catalog import Catalog
from webapp.store import limits


def shared_keys(catalog: Catalog) -> set[str]:
    """The fixed keys of the job types' default limits (jobs.DEFAULT_OPTIONS)."""
    return {
        job_type.options["limit"]["key"]
        for job_type in catalog.values()
        if isinstance(job_type.options.get("limit"), dict) and "key" in job_type.options["limit"]
    }


def visible(connection: Redis, caller: Caller, catalog: Catalog) -> list[dict[str, Any]]:
    """The active limit keys the caller may see, with their counts."""
    views = limits.read(connection)
    if caller is None or caller.sees_all:
        return views
    own, shared = f"{caller.name}/", shared_keys(catalog)
    return [view for view in views if view["key"].startswith(own) or view["key"] in shared]
