"""A real browser for the console tests: Debian's Chromium driven by Playwright.

``playwright install`` is never needed: the tests launch ``/usr/bin/chromium``. Without it
they skip locally and fail in CI (``CI=true``), as the other tests that need a tool do.
Each test gets a fresh browser context (no cookies); the browser itself starts with a new,
empty profile directory of Playwright's making.

The ``browser``, ``page`` and ``screenshots`` fixtures are in ``tests/e2e/conftest.py``;
this module holds what they and the tests share.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.support.helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
#: Set to copy the two documentation screenshots into docs/ (``make screenshots``).
UPDATE_DOCS = "TAKT_TEST_UPDATE_DOCS"
DOCS = ROOT / "docs"


def require_chromium() -> Path:
    """The Chromium executable; skips the test (fails it in CI) when there is none."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed (apt-get install -y chromium), and CI needs it")
    pytest.skip("chromium is not installed")


def snap(page: Page, directory: Path, name: str, *, docs_name: str | None = None) -> Path:
    """Save a screenshot of ``page``; with ``TAKT_TEST_UPDATE_DOCS=1`` also into docs/."""
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if docs_name and os.environ.get(UPDATE_DOCS) == "1":
        shutil.copyfile(path, DOCS / docs_name)
    return path


def sign_in(page: Page, api_url: str, key: str) -> None:
    page.goto(api_url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Job collections").wait_for()
