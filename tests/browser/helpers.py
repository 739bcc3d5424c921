"""Helpers shared by the browser tests."""

from __future__ import annotations

from pathlib import Path

from tests.servers import ROOT

LIVE = 30_000  # ms to wait for something live: generous, the machine may be busy with other suites
SCREENSHOTS = ROOT / "test-output" / "screenshots"


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-output/screenshots/ for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
