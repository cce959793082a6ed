"""At-least-once execution: a worker killed mid-call has its attempt redone elsewhere,
within the action's timeout plus a margin, not after the redelivery timeout."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.clock import to_ms, utcnow
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.settings import LEASE_MARGIN_S
from scheduler.store.jobs import JobStore
from tests.support.deployments import Deployment
from tests.support.helpers import HttpTarget, wait_until
from tests.support.processes import alive

pytestmark = pytest.mark.e2e


@pytest.fixture
def deployment(redis_url: str, tmp_path: Path) -> Iterator[Deployment]:
    with Deployment(redis_url, tmp_path, broker_url=f"{redis_url}/7") as deployment:
        yield deployment


def test_a_worker_killed_mid_call_has_its_attempt_redone_once(
    deployment: Deployment, target: HttpTarget, redis_url: str
) -> None:
    # Given a beat, a worker, and a job whose endpoint holds the first call open
    release = target.hold("/slow")
    deployment.spawn("beat")
    doomed = deployment.spawn("worker", "-c", "4", "--without-mingle", "--without-gossip")
    store = JobStore.from_url(redis_url, deployment.prefix)
    store.put_collection("s/rg/c", JobCollection())
    job = JobProperties.model_validate(
        {"action": {"type": "Http", "request": {"uri": f"{target.url}/slow", "method": "GET"}}}
    )
    store.put_job("s/rg/c/slow", job, owner="admin", next_fire_ms=to_ms(utcnow()))

    # When the worker is killed with SIGKILL while the call is in flight
    wait_until(lambda: target.requests_to("/slow"), timeout=10, message="the first call")
    os.kill(doomed.pid, signal.SIGKILL)
    wait_until(lambda: not alive(doomed.pid) or doomed.poll() is not None, timeout=5)
    release.set()
    deployment.spawn("worker", "-c", "4", "--without-mingle", "--without-gossip")

    # Then another worker redoes the attempt, and history records it once, Completed
    calls = wait_until(
        lambda: len(c := target.requests_to("/slow")) >= 2 and c,
        timeout=30,
        message="the attempt to be redone",
    )
    entries = wait_until(lambda: store.history("s/rg/c/slow"), timeout=10)
    assert len(calls) == 2
    assert calls[0].headers["x-ms-execution-tag"] == calls[1].headers["x-ms-execution-tag"]
    assert [(e.entry.status.value, e.entry.retry_count) for e in entries] == [("Completed", 0)]
    status = store.get_job("s/rg/c/slow").properties
    assert status.state is not None
    assert status.state.value == "Completed"
    store.close()


#: The deployment's action timeout (TAKT_HTTP_TIMEOUT_S there).
ACTION_TIMEOUT_S = 3
#: After the lease expires: a beat's look at the ledger (every second), the publish, and
#: a worker started meanwhile taking the message, on a loaded machine.
REDO_MARGIN_S = 15


def test_a_killed_worker_s_attempt_is_redone_once_its_lease_expires_not_an_hour_later(
    deployment: Deployment, target: HttpTarget, redis_url: str
) -> None:
    # Given a deployment with the default redelivery timeout (an hour), a beat, a worker,
    # and a job whose endpoint holds the first call open
    deployment.env.pop("TAKT_REDELIVERY_TIMEOUT_S")
    release = target.hold("/held")
    deployment.spawn("beat")
    doomed = deployment.spawn("worker", "-c", "4", "--without-mingle", "--without-gossip")
    store = JobStore.from_url(redis_url, deployment.prefix)
    store.put_collection("s/rg/c", JobCollection())
    job = JobProperties.model_validate(
        {"action": {"type": "Http", "request": {"uri": f"{target.url}/held", "method": "GET"}}}
    )
    store.put_job("s/rg/c/held", job, owner="admin", next_fire_ms=to_ms(utcnow()))

    # When the worker is killed with SIGKILL while the call is in flight, and another starts
    wait_until(lambda: target.requests_to("/held"), timeout=10, message="the first call")
    called = time.monotonic()
    os.kill(doomed.pid, signal.SIGKILL)
    wait_until(lambda: not alive(doomed.pid) or doomed.poll() is not None, timeout=5)
    release.set()
    deployment.spawn("worker", "-c", "4", "--without-mingle", "--without-gossip")

    # Then the attempt is redone within the action's timeout plus the lease's margin plus
    # a margin, and recorded once, Completed
    bound_s = ACTION_TIMEOUT_S + LEASE_MARGIN_S + REDO_MARGIN_S
    entries = wait_until(
        lambda: store.history("s/rg/c/held"), timeout=bound_s, message="the attempt redone"
    )
    redone_after_s = time.monotonic() - called
    assert redone_after_s < bound_s
    assert [(e.entry.status.value, e.entry.retry_count) for e in entries] == [("Completed", 0)]
    calls = target.requests_to("/held")
    assert len(calls) == 2
    assert calls[0].headers["x-ms-execution-tag"] == calls[1].headers["x-ms-execution-tag"]
    # ... and the ledger owes nothing any more
    assert store.redis.zcard(store.keys.ledger) == 0
    assert store.redis.zcard(store.keys.ledger_taken) == 0
    store.close()
