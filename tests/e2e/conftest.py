"""Fixtures of the end-to-end tests: the session's deployments (API, beat and worker as real
processes, with Redis or RabbitMQ as the broker) and a real browser (Chromium)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.browser import CHROMIUM_ARGS, DESKTOP, require_chromium
from tests.support.stack import AMQP_URL, Stack, rabbitmq_answers, start_stack, stop_stack


@pytest.fixture(scope="session")
def redis_stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API, beat and worker on the session's Valkey (store and broker)."""
    stack, _ = start_stack(redis_url, tmp_path_factory.mktemp("stack-logs"))
    yield stack
    stop_stack(stack)


@pytest.fixture(scope="session")
def amqp_stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The same with RabbitMQ as the broker (skipped locally without it; CI has it)."""
    if not rabbitmq_answers():
        if os.environ.get("CI") == "true":
            pytest.fail("RabbitMQ is not running at 127.0.0.1:5672, and CI needs it")
        pytest.skip("RabbitMQ is not running at 127.0.0.1:5672")
    stack, _ = start_stack(redis_url, tmp_path_factory.mktemp("amqp-stack-logs"), AMQP_URL)
    yield stack
    stop_stack(stack)


@pytest.fixture
def stack(redis_stack: Stack) -> Stack:
    """The Redis stack; modules that run on both brokers override this fixture."""
    return redis_stack


# Module scope, as when each test module imported these fixtures: a module that uses a browser
# starts its own and closes it when the module ends.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page in a context of its own (cookies die with the test)."""
    context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save screenshots of the console's pages."""
    return tmp_path_factory.mktemp("console-screenshots")
