"""The web UI with API keys set, in a real browser: sign-in per role, what each role sees and may
do, the dashboard for admins, sign-out, a cross-site request refused, the audit log naming every
action, and the overview charts showing the run's jobs before and after a web restart.

Its own stack (Redis, gunicorn, worker.py) with owner, viewer and admin keys; the cookies of a
browser context are per host, not per port, so a context keeps its session across the restart.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import CHROMIUM, MISSING_CHROMIUM
from tests.browser.helpers import LIVE, screenshot
from tests.keyed import ADMIN_KEY, KEYS, OTHER_KEY, OWNER_KEY, VIEWER_KEY, bearer
from tests.servers import RedisServer, free_port, start_web, start_worker

STACK_ENV = {**KEYS, "STATS_SAMPLE_INTERVAL": "1", "WEB_CONCURRENCY": "1"}


class KeyedStack:
    def __init__(self):
        self.redis = RedisServer().start()
        self.web, self.base = start_web(self.redis.url, **STACK_ENV)
        self.worker = start_worker(self.redis.url, WORKER_PROCESSES="1", STATS_SAMPLE_INTERVAL="1")
        self.expected: list[tuple[str, str, str | None]] = []

    def restart_web(self) -> None:
        self.web.stop()
        self.web, self.base = start_web(self.redis.url, **STACK_ENV)

    def submit(self, key: str, name: str, **kwargs) -> str:
        response = httpx.post(self.base + "/api/jobs", json={"name": name, "kwargs": kwargs}, headers=bearer(key))
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def wait_for(self, job_id: str, status: str) -> None:
        deadline = time.monotonic() + LIVE / 1000
        while time.monotonic() < deadline:
            if httpx.get(f"{self.base}/api/jobs/{job_id}", headers=bearer(ADMIN_KEY)).json()["status"] == status:
                return
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not become {status}")

    def expect_audited(self, action: str, actor: str, target: str | None = None) -> None:
        """Note an action this module did, for the last test to find in the audit page."""
        self.expected.append((action, actor, target))

    def audit(self, **filters) -> list[dict]:
        response = httpx.get(self.base + "/api/audit", params={"limit": 200, **filters}, headers=bearer(ADMIN_KEY))
        assert response.status_code == 200, response.text
        return response.json()["entries"]

    def stop(self) -> None:
        self.worker.stop()
        self.web.stop()
        self.redis.cleanup()


@pytest.fixture(scope="module")
def keyed():
    if not CHROMIUM.exists():
        pytest.skip(MISSING_CHROMIUM)
    stack = KeyedStack()
    yield stack
    stack.stop()


def signed_in(browser, keyed, key: str, start: str = "/jobs"):
    """A new browser context signed in with `key` through the sign-in form; its page."""
    context = browser.new_context()
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(keyed.base + start)
    page.wait_for_url(re.compile(r"/signin\?next="))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    if key == OWNER_KEY:
        screenshot(page, "signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(start) + "$"))
    return context, page


def test_an_owner_sees_only_its_jobs_submits_follows_and_cancels(browser, keyed):
    theirs = keyed.submit(OTHER_KEY, "add", a=5, b=5)
    earlier = keyed.submit(OWNER_KEY, "add", a=1, b=1)
    context, page = signed_in(browser, keyed, OWNER_KEY)
    expect(page.locator("#signed-in-as")).to_contain_text("alice")
    expect(page.locator(f'tr[data-job="{earlier}"]')).to_be_visible(timeout=LIVE)
    expect(page.locator(f'tr[data-job="{theirs}"]')).to_have_count(0)
    screenshot(page, "signed-in-owner-jobs")
    assert page.goto(keyed.base + f"/jobs/{theirs}").status == 404

    page.goto(keyed.base + "/")
    form = page.locator('form[data-job="sleep"]')
    form.get_by_label("Seconds").fill("30")
    form.get_by_role("button", name="Run sleep").click()
    page.wait_for_url(re.compile(r"/jobs/[A-Za-z0-9_-]+$"))
    job_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#status")).to_have_text("started", timeout=LIVE)  # followed live
    expect(page.locator("#live-state")).to_have_text("live", timeout=LIVE)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#status")).to_have_text(re.compile("stopped|canceled"), timeout=LIVE)
    screenshot(page, "signed-in-owner-canceled")
    assert page.errors == []
    context.close()

    [cancel] = keyed.audit(action="cancelJob", target=job_id)
    assert (cancel["actor"], cancel["role"], cancel["via"], cancel["status"]) == ("alice", "owner", "session", 202)
    keyed.expect_audited("signIn", "alice")
    keyed.expect_audited("cancelJob", "alice", job_id)


def test_a_viewer_finds_no_write_buttons_and_a_forced_write_is_refused(browser, keyed):
    failed = keyed.submit(OWNER_KEY, "fail", message="for the viewer")
    context, page = signed_in(browser, keyed, VIEWER_KEY)
    expect(page.locator(f'tr[data-job="{failed}"]')).to_be_visible(timeout=LIVE)  # viewers see every job
    page.goto(keyed.base + "/")
    expect(page.locator("#read-only-note")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Run "))).to_have_count(0)
    expect(page.get_by_role("button", name="Producer/consumer")).to_be_hidden()
    page.goto(keyed.base + f"/jobs/{failed}")
    expect(page.locator("#status")).to_have_text("failed", timeout=LIVE)
    expect(page.locator("#retry")).to_be_hidden()
    expect(page.locator("#cancel")).to_be_hidden()
    screenshot(page, "signed-in-viewer-job")
    forced = page.evaluate(
        """async (id) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const response = await fetch('/api/jobs/' + id + '/retry', {method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token}, body: '{}'});
            return {status: response.status, body: await response.json()};
        }""",
        failed,
    )
    assert forced["status"] == 403 and forced["body"]["error"]["code"] == "forbidden", forced
    expect(page.locator("#status")).to_have_text("failed")
    context.close()
    [refused] = keyed.audit(action="retryJob", target=failed)
    assert (refused["actor"], refused["role"], refused["status"], refused["ok"]) == ("watch", "viewer", 403, False)
    keyed.expect_audited("signIn", "watch")
    keyed.expect_audited("retryJob", "watch", failed)


def test_an_admin_opens_the_dashboard_without_a_second_prompt_and_its_actions_are_audited(browser, keyed):
    failed = keyed.submit(OWNER_KEY, "fail", message="requeue me from the dashboard")
    context, page = signed_in(browser, keyed, ADMIN_KEY)
    expect(page.get_by_role("link", name="Audit")).to_be_visible()
    response = page.goto(keyed.base + "/rq/")  # no http_credentials in this context: a prompt would fail it
    assert response.status == 200
    expect(page.locator("#queues tr[data-role=queue] td:first-child").filter(has_text="default")).to_have_count(
        1, timeout=LIVE
    )
    screenshot(page, "signed-in-admin-dashboard")
    keyed.wait_for(failed, "failed")
    # The dashboard's own way to act: a POST with the X-CSRFToken header its script copies from its cookie.
    status = page.evaluate(
        """async (id) => {
            const token = document.cookie.split('; ').find(c => c.startsWith('_csrf_token=')).split('=')[1];
            return (await fetch('/rq/job/' + id + '/requeue', {method: 'POST', headers: {'X-CSRFToken': token}}))
                .status;
        }""",
        failed,
    )
    assert status == 200
    [requeued] = keyed.audit(action="dashboard.requeue_job", target=failed)
    assert (requeued["actor"], requeued["role"], requeued["via"]) == ("ops", "admin", "session")

    keyed.expect_audited("dashboard.requeue_job", "ops", failed)
    assert page.errors == []
    context.close()


def test_after_sign_out_the_ui_and_the_api_refuse(browser, keyed):
    context, page = signed_in(browser, keyed, OWNER_KEY)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/signin$"))
    page.goto(keyed.base + "/jobs")
    page.wait_for_url(re.compile(r"/signin\?next="))
    status = page.evaluate("async () => (await fetch('/api/jobs')).status")
    assert status == 401
    context.close()
    keyed.expect_audited("signOut", "alice")


def test_a_cross_site_post_with_a_valid_session_cookie_is_refused(browser, keyed):
    """A page of another origin on the same host: SameSite=Lax lets the browser send the cookie
    along (same site), so the server's own checks must refuse it, and do."""
    failed = keyed.submit(OWNER_KEY, "fail", message="not to be retried by another site")
    context, page = signed_in(browser, keyed, OWNER_KEY)
    page.goto(keyed.base + f"/jobs/{failed}")
    expect(page.locator("#status")).to_have_text("failed", timeout=LIVE)
    with another_site() as evil:
        page.goto(evil + "/page")
        run_cross_site_requests(page, keyed, failed)
    context.close()
    response = httpx.get(f"{keyed.base}/api/jobs/{failed}", headers=bearer(OWNER_KEY))
    assert response.json()["status"] == "failed"  # not retried
    refused = [entry for entry in keyed.audit(actor="alice") if entry["status"] == 403]
    assert {entry["action"] for entry in refused} >= {"retryJob", "pages.pubsub_post"}, refused
    keyed.expect_audited("retryJob", "alice", failed)
    keyed.expect_audited("pages.pubsub_post", "alice")


