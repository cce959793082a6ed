"""VerifyStore while a beat holds claims: a claimed job is scheduled, not lost."""

from __future__ import annotations

from scheduler.domain.models import JobCollection, JobProperties
from scheduler.store.claims import ClaimQueue
from scheduler.store.jobs import JobStore
from scheduler.store.verification import verify_store

CID = "sub/rg/verify"


def test_a_job_a_beat_holds_is_not_reported_lost(store: JobStore) -> None:
    # Given a job the beat plans itself (a calendar rule), due, and claimed by a beat that
    # has not put it back yet: it is in the claims stream, not in the due set
    store.put_collection(CID, JobCollection())
    monthly = JobProperties.model_validate(
        {
            "startTime": "2026-01-01T00:00:00Z",
            "action": {"type": "Http", "request": {"uri": "http://a.test/", "method": "GET"}},
            "recurrence": {"frequency": "Month", "schedule": {"monthDays": [1]}},
        }
    )
    store.put_job(f"{CID}/j", monthly, owner="admin", next_fire_ms=1)
    claims = ClaimQueue(store, 60_000)
    claims.ensure_claim_group()
    assert [c.jid for c in claims.claim_due("beat", 10).claims] == [f"{CID}/j"]

    # When the store is verified, Then it is consistent
    assert verify_store(store) == []
