"""The overview page's queues table in a real browser: pause a queue, see a job wait on it,
resume it and see the job run, against the real stack (gunicorn, worker.py, Redis)."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser.helpers import LIVE, screenshot


def test_pause_and_resume_a_queue_from_the_overview(page, stack):
    page.goto("/overview")
    row = page.locator('#queues-table tr[data-queue="low"]')
    expect(row.locator('[data-field="state"] .badge')).to_have_text("running", timeout=LIVE)
    row.get_by_role("button", name="Pause").click()
    expect(row.locator('[data-field="state"] .badge')).to_have_text("paused")
    assert httpx.get(stack.base + "/api/queues", timeout=5).json()["queues"][2]["paused"] is True

    made = httpx.post(stack.base + "/api/jobs", json={"name": "add", "args": [20, 22], "queue": "low"}, timeout=5)
    assert made.status_code == 202
    job_url = f"{stack.base}/api/jobs/{made.json()['id']}"
    expect(row.locator('[data-field="depth"]')).to_have_text("1", timeout=LIVE)  # the page polls every 5 s
    assert httpx.get(job_url, timeout=5).json()["status"] == "queued"
    screenshot(page, "overview-queue-paused")

    row.get_by_role("button", name="Resume").click()
    expect(row.locator('[data-field="state"] .badge')).to_have_text("running")
    expect(row.locator('[data-field="depth"]')).to_have_text("0", timeout=LIVE)
    assert httpx.get(job_url, timeout=5).json()["result"] == 42
    assert page.errors == []
