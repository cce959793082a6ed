"""The claim script follows a plain interval's cadence exactly as the beat would plan it.

Once the beat has planned a job whose rule is a plain interval under the default
missed-run policy, the claim script puts it back at its next occurrence itself (see
CLAIM_DUE). These tests hold its arithmetic, run in Valkey, to the beat's own planning in
Python, over rules with odd steps, microsecond start times, counts and end times.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from beat.scheduler import _plan
from scheduler.claims import Advance, ClaimBatch, ClaimQueue
from scheduler.clock import from_ms, to_ms
from scheduler.models import JobCollection, JobProperties, JobState
from scheduler.planning import plan_dispatch
from scheduler.scripts import CADENCE_NEXT
from scheduler.store import JobStore

CID = "sub/rg/cadence"
_FREQUENCIES = {"Second": 1, "Minute": 60, "Hour": 3_600, "Day": 86_400, "Week": 604_800}


@pytest.fixture
def claims(store: JobStore) -> ClaimQueue:
    queue = ClaimQueue(store, 60_000)
    queue.ensure_claim_group()
    return queue


def _random_job(rng: random.Random, now: datetime) -> dict[str, Any]:
    frequency = rng.choice(list(_FREQUENCIES))
    interval = rng.choice([1, 2, 3, 7, 13, 59])
    period = timedelta(seconds=_FREQUENCIES[frequency] * interval)
    start = now - min(period * rng.uniform(0, 50), timedelta(days=2_000))
    start += timedelta(microseconds=rng.randrange(1_000_000))
    recurrence: dict[str, Any] = {"frequency": frequency, "interval": interval}
    if rng.random() < 0.3:
        recurrence["count"] = rng.randrange(1, 60)
    if rng.random() < 0.3:
        recurrence["endTime"] = (start + period * rng.uniform(0, 60)).isoformat()
    zone = timezone(timedelta(minutes=rng.choice([0, 60, -300, 330])))
    return {
        "startTime": start.astimezone(zone).isoformat(),
        "action": {"type": "Http", "request": {"uri": "http://example.test/", "method": "GET"}},
        "recurrence": recurrence,
    }


def _claim_all(claims: ClaimQueue, beat: str) -> ClaimBatch:
    batch = claims.claim_due(beat, 1_000)
    assert claims.claim_due(beat, 1_000).stream_ids == []
    return batch


def _plan_and_advance(claims: ClaimQueue, batch: ClaimBatch) -> dict[str, str]:
    """The beat's slow path for a whole batch; returns each job's cadence."""
    done = []
    for claim in batch.claims:
        plan = _plan(claim.definition)
        now = from_ms(batch.now_ms)
        decision = plan_dispatch(plan.shape, from_ms(claim.occurrence_ms), now, plan.next_after)
        next_ms = None if decision.next_fire is None else to_ms(decision.next_fire)
        done.append(Advance(claim, next_ms, plan.cadence))
    claims.advance(batch.stream_ids, done)
    return {advance.claim.jid: advance.cadence for advance in done}


_T = 1_795_388_523_123_000  # an epoch µs on a whole ms
_CADENCE_CASES = [
    # (after µs, first µs, step µs, last µs or '', expected ms or '')
    pytest.param(_T - 1, _T, 60_000_000, "", str(_T // 1000), id="before-the-first"),
    pytest.param(_T, _T, 60_000_000, "", str(_T // 1000 + 60_000), id="on-the-first"),
    pytest.param(_T + 120_000_000, _T, 60_000_000, "", str(_T // 1000 + 180_000), id="on-one"),
    pytest.param(_T + 119_999_999, _T, 60_000_000, "", str(_T // 1000 + 120_000), id="just-before"),
    pytest.param(_T, _T, 60_000_000, str(_T + 60_000_000), str(_T // 1000 + 60_000), id="last"),
    pytest.param(_T, _T, 60_000_000, str(_T + 59_999_999), "", id="past-the-last"),
    pytest.param(_T + 999, _T + 999, 1_000_000, "", str(_T // 1000 + 1_000), id="sub-ms-start"),
    pytest.param(2**52, 7, 3, "", str((2**52 + 3) // 1000), id="near-2^52"),
]


@pytest.mark.parametrize(("after", "first", "step", "last", "expected"), _CADENCE_CASES)
def test_the_cadence_arithmetic_in_lua(
    store: JobStore, after: int, first: int, step: int, last: str, expected: str
) -> None:
    # Given the claim script's own function, on a real server
    script = store.redis.register_script(
        CADENCE_NEXT + "return next_ms(tonumber(ARGV[1]), tonumber(ARGV[2]), "
        "tonumber(ARGV[3]), ARGV[4])"
    )

    # When it looks for the occurrence after the instant, Then it finds the expected one
    assert script(args=[after, first, step, last]) == expected


def test_the_claim_script_advances_plain_intervals_as_the_beat_plans_them(
    store: JobStore, claims: ClaimQueue
) -> None:
    # Given 400 jobs on random plain intervals, planned once by the beat
    rng = random.Random(20261123)
    store.put_collection(CID, JobCollection())
    now = from_ms(store.time_ms())
    definitions: dict[str, JobProperties] = {}
    for i in range(400):
        jid = f"{CID}/j{i}"
        definitions[jid] = JobProperties.model_validate(_random_job(rng, now))
        store.put_job(jid, definitions[jid], owner="admin", next_fire_ms=1)
    cadences = _plan_and_advance(claims, _claim_all(claims, "beat"))
    assert all(cadences.values()), "every plain interval under RunOnce has a cadence"

    # When each is due again, at a random instant (late, or long before its start)
    occurrences = {jid: to_ms(now) - rng.randrange(0, 10**10) for jid in definitions}
    store.redis.zadd(store.keys.due, occurrences)
    batch = _claim_all(claims, "beat")

    # Then the claim script advanced every one, to the beat's own next occurrence
    assert batch.claims == []
    assert {s.jid: s.occurrence_ms for s in batch.scheduled} == occurrences
    assert {s.action_type for s in batch.scheduled} == {"Http"}
    due = {jid: int(ms) for jid, ms in store.redis.zrange(store.keys.due, 0, -1, withscores=True)}
    mismatches = []
    for jid, occurrence_ms in occurrences.items():
        plan = _plan(store.redis.hget(store.keys.job(jid), "def"))
        decision = plan_dispatch(
            plan.shape, from_ms(occurrence_ms), from_ms(batch.now_ms), plan.next_after
        )
        expected = None if decision.next_fire is None else to_ms(decision.next_fire)
        stored = store.redis.hget(store.keys.job(jid), "nextExecutionTime")
        if (due.get(jid), stored, decision.run) != (expected, str(expected or ""), True):
            mismatches.append((jid, cadences[jid], occurrence_ms, expected, due.get(jid), stored))
    assert mismatches == []


def test_other_rules_and_policies_stay_with_the_beat(store: JobStore, claims: ClaimQueue) -> None:
    # Given jobs the claim script cannot plan: a calendar rule, a missed-run policy other
    # than RunOnce, a starting deadline and a one-shot job
    store.put_collection(CID, JobCollection())
    start = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    action = {"type": "Http", "request": {"uri": "http://example.test/", "method": "GET"}}
    minutely = {"frequency": "Minute", "interval": 1}
    shapes = {
        "calendar": {"recurrence": {"frequency": "Month", "schedule": {"monthDays": [1]}}},
        "skip": {"recurrence": minutely, "missedRunPolicy": "Skip"},
        "deadline": {"recurrence": minutely, "startingDeadline": "PT1H"},
        "once": {},
    }
    for name, extra in shapes.items():
        properties = JobProperties.model_validate({"startTime": start, "action": action, **extra})
        store.put_job(f"{CID}/{name}", properties, owner="admin", next_fire_ms=1)

    # When the beat has planned them once and they are due again
    cadences = _plan_and_advance(claims, _claim_all(claims, "beat"))
    store.redis.zadd(store.keys.due, {f"{CID}/{name}": 1 for name in shapes})
    batch = _claim_all(claims, "beat")

    # Then none has a cadence, and each comes back to the beat with its definition
    assert set(cadences.values()) == {""}
    assert batch.scheduled == []
    assert sorted(c.jid for c in batch.claims) == sorted(f"{CID}/{name}" for name in shapes)
    assert all(c.definition for c in batch.claims)


def test_a_replaced_or_disabled_job_goes_back_to_the_beat(
    store: JobStore, claims: ClaimQueue
) -> None:
    # Given two jobs with a cadence
    store.put_collection(CID, JobCollection())
    now = from_ms(store.time_ms())
    every_minute = JobProperties.model_validate(
        {
            "startTime": now.isoformat(),
            "action": {"type": "Http", "request": {"uri": "http://a.test/", "method": "GET"}},
            "recurrence": {"frequency": "Minute", "interval": 1},
        }
    )
    for name in ("replaced", "disabled"):
        store.put_job(f"{CID}/{name}", every_minute, owner="admin", next_fire_ms=1)
    _plan_and_advance(claims, _claim_all(claims, "beat"))

    # When one is replaced (every hour now) and the other disabled, and both are due
    every_hour = JobProperties.model_validate(
        {**every_minute.model_dump(mode="json"), "recurrence": {"frequency": "Hour"}}
    )
    store.put_job(f"{CID}/replaced", every_hour, owner="admin", next_fire_ms=1)
    store.set_job_state(f"{CID}/disabled", JobState.DISABLED, None)
    store.redis.zadd(store.keys.due, {f"{CID}/replaced": 1, f"{CID}/disabled": 1})
    batch = _claim_all(claims, "beat")

    # Then the stale cadence is not followed: both come back to the beat to plan
    assert batch.scheduled == []
    assert sorted(c.jid for c in batch.claims) == [f"{CID}/disabled", f"{CID}/replaced"]


def test_a_dead_beats_advanced_claims_are_published_not_advanced_again(
    store: JobStore, claims: ClaimQueue
) -> None:
    # Given a job the claim script advanced for a beat that died before publishing it
    store.put_collection(CID, JobCollection())
    now = from_ms(store.time_ms())
    properties = JobProperties.model_validate(
        {
            "startTime": now.isoformat(),
            "action": {"type": "Http", "request": {"uri": "http://a.test/", "method": "GET"}},
            "recurrence": {"frequency": "Hour", "interval": 1},
        }
    )
    jid = f"{CID}/j"
    store.put_job(jid, properties, owner="admin", next_fire_ms=1)
    _plan_and_advance(claims, _claim_all(claims, "beat"))
    store.redis.zadd(store.keys.due, {jid: 5})
    dead = _claim_all(claims, "dead-beat")
    assert [s.jid for s in dead.scheduled] == [jid]
    next_fire = store.redis.zscore(store.keys.due, jid)

    # When another beat recovers the claim
    recovered = claims.recover_claims("live-beat", min_idle_ms=0, count=10)

    # Then it is to be published as claimed, and the job keeps its next occurrence
    assert recovered.scheduled == dead.scheduled
    assert recovered.claims == []
    claims.advance(recovered.stream_ids, [])
    assert store.redis.zscore(store.keys.due, jid) == next_fire
    assert not claims.recover_claims("third-beat", min_idle_ms=0, count=10).stream_ids