def run_cross_site_requests(page, keyed, failed: str) -> None:
    """From the other site's page: a fetch with credentials, then a plain form post."""
    page.evaluate(
        """async (target) => {
            try {  // the request is sent; its answer is withheld from this page (CORP: same-origin)
                await fetch(target.url, {method: 'POST', mode: 'no-cors', credentials: 'include',
                                         headers: {'Content-Type': 'text/plain'}, body: '{}'});
            } catch (e) {}
            const form = document.createElement('form');
            form.method = 'POST'; form.action = target.demo;
            document.body.appendChild(form);
        }""",
        {"url": f"{keyed.base}/api/jobs/{failed}/retry", "demo": f"{keyed.base}/pubsub"},
    )
    with page.expect_navigation():
        page.evaluate("document.forms[0].submit()")
    assert "cross_site_request" in page.content()


@contextmanager
def another_site():
    """A plain web server on another port of this host: another origin, the same site."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>elsewhere</title><h1>another site</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_overview_charts_show_the_run_and_survive_a_web_restart(browser, keyed):
    for number in range(6):
        keyed.submit(OWNER_KEY, "add", a=number, b=1)
    keyed.submit(OWNER_KEY, "fail", message="counted as failed")
    context, page = signed_in(browser, keyed, VIEWER_KEY, start="/overview")
    expect(page.locator("#live-state")).to_have_text("live", timeout=LIVE)
    # Every job this module ran is counted: finished ones and failed ones.
    page.wait_for_function(
        "() => Number(document.getElementById('total-finished').textContent) >= 7"
        " && Number(document.getElementById('total-failed').textContent) >= 3",
        timeout=LIVE,
    )
    expect(page.locator("#chart-throughput svg rect.bar.s-finished").first).to_be_attached()
    expect(page.locator("#chart-workers svg circle.dot").first).to_be_attached(timeout=LIVE)
    expect(page.locator("#now-workers")).to_have_text("1", timeout=LIVE)
    before = httpx.get(keyed.base + "/api/stats", headers=bearer(VIEWER_KEY)).json()
    finished = sum(point["finished"] for point in before["points"])
    failed = sum(point["failed"] for point in before["points"])
    screenshot(page, "overview")
    page.goto(keyed.base + "/overview?window=1d")
    expect(page.locator(".step-name").first).to_have_text("per 10 minutes", timeout=LIVE)
    screenshot(page, "overview-day")
    assert page.errors == []

    keyed.restart_web()
    page.goto(keyed.base + "/overview")  # the same session cookie: it survives the restart too
    expect(page.locator("#signed-in-as")).to_contain_text("watch")
    expect(page.locator("#total-finished")).to_have_text(str(finished), timeout=LIVE)
    expect(page.locator("#total-failed")).to_have_text(str(failed))
    after = httpx.get(keyed.base + "/api/stats", headers=bearer(VIEWER_KEY)).json()
    assert sum(point["finished"] for point in after["points"]) == finished
    context.close()


def test_the_audit_page_shows_each_action_of_these_tests_with_its_key_name(browser, keyed):
    """Runs last: every action the tests above took is a row naming the right key."""
    if not keyed.expected:
        pytest.skip("run with the tests above: it checks their actions")
    context, page = signed_in(browser, keyed, ADMIN_KEY, start="/audit")
    rows = page.locator("#audit-body tr[data-action]")
    expect(rows.first).to_be_visible(timeout=LIVE)
    for action, actor, target in keyed.expected:
        row = page.locator(f'#audit-body tr[data-action="{action}"][data-actor="{actor}"]')
        if target is not None:
            row = row.filter(has=page.locator(f'a[title="{target}"]'))
        expect(row.first, f"audit row: {action} by {actor} on {target}").to_be_visible()
    screenshot(page, "audit")
    assert page.errors == []
    context.close()
