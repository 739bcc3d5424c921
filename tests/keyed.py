"""Helpers for tests of a service with API keys: the keys, an app with them, signing in."""

from __future__ import annotations

import base64
import re

from webapp import create_app

OWNER_KEY, OTHER_KEY, VIEWER_KEY, ADMIN_KEY = "alice-key-1", "bob-key-2", "watch-key-3", "root-key-4"
KEYS = {
    "API_KEYS": f"alice:{OWNER_KEY},bob:{OTHER_KEY}",
    "VIEWER_API_KEYS": f"watch:{VIEWER_KEY}",
    "ADMIN_API_KEYS": f"ops:{ADMIN_KEY}",
}
SAME_SITE = {"Origin": "http://localhost"}


def keyed_app(redis_url: str, **config):
    return create_app(
        {"REDIS_URL": redis_url, "TESTING": True, "RQ_DASHBOARD_PASSWORD": "test-password", **KEYS, **config}
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def sign_in(client, key: str) -> str:
    """Sign `client` in with `key` through the form; returns the page's CSRF token."""
    response = client.post("/signin", data={"key": key, "next": "/jobs"}, headers=SAME_SITE)
    assert response.status_code == 303, response.get_data(as_text=True)
    return csrf_token(client)


def csrf_token(client) -> str:
    html = client.get("/jobs").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]*)">', html).group(1)


# Values for the URL map's variables: enough to route a request to its view.
SAMPLE_ARGUMENTS = {
    "job_id": "0123456789abcdef",
    "queue_name": "default",
    "registry_name": "failed",
    "name": "nightly",
    "instance_number": "0",
    "per_page": "8",
    "order": "asc",
    "page": "1",
    "filename": "x.js",
}


def concrete(rule: str) -> str:
    """`/api/jobs/<job_id>/retry` → `/api/jobs/0123456789abcdef/retry` (any rule, any variable)."""
    return re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", lambda m: SAMPLE_ARGUMENTS.get(m.group(1), "sample"), rule)


def state_changing_rules(app) -> list[tuple[str, str, str]]:
    """Every (method, concrete path, endpoint) of the URL map that can change state."""
    from webapp.web.auth import is_write

    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if is_write(method, rule.endpoint, app):
                found.append((method, concrete(rule.rule), rule.endpoint))
    return found
