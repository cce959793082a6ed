"""A running deployment for the end-to-end tests: the API, a beat and a worker as real
processes (``python -m scheduler``) on a Valkey server, with Redis or RabbitMQ as the broker.

``tests/e2e/conftest.py`` starts one per broker for the session (the ``redis_stack`` and
``amqp_stack`` fixtures); tests receive the ``Stack`` it made.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.helpers import ADMIN_TOKEN, ROOT, free_port, wait_until
from tests.support.processes import stop_process
from tests.support.swagger import check_response

AMQP_URL = os.environ.get("TAKT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


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


def start_stack(
    redis_url: str,
    log_dir: Path,
    broker_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[Stack, list[subprocess.Popen[bytes]]]:
    """Start a deployment; ``extra_env`` adds to (or overrides) every process's environment
    (a setting such as ``TAKT_SERVICE_BUS_ENDPOINT``, or ``SSL_CERT_FILE``)."""
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
    env.update(extra_env or {})
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
        # Every ARM answer a test receives must fit Microsoft's swagger.
        event_hooks={"response": [check_response]},
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
        stop_stack(stack)
        raise
    return stack, list(processes.values())


def stop_stack(stack: Stack) -> None:
    stack.http.close()
    for process in stack.processes.values():
        stop_process(process)


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
