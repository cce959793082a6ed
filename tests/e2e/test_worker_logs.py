"""A worker's log at INFO says what happens to the worker, not a line per task: Celery's
"received" and "succeeded" lines show at DEBUG (the history and Flower say the same)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from scheduler.clock import to_ms, utcnow
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.store.jobs import JobStore
from tests.support.deployments import KOMBU_UNACKED, Deployment
from tests.support.helpers import HttpTarget, wait_until

pytestmark = pytest.mark.e2e

CID = "logs/rg/c"


@pytest.mark.parametrize(("level", "per_task_lines"), [("INFO", False), ("DEBUG", True)])
def test_per_task_lines_show_at_debug_only(
    redis_url: str, tmp_path: Path, target: HttpTarget, level: str, per_task_lines: bool
) -> None:
    # Given a beat and a worker at a log level
    with Deployment(redis_url, tmp_path, broker_url=f"{redis_url}/8") as deployment:
        deployment.env["TAKT_LOG_LEVEL"] = level
        deployment.spawn("beat")
        deployment.spawn("worker", "-c", "2", "--without-mingle", "--without-gossip")
        worker_log = next(tmp_path.glob("worker-*.log"))
        store = JobStore.from_url(redis_url, deployment.prefix)
        store.put_collection(CID, JobCollection())

        # When a job runs
        job = JobProperties.model_validate(
            {"action": {"type": "Http", "request": {"uri": f"{target.url}/x", "method": "GET"}}}
        )
        store.put_job(f"{CID}/j", job, owner="admin", next_fire_ms=to_ms(utcnow()))
        wait_until(lambda: store.history(f"{CID}/j"), timeout=30, message="the run")
        store.close()
        # (acknowledged after Celery logged its end: the log is complete)
        broker = redis.Redis.from_url(f"{redis_url}/8")
        wait_until(lambda: broker.hlen(KOMBU_UNACKED) == 0, timeout=10, message="the ack")
        broker.close()

        # Then Celery's lines for the task are in the log at DEBUG only
        log = worker_log.read_text()
        assert "ready" in log
        assert ("] received" in log) is per_task_lines, log[-2000:]
        assert (" succeeded in " in log) is per_task_lines, log[-2000:]
