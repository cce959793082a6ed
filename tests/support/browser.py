"""A real browser for the console tests: Debian's Chromium driven by Playwright.

``playwright install`` is never needed: the tests launch ``/usr/bin/chromium``. Without it
they skip locally and fail in CI (``CI=true``), as the other tests that need a tool do.
Each test gets a fresh browser context (no cookies); the browser itself starts with a new,
empty profile directory of Playwright's making.

Import the fixtures into a test module to use them::

    from tests.support.browser import browser_fixture, page_fixture  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

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
DOCS = Path(__file__).resolve().parents[2] / "docs"


def require_chromium() -> Path:
    """The Chromium executable; skips the test (fails it in CI) when there is none."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed (apt-get install -y chromium), and CI needs it")
    pytest.skip("chromium is not installed")


# Module scope: each test module imports these fixtures, so each gets a fixture of its own;
# two session-scoped ones would run two Playwright loops at once, which the sync API refuses.
@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[Browser]:
    executable = require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(name="page")
def page_fixture(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page in a context of its own (cookies die with the test)."""
    context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(name="screenshots", scope="session")
def screenshots_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save screenshots of the console's pages."""
    return tmp_path_factory.mktemp("console-screenshots")


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
