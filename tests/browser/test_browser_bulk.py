"""Bulk actions from the job list in a real browser: the count to confirm comes from a dry run,
then every matching job is retried or canceled, against the real stack (gunicorn, worker.py)."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import expect

from tests.browser.helpers import LIVE, screenshot


def submit(stack, body: dict) -> str:
    response = httpx.post(stack.base + "/api/jobs", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_for(stack, job_ids: list[str], done, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        views = [httpx.get(f"{stack.base}/api/jobs/{job_id}", timeout=5).json() for job_id in job_ids]
        if all(done(view) for view in views):
            return views
        assert time.monotonic() < deadline, [view["status"] for view in views]
        time.sleep(0.1)


def dry_run(stack, action: str, wanted: dict) -> int:
    body = {"action": action, "filter": wanted, "dry_run": True}
    return httpx.post(stack.base + "/api/jobs/bulk", json=body, timeout=10).json()["eligible"]


def test_retry_all_failed_matching_the_filter(page, stack):
    stack.require("POST", "/api/jobs/bulk")
    failed = [submit(stack, {"name": "fail", "args": ["boom"], "queue": "low", "retry": {"max": 0}}) for _ in range(6)]
    wait_for(stack, failed, lambda view: view["status"] == "failed")
    count = dry_run(stack, "retry", {"status": "failed", "queue": "low", "name": "fail"})
    assert count >= 6

    page.goto("/jobs?status=failed&queue=low&name=fail")
    expect(page.locator("#jobs-body tr[data-job]").first).to_be_visible(timeout=LIVE)
    expect(page.get_by_role("button", name="Cancel all queued matching")).to_be_hidden()
    page.get_by_role("button", name="Retry all failed matching this filter").click()
    expect(page.locator("#bulk-question")).to_have_text(f"Retry {count} failed fail jobs in queue low?")
    screenshot(page, "jobs-bulk-confirm")
    page.get_by_role("button", name="Keep them").click()
    expect(page.locator("#bulk-confirm")).to_be_hidden()
    assert {view["status"] for view in wait_for(stack, failed, lambda view: True)} == {"failed"}

    page.get_by_role("button", name="Retry all failed matching this filter").click()
    page.get_by_role("button", name=f"Retry {count} jobs").click()
    expect(page.locator("#bulk-status")).to_have_text(f"{count} jobs retried.", timeout=LIVE)
    again = wait_for(stack, failed, lambda view: view["status"] == "failed" and len(view["attempts"]) == 2)
    assert all(view["error"]["message"] == "boom" for view in again)
    assert page.errors == []


def test_cancel_all_queued_matching(page, stack):
    stack.require("POST", "/api/jobs/bulk")
    # Keep both worker processes busy, so the jobs below stay queued.
    sleepers = [submit(stack, {"name": "sleep", "args": [60], "queue": "high"}) for _ in range(2)]
    try:
        wait_for(stack, sleepers, lambda view: view["status"] == "started")
        waiting = [submit(stack, {"name": "add", "args": [1, i], "queue": "low"}) for i in range(5)]
        count = dry_run(stack, "cancel", {"status": "queued", "queue": "low"})
        assert count == 5

        page.goto("/jobs?queue=low")
        expect(page.locator("#jobs-body tr[data-job]").first).to_be_visible(timeout=LIVE)
        page.get_by_role("button", name="Cancel all queued matching").click()
        expect(page.locator("#bulk-question")).to_have_text("Cancel 5 queued jobs in queue low?")
        page.get_by_role("button", name="Cancel 5 jobs").click()
        expect(page.locator("#bulk-status")).to_have_text("5 jobs canceled.", timeout=LIVE)
        views = wait_for(stack, waiting, lambda view: view["status"] == "canceled")
        assert len(views) == 5
        for job_id in waiting:
            expect(page.locator(f'tr[data-job="{job_id}"] .badge')).to_have_text("canceled", timeout=LIVE)
        screenshot(page, "jobs-bulk-canceled")
    finally:
        for job_id in sleepers:
            httpx.post(f"{stack.base}/api/jobs/{job_id}/cancel", timeout=5)
        wait_for(stack, sleepers, lambda view: view["status"] in ("stopped", "canceled", "finished"))
    assert page.errors == []
