"""Browser tests: Debian's Chromium, driven by Playwright, against a real stack.

The stack is the service as users run it: a private redis-server, the web under gunicorn and
`worker.py`, started once for these tests. Chromium is never downloaded: `make test` installs
Debian's package when it is missing (as root); otherwise these tests are skipped, loudly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from tests.servers import RedisServer, start_web, start_worker

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
MISSING_CHROMIUM = (
    f"BROWSER TESTS SKIPPED: no Chromium at {CHROMIUM}. Install Debian's package "
    "(`sudo apt-get install chromium`) or run `make test` as root, which installs it."
)
CREDENTIALS = {"username": "admin", "password": "test-password"}


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    ours = [item for item in items if Path(str(item.fspath)).is_relative_to(here)]
    # Run last: the stack and Chromium they share then stop at once instead of idling beside
    # the rest of the suite.
    items[:] = [item for item in items if item not in ours] + ours
    if not CHROMIUM.exists():
        skip = pytest.mark.skip(reason=MISSING_CHROMIUM)
        for item in ours:
            item.add_marker(skip)


def pytest_report_header(config):
    return None if CHROMIUM.exists() else MISSING_CHROMIUM


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


class Stack:
    """The running service: its base URL, Redis, and the routes this build serves."""

    def __init__(self, base: str, redis: RedisServer, routes: set[tuple[str, str]]):
        self.base = base
        self.redis = redis
        self.routes = routes

    def require(self, method: str, rule: str) -> None:
        """Skip the test when this build does not serve `method rule` (parameter names ignored)."""
        if (method, _shape(rule)) not in self.routes:
            pytest.skip(f"{method} {rule} is not served by this build yet")

    def submit(self, name: str, **kwargs) -> str:
        response = httpx.post(self.base + "/api/jobs", json={"name": name, "kwargs": kwargs}, timeout=10)
        assert response.status_code == 202, response.text
        return response.json()["id"]


def _shape(rule: str) -> str:
    return re.sub(r"<[^>]*>", "<>", rule)


def _served_routes(redis_url: str) -> set[tuple[str, str]]:
    from webapp import create_app

    app = create_app({"REDIS_URL": redis_url, "RQ_DASHBOARD_PASSWORD": "unused"})
    return {(method, _shape(rule.rule)) for rule in app.url_map.iter_rules() for method in rule.methods or ()}


@pytest.fixture(scope="session")
def stack():
    if not CHROMIUM.exists():
        pytest.skip(MISSING_CHROMIUM)
    redis = RedisServer().start()
    web, base = start_web(redis.url)
    worker = start_worker(redis.url, WORKER_PROCESSES="2")
    try:
        yield Stack(base, redis, _served_routes(redis.url))
    finally:
        worker.stop()
        web.stop()
        redis.cleanup()


@pytest.fixture(scope="session")
def base_url(stack):
    return stack.base


@pytest.fixture
def page(context, base_url):
    """A fresh page whose script errors and CSP violations are kept in `page.errors`.

    Failed loads are left out: a route another part of the service adds later (an event
    stream) answers 404 until then, and the page says so in its own words.
    """
    page = context.new_page()
    page.errors = []

    def on_console(message):
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            page.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    page.close()
