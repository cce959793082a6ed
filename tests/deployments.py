"""A deployment of its own for tests that kill processes or use another broker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.conftest import ROOT, stop_process
from tests.helpers import wait_until


class Deployment:
    """A beat and workers of their own: own key prefix, own broker database."""

    def __init__(self, redis_url: str, logs: Path, broker_url: str) -> None:
        self.prefix = f"dep-{uuid.uuid4().hex[:8]}"
        self.logs = logs
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TAKT_")}
        self.env.update(
            {
                "TAKT_REDIS_URL": redis_url,
                "TAKT_BROKER_URL": broker_url,
                "TAKT_KEY_PREFIX": self.prefix,
                "TAKT_HTTP_TIMEOUT_S": "3",
                "TAKT_HTTP_TIMEOUT_MAX_S": "3",
                "TAKT_BROKER_RETRY_MAX_S": "0",
                "TAKT_REDELIVERY_TIMEOUT_S": "9",
                "TAKT_BEAT_MAX_INTERVAL_S": "1",
                "TAKT_DATA_DIR": str(logs),
            }
        )
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        if role == "worker":
            # Each worker its own node name: on RabbitMQ two "celery@host" collide.
            args = (*args, "-n", f"w{uuid.uuid4().hex[:8]}@%h")
        log = self.logs / f"{role}-{len(self.processes)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "scheduler", role, *args],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        wait_until(
            lambda: "ready" in log.read_text() or "Starting" in log.read_text(),
            timeout=60,
            message=f"{role} to start",
        )
        return process

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            stop_process(process)
