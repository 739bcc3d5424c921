"""The Schedules page in a real browser: create from the catalog's form, pause, run now, and
see the run appear and finish live, against the real stack (gunicorn, worker.py, Redis)."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.browser.helpers import LIVE, screenshot


def test_create_pause_run_now_and_watch_the_run_live(page, stack):
    page.goto("/schedules")
    expect(page.get_by_role("heading", name="Schedules")).to_be_visible()
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live", timeout=LIVE)

    # A refused form shows the API's message next to its field.
    page.get_by_label("Name").fill("nightly-sum")
    page.get_by_label("Job").select_option("add")
    page.locator("#s-add-a").fill("2")
    page.locator("#s-add-b").fill("40")
    page.get_by_label("Runs").select_option("cron")
    page.get_by_label("Cron expression").fill("61 2 * * *")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator('[data-sfield="cron"] .field-error')).to_contain_text("should be a cron expression")

    page.get_by_label("Cron expression").fill("0 2 * * *")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Create schedule").click()
    row = page.locator('tr[data-schedule="nightly-sum"]')
    expect(row).to_contain_text("0 2 * * * (Europe/Paris)")
    expect(row.locator("td.next time")).to_have_attribute("datetime", re.compile(r"T0[01]:00:00\.000Z$"))
    stored = httpx.get(stack.base + "/api/schedules/nightly-sum", timeout=5).json()
    assert stored["job"] == {"name": "add", "kwargs": {"a": 2, "b": 40}, "args": [], "queue": "default"}

    row.get_by_role("button", name="Pause").click()
    expect(row.locator("td.next .badge")).to_have_text("paused")
    assert httpx.get(stack.base + "/api/schedules/nightly-sum", timeout=5).json()["paused"] is True

    row.get_by_role("button", name="Run now").click()
    run = row.locator(".runs li").first
    expect(run.locator(".badge")).to_have_text("finished", timeout=LIVE)
    job_id = run.get_attribute("data-job")
    job = httpx.get(f"{stack.base}/api/jobs/{job_id}", timeout=5).json()
    assert job["result"] == 42 and job["schedule"] == "nightly-sum"

    # A run made elsewhere (the API) shows up live, without a reload.
    page.evaluate("window.__samePage = true")
    made = httpx.post(stack.base + "/api/schedules/nightly-sum/run", json={}, timeout=5)
    assert made.status_code == 202
    expect(row.locator(f'.runs li[data-job="{made.json()["id"]}"] .badge')).to_have_text("finished", timeout=LIVE)
    assert page.evaluate("window.__samePage") is True

    row.get_by_role("button", name="Resume").click()
    expect(row.locator("td.next time")).to_be_visible()
    screenshot(page, "schedules")
    assert page.errors == []
