"""Missed-run and overlap policies (extensions): the pure decision and end to end."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.clock import to_ms
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.domain.planning import plan_dispatch
from scheduler.recurrence import compile_recurrence
from scheduler.store.jobs import JobStore
from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import Stack

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def every_minute(**extra: object) -> JobProperties:
    return JobProperties.model_validate(
        {
            "startTime": "2026-03-01T00:00:00Z",
            "recurrence": {"frequency": "Minute"},
            "action": {"type": "Http", "request": {"uri": "http://x.test/", "method": "GET"}},
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("extra", "late", "run", "next_fire"),
    [
        ({}, timedelta(seconds=1), True, T0 + MINUTE),
        ({}, timedelta(minutes=5), True, T0 + 6 * MINUTE),
        ({"missedRunPolicy": "RunAll"}, timedelta(minutes=5), True, T0 + MINUTE),
        ({"missedRunPolicy": "Skip"}, timedelta(seconds=3), True, T0 + MINUTE),
        ({"missedRunPolicy": "Skip"}, timedelta(minutes=5), False, T0 + 6 * MINUTE),
        ({"startingDeadline": "PT2M"}, timedelta(minutes=5), False, T0 + 3 * MINUTE),
        (
            {"missedRunPolicy": "RunAll", "startingDeadline": "PT2M"},
            timedelta(minutes=1),
            True,
            T0 + MINUTE,
        ),
    ],
    ids=[
        "on-time",
        "run-once-late",
        "run-all-late",
        "skip-on-time",
        "skip-late",
        "deadline-passed-resumes-within-it",
        "run-all-within-deadline",
    ],
)
def test_the_dispatch_decision(
    extra: dict[str, object], late: timedelta, run: bool, next_fire: datetime
) -> None:
    job = every_minute(**extra)
    assert job.recurrence is not None
    assert job.start_time is not None
    rule = compile_recurrence(job.recurrence, job.start_time)
    decision = plan_dispatch(job, T0, T0 + late, rule.next_after)
    assert (decision.run, decision.next_fire) == (run, next_fire)


def test_a_one_shot_job_past_its_deadline_does_not_run() -> None:
    job = JobProperties.model_validate(
        {
            "startingDeadline": "PT1M",
            "action": {"type": "Http", "request": {"uri": "http://x.test/", "method": "GET"}},
        }
    )
    assert not plan_dispatch(job, T0, T0 + 2 * MINUTE, None).run
    assert plan_dispatch(job, T0, T0 + MINUTE / 2, None).run


@pytest.fixture
def stack_store(stack: Stack, redis_url: str) -> JobStore:
    store = JobStore.from_url(redis_url, stack.prefix)
    cid = f"sub1/rg1/policies-{uuid.uuid4().hex[:6]}"
    store.put_collection(cid, JobCollection())
    store.redis.set("test:cid", cid)
    return store


def add_missed_job(store: JobStore, target: HttpTarget, name: str, **extra: object) -> str:
    """A minute job whose beats were all down for 4.5 minutes: due 4.5 min ago."""
    cid = str(store.redis.get("test:cid"))
    now = datetime.now(UTC)
    start = (now - timedelta(minutes=4, seconds=30)).replace(microsecond=0)
    job = JobProperties.model_validate(
        {
            "startTime": start.isoformat(),
            "recurrence": {"frequency": "Minute"},
            "action": {"type": "Http", "request": {"uri": f"{target.url}/{name}", "method": "GET"}},
            **extra,
        }
    )
    store.put_job(f"{cid}/{name}", job, owner="admin", next_fire_ms=to_ms(start))
    store.redis.publish(store.keys.wake, 0)
    return f"{cid}/{name}"


@pytest.mark.e2e
@pytest.mark.parametrize(("policy", "runs"), [("RunOnce", 1), ("RunAll", 5), ("Skip", 0)])
def test_missed_runs_after_downtime_follow_the_policy(
    stack_store: JobStore, target: HttpTarget, policy: str, runs: int
) -> None:
    # Given a job whose last five occurrences were missed, with this policy
    jid = add_missed_job(stack_store, target, policy.lower(), missedRunPolicy=policy)

    # When a beat sees it
    record = wait_until(
        lambda: (
            (r := stack_store.get_job(jid)).properties.status
            and r.properties.status.next_execution_time
            and r.properties.status.next_execution_time > datetime.now(UTC)
            and r
        ),
        timeout=5,
        message="the job to be rescheduled into the future",
    )

    # Then it ran as many times as the policy says, and its next time is the schedule's next
    wait_until(
        lambda: len(stack_store.history(jid)) >= runs,
        timeout=5,
        message=f"{runs} runs, have {len(stack_store.history(jid))}: "
        f"{[e.entry.message[:60] for e in stack_store.history(jid)]}",
    )
    assert len(target.requests_to(f"/{policy.lower()}")) == runs
    status = record.properties.status
    assert status is not None
    assert status.next_execution_time is not None
    assert status.next_execution_time - datetime.now(UTC) <= timedelta(minutes=1)


@pytest.mark.e2e
def test_forbid_postpones_and_replace_cancels_an_overlapping_occurrence(
    stack_store: JobStore, target: HttpTarget
) -> None:
    # Given two jobs every second whose endpoint holds each call for a while
    cid = str(stack_store.redis.get("test:cid"))
    release = target.hold("/slow")
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    for policy in ("Forbid", "Replace"):
        job = JobProperties.model_validate(
            {
                "startTime": now.isoformat(),
                "concurrencyPolicy": policy,
                "recurrence": {"frequency": "Second", "count": 2},
                "action": {
                    "type": "Http",
                    "request": {"uri": f"{target.url}/slow", "method": "GET"},
                },
            }
        )
        stack_store.put_job(f"{cid}/{policy}", job, owner="admin", next_fire_ms=to_ms(now))
    stack_store.redis.publish(stack_store.keys.wake, 0)

    # When the second occurrence comes due while the first still runs
    wait_until(
        lambda: stack_store.history(f"{cid}/Forbid") and len(target.requests_to("/slow")) >= 3,
        timeout=6,
        message="Forbid's postponement and Replace's second call",
    )
    release.set()

    # Then Forbid recorded it as Postponed, and Replace cancelled the first one
    forbid = wait_until(
        lambda: len(h := stack_store.history(f"{cid}/Forbid")) >= 2 and h, timeout=6
    )
    statuses = sorted(e.entry.status.value for e in forbid)
    assert statuses == ["Completed", "Postponed"]
    replace = wait_until(
        lambda: len(h := stack_store.history(f"{cid}/Replace")) >= 2 and h, timeout=6
    )
    messages = [e.entry.message for e in replace]
    assert any(m.startswith("Cancelled: replaced by the occurrence of") for m in messages)
