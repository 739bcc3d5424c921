"""The UI in a real browser: forms, live job pages, the live list, the demos, phone width."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.browser.helpers import LIVE, screenshot


def test_home_lists_the_catalog_with_typed_labelled_inputs(page, stack):
    page.goto("/")
    expect(page.get_by_role("heading", name="Run a job")).to_be_visible()
    seconds = page.get_by_label("Seconds")
    expect(seconds).to_have_attribute("type", "number")
    expect(seconds).to_have_attribute("min", "0")
    expect(seconds).to_have_attribute("max", "3600")
    expect(seconds).to_have_value("5.0")
    expect(page.locator("#f-add-a")).to_have_attribute("step", "1")
    expect(page.locator("#f-fail-message")).to_have_value("this job fails on purpose")
    for link in ("/healthz", "/api/functions", "/rq", "/prodcons", "/pubsub"):
        assert page.locator(f'a[href^="{link}"]').count() >= 1, link
    screenshot(page, "home")
    assert page.errors == []


def test_api_validation_messages_appear_next_to_their_fields(page, stack):
    page.goto("/")
    form = page.locator('form[data-job="add"]')
    form.get_by_label("A").fill("1.5")
    form.get_by_role("button", name="Run add").click()
    expect(form.locator('[data-field="a"] .field-error')).to_contain_text(re.compile("integer", re.I))
    expect(form.locator('[data-field="b"] .field-error')).to_contain_text(re.compile("required", re.I))
    expect(form.get_by_label("A")).to_have_attribute("aria-invalid", "true")
    assert page.url.rstrip("/") == stack.base  # no navigation on a refused submission


def test_the_form_works_from_the_keyboard_alone(page, stack):
    page.goto("/")
    page.locator("#f-add-a").focus()
    page.keyboard.type("2")
    page.keyboard.press("Tab")
    expect(page.locator("#f-add-b")).to_be_focused()
    page.keyboard.type("40")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/jobs/[A-Za-z0-9_-]+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("add")


def test_sleep_from_the_form_moves_the_progress_bar_and_shows_the_result_live(page, stack):
    stack.require("GET", "/api/jobs/<id>/events")
    page.goto("/")
    form = page.locator('form[data-job="sleep"]')
    form.get_by_label("Seconds").fill("3")
    form.get_by_role("button", name="Run sleep").click()
    page.wait_for_url(re.compile(r"/jobs/[A-Za-z0-9_-]+$"))
    page.evaluate("window.__samePage = true")
    # Somewhere between the ends: the bar moves while the job runs.
    page.wait_for_function(
        "() => { const v = document.getElementById('progress').value; return v > 0 && v < 100; }", timeout=LIVE
    )
    expect(page.locator("#progress-message")).to_contain_text("slept")
    expect(page.locator("#status")).to_have_text("finished", timeout=LIVE)
    expect(page.locator("#result")).to_contain_text('"slept": 3')
    assert page.locator("#progress").evaluate("p => p.value") == 100
    expect(page.locator("#timeline li[data-event=finished]")).to_have_count(1)
    expect(page.locator("#timeline li[data-event=started] time")).to_have_attribute("datetime", re.compile("Z$"))
    assert page.evaluate("window.__samePage") is True  # followed without a reload
    screenshot(page, "job-finished")
    assert page.errors == []


def test_a_failing_job_shows_its_error(page, stack):
    stack.require("GET", "/api/jobs/<id>/events")
    job_id = stack.submit("fail", message="the disk is full")
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("#status")).to_have_text("failed", timeout=LIVE)
    expect(page.locator("#error-box")).to_be_visible()
    expect(page.locator("#error-type")).to_have_text("RuntimeError")
    expect(page.locator("#error-message")).to_have_text("the disk is full")
    expect(page.locator("#result-box")).to_be_hidden()
    expect(page.locator("#retry")).to_be_visible()
    screenshot(page, "job-failed")


def test_cancel_a_running_job(page, stack):
    stack.require("GET", "/api/jobs/<id>/events")
    stack.require("POST", "/api/jobs/<id>/cancel")
    job_id = stack.submit("sleep", seconds=20)
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("#status")).to_have_text("started", timeout=LIVE)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#status")).to_have_text(re.compile("stopped|canceled"), timeout=LIVE)
    expect(page.locator("#cancel")).to_be_hidden()


def test_unknown_job_page_is_a_clear_404(page, stack):
    response = page.goto("/jobs/no-such-job")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_job_list_filters_and_pages(page, stack):
    stack.require("GET", "/api/jobs")
    ids = [stack.submit("add", a=i, b=1) for i in range(26)]
    page.goto("/jobs?name=add")
    rows = page.locator("#jobs-body tr[data-job]")
    expect(rows).to_have_count(25, timeout=LIVE)
    expect(rows.first).to_have_attribute("data-job", ids[-1])  # newest first
    expect(page.locator("#jobs-body tr[data-job] code").filter(has_text="fail")).to_have_count(0)
    screenshot(page, "jobs")
    page.get_by_role("link", name="Older »").click()
    page.wait_for_url(re.compile(r"cursor="))
    expect(rows.first).to_be_visible(timeout=LIVE)
    older = set(rows.evaluate_all("rows => rows.map(r => r.dataset.job)"))
    assert ids[0] in older and ids[-1] not in older
    expect(page.get_by_role("link", name="« Newest")).to_be_visible()
    screenshot(page, "jobs-older")
    page.goto("/jobs?queue=low&name=task_get")
    expect(page.locator("#jobs-body")).to_contain_text("No jobs match these filters", timeout=LIVE)


def test_job_list_updates_live(page, stack):
    stack.require("GET", "/api/jobs")
    stack.require("GET", "/api/events")
    page.goto("/jobs")
    expect(page.locator("#live-state")).to_have_text("live", timeout=LIVE)
    job_id = stack.submit("sleep", seconds=1)
    row = page.locator(f'tr[data-job="{job_id}"]')
    expect(row).to_be_visible(timeout=LIVE)
    expect(row.locator(".badge")).to_have_text("finished", timeout=LIVE)
    screenshot(page, "jobs-live")
    page.goto("/jobs?status=finished")
    expect(page.locator(f'tr[data-job="{job_id}"]')).to_be_visible(timeout=LIVE)


def test_demo_buttons_and_the_live_message_panel(page, stack):
    page.goto("/")
    page.get_by_role("button", name="Producer/consumer").click()
    expect(page.locator("#demo-feed")).to_contain_text("Enqueued task_get(", timeout=LIVE)
    stack.require("GET", "/api/demo/events")
    expect(page.locator("#demo-state")).to_have_text("live", timeout=LIVE)
    page.get_by_role("button", name="Publish/subscribe").click()
    expect(page.locator("#demo-feed li").filter(has_text=re.compile(r"task:pubsub:channel: \d"))).to_have_count(
        1, timeout=LIVE
    )


def test_phone_width_has_no_sideways_scrolling(browser, stack):
    context = browser.new_context(base_url=stack.base, viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = context.new_page()
    job_id = stack.submit("fail", message="a long message that should wrap on a narrow screen " * 3)
    for path, name in (("/", "home-phone"), ("/jobs", "jobs-phone"), (f"/jobs/{job_id}", "job-phone")):
        page.goto(path)
        screenshot(page, name)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide at 390 px"
    context.close()


def test_times_are_shown_in_the_viewers_time_zone(browser, stack):
    job_id = stack.submit("add", a=1, b=2)
    context = browser.new_context(base_url=stack.base, timezone_id="Asia/Tokyo", locale="en-US")
    page = context.new_page()
    page.goto(f"/jobs/{job_id}")
    enqueued = page.locator("#enqueued_at")
    iso = enqueued.get_attribute("datetime")
    assert iso.endswith("Z")  # the machine-readable value stays UTC ISO 8601
    tokyo = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Tokyo"))
    expect(enqueued).to_contain_text(f"{tokyo.hour % 12 or 12}:{tokyo.minute:02d}:{tokyo.second:02d}")
    context.close()


def test_the_api_docs_page_renders_under_the_security_policy(page, stack):
    stack.require("GET", "/api/docs")
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=LIVE)
    assert page.errors == []  # no script or style refused by the Content-Security-Policy


def test_retry_a_failed_job_from_its_page(page, stack):
    stack.require("GET", "/api/jobs/<id>/events")
    stack.require("POST", "/api/jobs/<id>/retry")
    job_id = stack.submit("fail", message="try again")
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("#status")).to_have_text("failed", timeout=LIVE)
    page.get_by_role("button", name="Retry").click()
    # Same job, run again: a second failure arrives on the same page, and two attempts are listed.
    expect(page.locator("#timeline li[data-event=failed]")).to_have_count(2, timeout=LIVE)
    expect(page.locator("#status")).to_have_text("failed")
    expect(page.locator("#attempts li")).to_have_count(2, timeout=LIVE)
    assert page.url.endswith(f"/jobs/{job_id}")
