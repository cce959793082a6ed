"""The backlog the fault tests wait on before they count (tests.support.deployments).

A fleet that keeps up owes nothing between two occurrences: the ledger, the queues, the
unacknowledged messages and the claims stream are all empty for most of every second.
Counting then would miss the occurrences still to come; so a wait for the backlog of a
window also waits for the window's last occurrence to be due and claimed.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.clock import to_ms
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.store.jobs import JobStore
from tests.support.deployments import backlog, wait_drained

CID = "b/rg/c"


def _put_job_due(store: JobStore, due: datetime) -> None:
    store.put_collection(CID, JobCollection())
    job = JobProperties.model_validate(
        {"action": {"type": "Http", "request": {"uri": "http://127.0.0.1:9/x", "method": "GET"}}}
    )
    store.put_job(f"{CID}/j", job, owner="admin", next_fire_ms=to_ms(due))


def test_a_job_due_by_the_last_occurrence_and_not_claimed_is_backlog(store: JobStore) -> None:
    # Given a job due a second ago that no beat claimed, and nothing else handed out
    now = datetime.now(UTC)
    _put_job_due(store, now - timedelta(seconds=1))

    # Then it is backlog for a count up to now, and not for one that ended before it was due
    assert backlog(store, store.redis, to_ms(now)).unclaimed == 1
    assert not backlog(store, store.redis, to_ms(now)).empty
    assert backlog(store, store.redis, to_ms(now - timedelta(seconds=2))).empty
    # (without a time to count up to, the due set is not looked at)
    assert backlog(store, store.redis).empty


def test_a_wait_for_a_window_fails_while_a_job_due_in_it_is_unclaimed(store: JobStore) -> None:
    # Given a job due a second ago that no beat claims
    last_due = datetime.now(UTC)
    _put_job_due(store, last_due - timedelta(seconds=1))

    # Then waiting for the window up to now fails, naming it
    with pytest.raises(AssertionError, match="1 job\\(s\\) due and not claimed"):
        wait_drained(store, store.redis, timeout_s=1, last_due=last_due)


def test_a_wait_for_a_window_does_not_end_before_its_last_occurrence(store: JobStore) -> None:
    # Given a window whose last occurrence is 1.5 s away, and a backlog that is empty
    last_due = datetime.now(UTC) + timedelta(seconds=1.5)
    assert backlog(store, store.redis, to_ms(last_due)).empty

    # When a beat claims the job at its time (here: the job leaves the due set)
    _put_job_due(store, last_due)
    claimer = threading.Timer(1.6, store.redis.zrem, (store.keys.due, f"{CID}/j"))
    claimer.start()
    started = time.monotonic()
    try:
        wait_drained(store, store.redis, timeout_s=10, last_due=last_due)
    finally:
        claimer.cancel()

    # Then the wait ended only after it was due and claimed
    assert time.monotonic() - started >= 1.5
    assert datetime.now(UTC) > last_due
