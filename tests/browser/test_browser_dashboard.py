"""The dashboard in a real browser: credentials, queues after login, and a stored XSS that stays inert.

The XSS payload is put where rq-dashboard 0.9 renders job data without escaping (a job's
description/arguments, its result, its exception text): enqueued directly with RQ, as any
producer could. It must not run on the dashboard's pages nor on this service's own pages.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect
from rq import Queue
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer

from tests.browser.conftest import CREDENTIALS
from tests.browser.helpers import LIVE, screenshot

PAYLOAD = (
    "<script>window.__xss = 1; document.title = 'pwned';</script>"
    "<img src=x onerror=\"window.__xss = 1; document.title = 'pwned'\">"
)


def test_dashboard_refuses_the_browser_without_credentials(browser, stack):
    context = browser.new_context(base_url=stack.base)
    page = context.new_page()
    # Headless Chromium has no prompt to show, so the navigation fails after the challenge.
    with page.expect_response("**/rq/") as answer:
        with pytest.raises(PlaywrightError, match="INVALID_AUTH_CREDENTIALS"):
            page.goto("/rq/")
    response = answer.value
    assert response.status == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    context.close()


def test_dashboard_shows_the_queues_after_login(browser, stack):
    stack.submit("add", a=1, b=2)
    context = browser.new_context(base_url=stack.base, http_credentials=CREDENTIALS)
    page = context.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    response = page.goto("/rq/")
    assert response.status == 200
    assert "'unsafe-inline'" not in response.headers["content-security-policy"].split("script-src")[1].split(";")[0]
    queue_names = page.locator("#queues tr[data-role=queue] td:first-child")
    expect(queue_names.filter(has_text="default")).to_have_count(1, timeout=LIVE)
    page.goto("/rq/0/view/workers")
    expect(page.locator("#workers tbody tr").filter(has_text="default").first).to_be_visible(timeout=LIVE)
    screenshot(page, "dashboard-workers")
    page.goto("/rq/")
    expect(queue_names.filter(has_text="default")).to_have_count(1, timeout=LIVE)
    screenshot(page, "dashboard")
    # The dashboard's own scripts all ran under the policy: nothing was blocked, nothing threw.
    assert problems == []
    context.close()


@pytest.fixture
def xss_jobs(stack):
    """Three jobs carrying the payload: queued (args), finished (result), failed (error)."""
    connection = stack.redis.client()
    parked = Queue("xss", connection=connection, serializer=JSONSerializer)  # no worker reads it
    queued = parked.enqueue_call("jobs.basic.fail", kwargs={"message": PAYLOAD}, description=PAYLOAD)
    finished = parked.enqueue_call("jobs.basic.add", args=[PAYLOAD, PAYLOAD], description=PAYLOAD)
    # Finish it by hand, the way a worker records a result, with the payload as return value.
    parked.remove(finished.id)
    finished.set_status(JobStatus.FINISHED)
    finished.ended_at = datetime.now(UTC)
    finished.save()
    Result.create(finished, Result.Type.SUCCESSFUL, ttl=600, return_value=PAYLOAD)
    FinishedJobRegistry("xss", connection=connection).add(finished, 600)
    failed_id = stack.submit("fail", message=PAYLOAD)
    with httpx.Client(base_url=stack.base, timeout=5) as client:
        expect_status(client, failed_id, "failed")
    yield {"queued": queued.id, "finished": finished.id, "failed": failed_id}
    connection.close()


def expect_status(client: httpx.Client, job_id: str, status: str) -> None:
    import time

    deadline = time.monotonic() + LIVE / 1000
    while client.get(f"/api/jobs/{job_id}").json().get("status") != status:
        assert time.monotonic() < deadline, f"job {job_id} never became {status}"
        time.sleep(0.1)


def assert_inert(page, blocked: list[str]) -> None:
    page.wait_for_timeout(300)  # give an injected handler its chance to fire
    assert page.evaluate("window.__xss") is None
    assert page.title() != "pwned"


def test_stored_xss_does_not_run_on_the_dashboard(browser, stack, xss_jobs):
    context = browser.new_context(base_url=stack.base, http_credentials=CREDENTIALS)
    page = context.new_page()
    blocked = []
    page.on("console", lambda m: "Content Security Policy" in m.text and blocked.append(m.text))
    pages = [
        "/rq/0/view/jobs/xss/queued/8/asc/1",
        "/rq/0/view/jobs/xss/finished/8/asc/1",
        "/rq/0/view/jobs/default/failed/8/asc/1",
        *(f"/rq/0/view/job/{job_id}" for job_id in xss_jobs.values()),
    ]
    for path in pages:
        page.goto(path)
        page.wait_for_load_state("load")
        page.wait_for_function("() => window.jQuery && jQuery.active === 0", timeout=LIVE)
        assert_inert(page, blocked)
    # The payload did reach the page as markup (so the test tests something) and was blocked.
    page.goto(f"/rq/0/view/job/{xss_jobs['finished']}")
    expect(page.locator(".description-scroll img")).to_have_count(1, timeout=LIVE)
    assert_inert(page, blocked)
    assert blocked, "the injected handler should have been refused by the Content-Security-Policy"
    screenshot(page, "dashboard-xss-job")
    context.close()


def test_stored_xss_is_shown_as_text_on_the_service_pages(page, stack, xss_jobs):
    page.goto(f"/jobs/{xss_jobs['finished']}")
    expect(page.locator("#result")).to_contain_text("<script>window.__xss = 1;", timeout=LIVE)
    assert page.locator("#result img, #result script").count() == 0
    expect(page.locator("#description")).to_contain_text("<img src=x onerror=")  # the description too
    assert page.locator("#description img").count() == 0
    assert_inert(page, [])
    page.goto(f"/jobs/{xss_jobs['failed']}")
    expect(page.locator("#error-message")).to_contain_text("<img src=x onerror=", timeout=LIVE)
    assert page.locator("#error-box img, #error-box script").count() == 0
    assert_inert(page, [])
    page.goto("/jobs")
    page.wait_for_timeout(500)
    assert_inert(page, [])


@pytest.fixture
def parked_failed_job(stack):
    """A failed job of a queue no worker reads, so a requeue leaves it waiting where we can see it."""
    connection = stack.redis.client()
    queue = Queue("parked", connection=connection, serializer=JSONSerializer)
    job = queue.enqueue_call("jobs.basic.add", args=[1, 2])
    queue.remove(job.id)
    job.set_status(JobStatus.FAILED)
    FailedJobRegistry("parked", connection=connection, serializer=JSONSerializer).add(job, 600, exc_string="boom")
    yield connection
    connection.delete("rq:queue:parked")
    connection.close()


def test_dashboard_actions_still_work_from_its_own_pages(browser, stack, parked_failed_job):
    context = browser.new_context(base_url=stack.base, http_credentials=CREDENTIALS)
    page = context.new_page()
    page.goto("/rq/0/view/jobs/parked/failed/8/asc/1")
    page.wait_for_function("() => window.jQuery && jQuery.active === 0", timeout=LIVE)
    page.locator("#requeue-all-btn").click()
    with page.expect_response("**/rq/requeue/parked") as answer:
        page.locator("#confirmation-modal-yes").click()
    response = answer.value
    assert response.status == 200
    assert response.request.headers.get("x-csrftoken")  # the dashboard's script sent the cookie back
    assert parked_failed_job.llen("rq:queue:parked") == 1
    context.close()


def test_a_cross_site_page_cannot_make_the_dashboard_act(browser, stack, parked_failed_job):
    # The browser holds the dashboard credentials, as an operator's would; another site's page
    # posts a form to the dashboard's requeue action.
    context = browser.new_context(http_credentials=CREDENTIALS)
    page = context.new_page()
    attack = (
        f'<form id="f" method="post" action="{stack.base}/rq/requeue/parked"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    page.route("http://attacker.test/", lambda route: route.fulfill(body=attack, content_type="text/html"))
    with page.expect_response(f"{stack.base}/rq/requeue/parked") as answer:
        page.goto("http://attacker.test/")
    assert answer.value.status == 403
    assert parked_failed_job.llen("rq:queue:parked") == 0
    context.close()
