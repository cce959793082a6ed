"""The claim script follows a plain interval's cadence exactly as the beat would plan it.

A job whose rule is a plain interval under the default missed-run policy carries a
cadence, stamped with its gen by the store when it is written (and by the beat when the gen
moved alone); the claim script then puts it back at its next occurrence itself (see
CLAIM_DUE). These tests hold its arithmetic, run in Valkey, to the beat's own planning in
Python, over rules with odd steps, microsecond start times, counts and end times.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from beat.scheduler import _plan
from scheduler.clock import from_ms, to_ms
from scheduler.domain.models import JobCollection, JobProperties, JobState
from scheduler.domain.planning import plan_dispatch
from scheduler.store.claims import Advance, ClaimBatch, ClaimQueue
from scheduler.store.jobs import JobStore
from scheduler.store.scripts import CADENCE_NEXT

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
    """One claim that took everything due at its own instant.

    Checked on the due set rather than by claiming again: a job on a one-second rule that
    the claim put back may fall due again before a second claim on a slow machine."""
    batch = claims.claim_due(beat, 1_000)
    due = claims.store.keys.due
    assert claims.store.redis.zrangebyscore(due, "-inf", batch.now_ms) == []
    return batch


def _plan_and_advance(claims: ClaimQueue, batch: ClaimBatch) -> dict[str, str]:
    """The beat's slow path for a whole batch; returns each job's cadence."""
    done = []
    for claim in batch.claims:
        plan = _plan(claim.definition, claim.start)
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
    pytest.param(_T, 0, 0, "", "", id="one-shot"),
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


def _mismatches(store: JobStore, batch: ClaimBatch) -> list[tuple[str, int, Any, Any, Any]]:
    """The claims the script advanced differently from the beat's own planning."""
    due = {jid: int(ms) for jid, ms in store.redis.zrange(store.keys.due, 0, -1, withscores=True)}
    found = []
    for jid, occurrence_ms, _, _ in batch.scheduled:
        plan = _plan(*store.redis.hmget(store.keys.job(jid), "def", "startTime"))
        decision = plan_dispatch(
            plan.shape, from_ms(occurrence_ms), from_ms(batch.now_ms), plan.next_after
        )
        expected = None if decision.next_fire is None else to_ms(decision.next_fire)
        stored = store.redis.hget(store.keys.job(jid), "nextExecutionTime")
        if (due.get(jid), stored, decision.run) != (expected, str(expected or ""), True):
            found.append((jid, occurrence_ms, expected, due.get(jid), stored))
    return found


def test_the_claim_script_advances_plain_intervals_as_the_beat_plans_them(
    store: JobStore, claims: ClaimQueue
) -> None:
    # Given 400 jobs on random plain intervals, written through the store
    rng = random.Random(20261123)
    store.put_collection(CID, JobCollection())
    now = from_ms(store.time_ms())
    jids = [f"{CID}/j{i}" for i in range(400)]
    for jid in jids:
        properties = JobProperties.model_validate(_random_job(rng, now))
        store.put_job(jid, properties, owner="admin", next_fire_ms=1)

    # When they are claimed long after they were due
    first = _claim_all(claims, "beat")

    # Then the claim script advanced every one, to the beat's own next occurrence
    assert first.claims == []
    assert sorted(s.jid for s in first.scheduled) == sorted(jids)
    assert {s.action_type for s in first.scheduled} == {"Http"}
    assert _mismatches(store, first) == []

    # And so it does when each is due again at a random instant
    occurrences = {jid: to_ms(now) - rng.randrange(0, 10**10) for jid in jids}
    store.redis.zadd(store.keys.due, occurrences)
    again = _claim_all(claims, "beat")
    assert {s.jid: s.occurrence_ms for s in again.scheduled} == occurrences
    assert _mismatches(store, again) == []


