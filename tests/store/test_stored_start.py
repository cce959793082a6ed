"""A job's start time lives in a hash field of its own (``startTime``), out of its stored
definition, so the beat reads it without cutting JSON; a job stored before that field,
with its start inside the definition, is still read, claimed and planned as it was."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from beat.scheduler import _plan
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.store.claims import ClaimQueue
from scheduler.store.jobs import JobStore

CID = "sub/rg/start"
_ACTION = {"type": "Http", "request": {"uri": "http://a.test/", "method": "GET"}}
_MONTHLY = {"frequency": "Month", "schedule": {"monthDays": [1]}}  # planned by the beat


def _monthly(start: datetime) -> JobProperties:
    return JobProperties.model_validate(
        {"startTime": start.isoformat(), "action": _ACTION, "recurrence": _MONTHLY}
    )


def _as_stored_before(store: JobStore, jid: str) -> None:
    """Rewrite a job as the previous Takt stored it: the start first in the definition
    (after ``sv``), and no ``startTime`` field."""
    key = store.keys.job(jid)
    definition = json.loads(store.redis.hget(key, "def"))
    start = store.redis.hget(key, "startTime")
    old = {"sv": definition.pop("sv"), "startTime": start, **definition}
    store.redis.hset(key, "def", json.dumps(old, separators=(",", ":")))
    store.redis.hdel(key, "startTime")


def test_jobs_that_differ_only_in_their_start_store_one_definition(store: JobStore) -> None:
    # Given two jobs of one shape with different starts
    store.put_collection(CID, JobCollection())
    first = datetime(2026, 1, 1, tzinfo=UTC)
    for name, start in (("a", first), ("b", first + timedelta(milliseconds=7))):
        store.put_job(f"{CID}/{name}", _monthly(start), owner="admin", next_fire_ms=None)

    # Then their definitions are equal, each start is in its own field, and each reads back
    a, b = (store.redis.hmget(store.keys.job(f"{CID}/{n}"), "def", "startTime") for n in "ab")
    assert a[0] == b[0]
    assert "startTime" not in json.loads(a[0])
    assert (a[1], b[1]) == ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.007000Z")
    assert store.get_job(f"{CID}/b").properties.start_time == first + timedelta(milliseconds=7)


def test_a_job_stored_before_the_start_field_is_read_claimed_and_planned_as_before(
    store: JobStore,
) -> None:
    # Given the same job stored now and as the previous Takt stored it
    store.put_collection(CID, JobCollection())
    start = datetime(2026, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)
    for name in ("new", "old"):
        store.put_job(f"{CID}/{name}", _monthly(start), owner="admin", next_fire_ms=1)
    _as_stored_before(store, f"{CID}/old")

    # When both are read, and claimed and planned by a beat
    assert store.get_job(f"{CID}/old").properties == store.get_job(f"{CID}/new").properties
    claims = ClaimQueue(store, 60_000)
    claims.ensure_claim_group()
    batch = claims.claim_due("beat", 10)

    # Then the old one comes with its start in its definition and is planned the same way
    found = {claim.jid.rsplit("/", 1)[1]: claim for claim in batch.claims}
    assert (found["new"].start, found["old"].start) == ("2026-01-01T00:00:00.123000Z", "")
    plans = {name: _plan(claim.definition, claim.start) for name, claim in found.items()}
    after = datetime(2026, 5, 17, tzinfo=UTC)
    assert plans["old"].next_after is not None
    assert plans["new"].next_after is not None
    assert plans["old"].next_after(after) == plans["new"].next_after(after)
    assert plans["old"].shape.start == start
