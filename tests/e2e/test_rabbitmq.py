"""The same deployment with RabbitMQ as the broker (Celery's own publisher over AMQP)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.clock import to_ms, utcnow
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.store.jobs import JobStore
from tests.support.deployments import Deployment
from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import AMQP_URL, rabbitmq_answers

pytestmark = pytest.mark.e2e


@pytest.fixture
def amqp_deployment(redis_url: str, tmp_path: Path) -> Iterator[Deployment]:
    if not rabbitmq_answers():
        if os.environ.get("CI") == "true":
            pytest.fail("RabbitMQ is not running at 127.0.0.1:5672, and CI needs it")
        pytest.skip("RabbitMQ is not running at 127.0.0.1:5672")
    with Deployment(redis_url, tmp_path, broker_url=AMQP_URL) as deployment:
        yield deployment


def test_jobs_fire_and_retry_over_rabbitmq(
    amqp_deployment: Deployment, target: HttpTarget, redis_url: str
) -> None:
    # Given a beat and a worker on RabbitMQ, and a job failing once with one quick retry
    amqp_deployment.spawn("beat")
    amqp_deployment.spawn("worker", "-c", "4", "--without-mingle", "--without-gossip")
    target.script("/amqp", [500, 200])
    store = JobStore.from_url(redis_url, amqp_deployment.prefix)
    store.put_collection("s/rg/c", JobCollection())
    job = JobProperties.model_validate(
        {
            "action": {
                "type": "Http",
                "request": {"uri": f"{target.url}/amqp", "method": "GET"},
                "retryPolicy": {"retryType": "Fixed", "retryCount": 1, "retryInterval": "PT1S"},
            }
        }
    )
    store.put_job("s/rg/c/j", job, owner="admin", next_fire_ms=to_ms(utcnow()))

    # When it fires
    entries = wait_until(
        lambda: len(h := store.history("s/rg/c/j")) >= 2 and h,
        timeout=20,
        message="both attempts over RabbitMQ",
    )

    # Then the attempt and its retry ran through RabbitMQ and the job completed
    assert [(e.entry.status.value, e.entry.retry_count) for e in reversed(entries)] == [
        ("Failed", 0),
        ("Completed", 1),
    ]
    assert len(target.requests_to("/amqp")) == 2
    record = store.get_job("s/rg/c/j")
    assert record.state.value == "Completed"
    store.close()