def test_other_rules_and_policies_stay_with_the_beat(store: JobStore, claims: ClaimQueue) -> None:
    # Given jobs the claim script cannot plan: a calendar rule, a missed-run policy other
    # than RunOnce, and starting deadlines
    store.put_collection(CID, JobCollection())
    start = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    action = {"type": "Http", "request": {"uri": "http://example.test/", "method": "GET"}}
    minutely = {"frequency": "Minute", "interval": 1}
    shapes = {
        "calendar": {"recurrence": {"frequency": "Month", "schedule": {"monthDays": [1]}}},
        "skip": {"recurrence": minutely, "missedRunPolicy": "Skip"},
        "deadline": {"recurrence": minutely, "startingDeadline": "PT1H"},
        "once-with-deadline": {"startingDeadline": "PT1H"},
    }
    for name, extra in shapes.items():
        properties = JobProperties.model_validate({"startTime": start, "action": action, **extra})
        store.put_job(f"{CID}/{name}", properties, owner="admin", next_fire_ms=1)

    # When the beat has planned them once and they are due again
    cadences = _plan_and_advance(claims, _claim_all(claims, "beat"))
    store.redis.zadd(store.keys.due, {f"{CID}/{name}": 1 for name in shapes})
    batch = _claim_all(claims, "beat")

    # Then none has a cadence, and each comes back to the beat with its definition
    assert cadences == {f"{CID}/{name}": "" for name in shapes}
    assert batch.scheduled == []
    assert sorted(c.jid for c in batch.claims) == sorted(f"{CID}/{name}" for name in shapes)
    assert all(c.definition for c in batch.claims)


def test_a_one_shot_job_is_run_by_the_claim_script_and_not_put_back(
    store: JobStore, claims: ClaimQueue
) -> None:
    # Given a one-shot job, due
    store.put_collection(CID, JobCollection())
    jid = f"{CID}/once"
    action = {"type": "Http", "request": {"uri": "http://a.test/", "method": "GET"}}
    once = JobProperties.model_validate({"startTime": "2026-01-01T00:00:00Z", "action": action})
    store.put_job(jid, once, owner="admin", next_fire_ms=1)

    # When it is claimed
    batch = _claim_all(claims, "beat")

    # Then the script ran it without the beat, as the beat would, and it fires no more
    assert [(s.jid, s.occurrence_ms, s.action_type) for s in batch.scheduled] == [(jid, 1, "Http")]
    assert batch.claims == []
    assert store.redis.zscore(store.keys.due, jid) is None
    assert store.redis.hget(store.keys.job(jid), "nextExecutionTime") == ""
    assert _mismatches(store, batch) == []


def _every(frequency: str, start: datetime) -> JobProperties:
    return JobProperties.model_validate(
        {
            "startTime": start.isoformat(),
            "action": {"type": "Http", "request": {"uri": "http://a.test/", "method": "GET"}},
            "recurrence": {"frequency": frequency, "interval": 1},
        }
    )


def test_a_replaced_job_follows_its_new_cadence_and_a_disabled_one_goes_to_the_beat(
    store: JobStore, claims: ClaimQueue
) -> None:
    # Given two jobs every minute
    store.put_collection(CID, JobCollection())
    start = from_ms(store.time_ms()) - timedelta(days=1)
    for name in ("replaced", "disabled"):
        store.put_job(f"{CID}/{name}", _every("Minute", start), owner="admin", next_fire_ms=1)

    # When one is replaced by a job every hour and the other disabled, and both are due
    store.put_job(f"{CID}/replaced", _every("Hour", start), owner="admin", next_fire_ms=1)
    store.set_job_state(f"{CID}/disabled", JobState.DISABLED, None)
    store.redis.zadd(store.keys.due, {f"{CID}/replaced": 1, f"{CID}/disabled": 1})
    batch = _claim_all(claims, "beat")

    # Then the replaced one is put back on the hour; the disabled one goes to the beat
    assert [s.jid for s in batch.scheduled] == [f"{CID}/replaced"]
    assert _mismatches(store, batch) == []
    next_ms = store.redis.zscore(store.keys.due, f"{CID}/replaced")
    assert next_ms is not None
    assert (next_ms - to_ms(start)) % 3_600_000 == 0
    assert [c.jid for c in batch.claims] == [f"{CID}/disabled"]


def test_the_beat_stamps_the_cadence_again_when_the_gen_moved_alone(
    store: JobStore, claims: ClaimQueue
) -> None:
    # Given a job disabled and enabled again: a new gen, the same definition
    store.put_collection(CID, JobCollection())
    jid = f"{CID}/j"
    store.put_job(jid, _every("Minute", from_ms(store.time_ms())), owner="admin", next_fire_ms=1)
    store.set_job_state(jid, JobState.DISABLED, None)
    store.set_job_state(jid, JobState.ENABLED, 1)

    # When it is due, Then the beat plans it (the cadence's gen is stale) and stamps it
    batch = _claim_all(claims, "beat")
    assert [c.jid for c in batch.claims] == [jid]
    assert _plan_and_advance(claims, batch)[jid]

    # And the next time it is due, the claim script advances it itself
    store.redis.zadd(store.keys.due, {jid: 1})
    again = _claim_all(claims, "beat")
    assert [s.jid for s in again.scheduled] == [jid]
    assert _mismatches(store, again) == []


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
