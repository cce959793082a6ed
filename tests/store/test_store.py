"""The Redis store: atomic writes, exactly-once claims, schema versions, bounded history."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scheduler.domain.models import (
    HistoryEntry,
    JobCollection,
    JobExecutionStatus,
    JobHistoryActionName,
    JobProperties,
    JobState,
)
from scheduler.errors import JobNotFound, SchemaTooNew
from scheduler.store.claims import Advance, ClaimBatch, ClaimQueue
from scheduler.store.jobs import HISTORY_MAX_ENTRIES, Attempt, JobStore, Lease, NewJob
from scheduler.store.ledger import LedgerEntry
from tests.support.helpers import wait_until

CID = "sub/rg/coll"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def claims(store: JobStore) -> ClaimQueue:
    queue = ClaimQueue(store, 60_000)
    queue.ensure_claim_group()
    return queue


def job(uri: str = "http://example.test/") -> JobProperties:
    return JobProperties.model_validate(
        {"action": {"type": "http", "request": {"uri": uri, "method": "GET"}}}
    )


def add_jobs(store: JobStore, count: int, due_ms: int = 1, *, planned: bool = False) -> list[str]:
    """``count`` one-shot jobs, due; ``planned``: with a starting deadline, so that the beat
    plans them rather than the claim script (see tests/store/test_cadence.py)."""
    store.put_collection(CID, JobCollection())
    properties = job()
    if planned:
        properties = properties.model_copy(update={"starting_deadline": timedelta(hours=1)})
    jids = [f"{CID}/job{i}" for i in range(count)]
    for jid in jids:
        store.put_job(jid, properties, owner="admin", next_fire_ms=due_ms)
    return jids


def jids_of(batch: ClaimBatch) -> list[str]:
    """Every job a claim took, planned by the beat or advanced by the claim script."""
    return [c.jid for c in batch.claims] + [s.jid for s in batch.scheduled]


def attempt(jid: str, occurrence_ms: int, *, failed: bool, n: int = 0) -> Attempt:
    entry = HistoryEntry(
        start_time=T0,
        end_time=T0,
        expected_execution_time=T0,
        action_name=JobHistoryActionName.MAIN_ACTION,
        status=JobExecutionStatus.FAILED if failed else JobExecutionStatus.COMPLETED,
        message="m",
        retry_count=n,
    )
    return Attempt(
        jid=jid,
        occurrence_ms=occurrence_ms,
        tag=f"m{n}",
        entry_id=f"{occurrence_ms}-{n}",
        entry=entry,
        first_attempt=n == 0,
        failed=failed,
        faulted=failed,
        final_state=None,
        finished_ms=None,
    )


def test_put_then_get_round_trips_and_replace_keeps_the_counters(store: JobStore) -> None:
    # Given a job that ran once
    [jid] = add_jobs(store, 1)
    store.record_attempt(attempt(jid, 5, failed=False))

    # When it is replaced with a new definition
    created = store.put_job(jid, job("http://example.test/new"), owner="admin", next_fire_ms=9)

    # Then it was not created anew, the definition changed and the counters stayed
    record = store.get_job(jid)
    assert not created
    assert record.properties.action.request is not None
    assert record.properties.action.request.uri == "http://example.test/new"
    assert record.properties.status is not None
    assert record.properties.status.execution_count == 1
    assert record.gen == 2


def test_every_due_occurrence_is_claimed_exactly_once_by_concurrent_beats(
    store: JobStore, claims: ClaimQueue
) -> None:
    # Given 2,000 due jobs and four beats claiming at once
    jids = add_jobs(store, 2000)
    claimed: list[str] = []
    lock = threading.Lock()

    def beat(name: str) -> None:
        while True:
            batch = claims.claim_due(name, 97)
            if not batch:
                return
            with lock:
                claimed.extend(jids_of(batch))

    threads = [threading.Thread(target=beat, args=(f"beat{i}",)) for i in range(4)]

    # When they drain the due set
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then each job was claimed once
    assert sorted(claimed) == sorted(jids)


def test_claims_of_a_dead_beat_are_recovered_by_another(
    store: JobStore, claims: ClaimQueue
) -> None:
    # Given a beat that claimed three occurrences and died without acknowledging them
    add_jobs(store, 3)
    taken = claims.claim_due("dead-beat", 10)
    assert len(taken) == 3

    # When another beat looks for idle claims
    recovered = claims.recover_claims("live-beat", min_idle_ms=0, count=10)

    # Then it owns them, and once it has advanced them nothing is pending
    assert sorted(jids_of(recovered)) == sorted(jids_of(taken))
    claims.advance(recovered.stream_ids, [Advance(c, None) for c in recovered.claims])
    assert not claims.recover_claims("third-beat", min_idle_ms=0, count=10).stream_ids


def test_advance_reschedules_unless_the_job_was_replaced_or_disabled(
    store: JobStore, claims: ClaimQueue
) -> None:
    # Given three claimed jobs that the beat plans itself (a starting deadline)
    kept, replaced, disabled = add_jobs(store, 3, planned=True)
    batch = claims.claim_due("beat", 10)
    by_jid = {c.jid: c for c in batch.claims}

    # When one is replaced and one disabled before the beat advances them
    store.put_job(replaced, job(), owner="admin", next_fire_ms=777)
    store.put_job(
        disabled,
        job().model_copy(update={"state": JobState.DISABLED}),
        owner="admin",
        next_fire_ms=None,
    )
    claims.advance(
        batch.stream_ids,
        [
            Advance(by_jid[kept], 1000),
            Advance(by_jid[replaced], 1000),
            Advance(by_jid[disabled], 1000),
        ],
    )

    # Then only the untouched job takes the beat's next time; the replaced one keeps its
    # writer's, the disabled one is not scheduled
    due = dict(store.redis.zrange(store.keys.due, 0, -1, withscores=True))
    assert due == {kept: 1000, replaced: 777}


def test_concurrent_attempts_never_lose_an_increment(store: JobStore) -> None:
    # Given one job and 8 threads recording 50 occurrences each
    [jid] = add_jobs(store, 1)

    def record(worker: int) -> None:
        for i in range(50):
            store.record_attempt(attempt(jid, worker * 1000 + i, failed=i % 2 == 0))

    threads = [threading.Thread(target=record, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then the counters are exact
    status = store.get_job(jid).properties.status
    assert status is not None
    assert (status.execution_count, status.failure_count, status.faulted_count) == (400, 200, 200)


def test_history_is_newest_first_and_bounded(store: JobStore) -> None:
    [jid] = add_jobs(store, 1)
    for i in range(HISTORY_MAX_ENTRIES + 5):
        store.record_attempt(attempt(jid, i, failed=False))
    entries = store.history(jid, skip=0, top=1000)
    assert len(entries) == HISTORY_MAX_ENTRIES
    assert entries[0].entry_id == f"{HISTORY_MAX_ENTRIES + 4}-0"
    assert store.redis.llen(store.keys.history(jid)) == HISTORY_MAX_ENTRIES


def test_a_record_written_by_a_newer_takt_is_refused(store: JobStore) -> None:
    [jid] = add_jobs(store, 1)
    raw = json.loads(store.redis.hget(store.keys.job(jid), "def"))
    store.redis.hset(store.keys.job(jid), "def", json.dumps({**raw, "sv": 99}))
    with pytest.raises(SchemaTooNew, match="schema version 99"):
        store.get_job(jid)


def test_a_lease_is_taken_once_and_an_attempt_once_recorded_stays_taken(store: JobStore) -> None:
    [jid] = add_jobs(store, 1)
    m0, m1 = (LedgerEntry(jid, 5, n).member for n in (0, 1))
    store.redis.zadd(store.keys.ledger, {m0: 1, m1: 1})
    assert store.acquire_lease(jid, 5, "m0", 60_000, m0).taken
    busy = store.acquire_lease(jid, 5, "m0", 60_000, m0)
    assert (busy.taken, busy.done) == (False, False)
    assert 59_000 < busy.busy_ms <= 60_000
    store.record_attempt(attempt(jid, 5, failed=False))
    assert store.acquire_lease(jid, 5, "m0", 60_000, m0).done
    assert store.acquire_lease(jid, 5, "m1", 60_000, m1).taken


def test_an_attempt_is_recorded_once_though_two_workers_ran_it(store: JobStore) -> None:
    # Given an attempt whose first worker outlived its lease, so that a second redid it
    [jid] = add_jobs(store, 1)
    m0 = LedgerEntry(jid, 5).member
    store.redis.zadd(store.keys.ledger, {m0: 1})
    assert store.acquire_lease(jid, 5, "m0", 1, m0).taken
    wait_until(lambda: store.redis.pttl(store.keys.lease(jid, 5, "m0")) < 0, 5)
    assert store.acquire_lease(jid, 5, "m0", 60_000, m0).taken

    # When both record it (the second worker first)
    store.record_attempt(attempt(jid, 5, failed=False))
    store.record_attempt(attempt(jid, 5, failed=True))

    # Then history holds one entry, the first record's, and the counters count one
    [stored] = store.history(jid)
    assert stored.entry.status.value == "Completed"
    status = store.get_job(jid).properties.status
    assert status is not None
    assert (status.execution_count, status.failure_count) == (1, 0)


def test_deleting_a_job_removes_it_everywhere(store: JobStore) -> None:
    [jid] = add_jobs(store, 1)
    store.record_attempt(attempt(jid, 5, failed=False))
    store.delete_job(jid)
    with pytest.raises(JobNotFound):
        store.get_job(jid)
    assert store.redis.zscore(store.keys.due, jid) is None
    assert store.redis.exists(store.keys.history(jid)) == 0
    assert store.job_names(CID) == []


def test_put_jobs_creates_many_in_one_round_trip_and_wakes_the_beats_once(
    store: JobStore,
) -> None:
    # Given a beat-side listener on the wake-up channel
    store.put_collection(CID, JobCollection())
    listener = store.redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(store.keys.wake)

    # When 1,000 jobs are created in one call, one of them disabled
    jobs = [NewJob(f"{CID}/bulk{i}", job(), "admin", 10_000 + i) for i in range(999)]
    disabled = job().model_copy(update={"state": JobState.DISABLED})
    jobs.append(NewJob(f"{CID}/bulk-off", disabled, "admin", 5))
    created = store.put_jobs(jobs)

    # Then all exist, the enabled ones are due, and beats were woken once with the earliest
    assert created == [True] * 1000
    assert store.count_jobs(CID) == 1000
    assert store.redis.zcard(store.keys.due) == 999
    assert store.redis.zscore(store.keys.due, f"{CID}/bulk-off") is None
    wake = wait_until(lambda: listener.get_message(timeout=0.1), timeout=2)
    assert wake["data"] == "10000"
    assert listener.get_message(timeout=0.1) is None
    listener.close()


# -- a worker's first read: the job, its collection's state and the lease at once ------------


def owe(store: JobStore, jid: str, occurrence_ms: int, n: int = 0) -> str:
    """Enter one attempt into the execution ledger, as a beat hands it out; its member."""
    member = LedgerEntry(jid, occurrence_ms, n).member
    store.redis.zadd(store.keys.ledger, {member: 1})
    return member


def lease_expiry_ms(store: JobStore, jid: str, occurrence_ms: int, tag: str = "m0") -> int:
    """When the attempt's lease expires, by the store's clock (-1: no lease)."""
    pttl = int(store.redis.pttl(store.keys.lease(jid, occurrence_ms, tag)))
    return store.time_ms() + pttl if pttl > 0 else -1


def test_read_and_lease_reads_the_job_and_takes_its_lease_in_one_call(store: JobStore) -> None:
    # Given an enabled job in an enabled collection, with an owed attempt
    [jid] = add_jobs(store, 1)
    member = owe(store, jid, 5)

    # When a worker reads it with a lease of 65 s
    read = store.read_and_lease(jid, 5, "m0", 65_000, member)

    # Then it has the job, its collection's state and the lease, booked as taken until the
    # lease expires
    assert read.record().properties.action.request is not None
    assert read.collection_state == "Enabled"
    assert read.lease == Lease(taken=True)
    expiry = lease_expiry_ms(store, jid, 5)
    assert abs(expiry - store.time_ms() - 65_000) < 1_000
    assert abs(int(store.redis.zscore(store.keys.ledger_taken, member) or 0) - expiry) < 1_000


def test_read_and_lease_refuses_what_acquire_lease_refuses(store: JobStore) -> None:
    # Given an enabled job with one owed attempt
    [jid] = add_jobs(store, 1)
    member = owe(store, jid, 5)

    # When an attempt nobody handed out is read
    forged = store.read_and_lease(jid, 5, "m1", 65_000, LedgerEntry(jid, 5, 1).member)

    # Then it is not owed, and no lease of it is left behind
    assert forged.lease is not None
    assert (forged.lease.taken, forged.lease.owed) == (False, False)
    assert store.redis.exists(store.keys.lease(jid, 5, "m1")) == 0

    # And a second delivery of the owed attempt, while held, is busy until the lease expires
    assert store.read_and_lease(jid, 5, "m0", 65_000, member).lease == Lease(taken=True)
    busy = store.read_and_lease(jid, 5, "m0", 65_000, member).lease
    assert busy is not None
    assert (busy.taken, busy.done, busy.owed) == (False, False, True)
    assert 64_000 < busy.busy_ms <= 65_000

    # And once recorded, a delivery of it is done
    store.record_attempt(attempt(jid, 5, failed=False))
    assert store.read_and_lease(jid, 5, "m0", 65_000, member).lease == Lease(False, done=True)


@pytest.mark.parametrize("disabled", ["job", "collection"])
def test_read_and_lease_takes_no_lease_unless_job_and_collection_are_enabled(
    store: JobStore, disabled: str
) -> None:
    # Given an owed attempt of a job that is disabled, or whose collection is
    [jid] = add_jobs(store, 1)
    member = owe(store, jid, 5)
    if disabled == "job":
        store.set_job_state(jid, JobState.DISABLED, None)
    else:
        store.set_collection_state(CID, "Disabled")

    # When a worker reads it
    read = store.read_and_lease(jid, 5, "m0", 65_000, member)

    # Then it has the job and its collection's state, and no lease was taken or booked
    assert read.lease is None
    assert (read.record().state.value, read.collection_state) == (
        ("Disabled", "Enabled") if disabled == "job" else ("Enabled", "Disabled")
    )
    assert store.redis.exists(store.keys.lease(jid, 5, "m0")) == 0
    assert store.redis.zscore(store.keys.ledger_taken, member) is None


def test_read_and_lease_without_a_ttl_only_reads(store: JobStore) -> None:
    [jid] = add_jobs(store, 1)
    member = owe(store, jid, 5)
    assert store.read_and_lease(jid, 5, "m0", None, member).lease is None
    assert store.redis.exists(store.keys.lease(jid, 5, "m0")) == 0


def test_read_and_lease_of_a_deleted_job_is_not_found_and_takes_nothing(store: JobStore) -> None:
    [jid] = add_jobs(store, 1)
    member = owe(store, jid, 5)
    store.delete_job(jid)
    with pytest.raises(JobNotFound):
        store.read_and_lease(jid, 5, "m0", 65_000, member)
    assert store.redis.exists(store.keys.lease(jid, 5, "m0")) == 0


def test_set_lease_ttl_moves_a_held_lease_and_its_taken_deadline_only(store: JobStore) -> None:
    # Given a held lease of 65 s
    [jid] = add_jobs(store, 1)
    member = owe(store, jid, 5)
    store.read_and_lease(jid, 5, "m0", 65_000, member)

    # When its attempt's action turns out to have a timeout of 10 minutes
    assert store.set_lease_ttl(jid, 5, "m0", 605_000, member)

    # Then the lease and the taken deadline both end 605 s from now
    expiry = lease_expiry_ms(store, jid, 5)
    assert abs(expiry - store.time_ms() - 605_000) < 1_000
    assert abs(int(store.redis.zscore(store.keys.ledger_taken, member) or 0) - expiry) < 1_000

    # And a recorded attempt's lease stays done, and is booked nowhere again
    store.record_attempt(replace(attempt(jid, 5, failed=False), ledger_member=member))
    assert not store.set_lease_ttl(jid, 5, "m0", 605_000, member)
    assert store.redis.get(store.keys.lease(jid, 5, "m0")) == "done"
    assert store.redis.zscore(store.keys.ledger_taken, member) is None


def test_a_definition_changed_in_any_way_is_read_anew(store: JobStore) -> None:
    # Given a job a worker has read once (so its validated definition may be kept)
    [jid] = add_jobs(store, 1)

    def uri() -> str:
        request = store.read_and_lease(jid, 5, "m0", None, "").record().properties.action.request
        assert request is not None
        return request.uri

    assert uri() == "http://example.test/"

    # When it is replaced, its generation rising
    store.put_job(jid, job("http://example.test/replaced"), owner="admin", next_fire_ms=None)
    # Then the new definition is read
    assert uri() == "http://example.test/replaced"

    # When it is deleted and created anew, twice over, its generation back where it was
    replaced_gen = store.get_job(jid).gen
    store.delete_job(jid)
    store.put_job(jid, job("http://example.test/one"), owner="admin", next_fire_ms=None)
    store.put_job(jid, job("http://example.test/two"), owner="admin", next_fire_ms=None)
    assert store.get_job(jid).gen == replaced_gen
    # Then the new definition is read, though its generation is one read before
    assert uri() == "http://example.test/two"

    # When its definition is rewritten behind the API's back, the generation left as it was
    definition = json.loads(str(store.redis.hget(store.keys.job(jid), "def")))
    definition["action"]["request"]["uri"] = "http://example.test/tampered"
    store.redis.hset(store.keys.job(jid), "def", json.dumps(definition))
    # Then the rewritten definition is read
    assert uri() == "http://example.test/tampered"


def test_a_jobs_state_and_counters_are_read_fresh_though_its_definition_is_kept(
    store: JobStore,
) -> None:
    # Given a job a worker has read once
    [jid] = add_jobs(store, 1)
    gen = store.get_job(jid).gen
    first = store.read_and_lease(jid, 5, "m0", None, "").record()
    assert first.properties.status is not None
    assert first.properties.status.execution_count == 0

    # When an attempt is recorded (the job's generation stays as it was)
    store.record_attempt(attempt(jid, 5, failed=False))
    # Then the next read has the new counters
    again = store.read_and_lease(jid, 6, "m0", None, "").record()
    assert again.properties.status is not None
    assert again.properties.status.execution_count == 1

    # When the job reaches its final state in an attempt's record
    store.record_attempt(
        replace(attempt(jid, 6, failed=False), final_state=JobState.COMPLETED, finished_ms=6)
    )
    # Then the next read has it
    assert store.read_and_lease(jid, 7, "m0", None, "").record().state is JobState.COMPLETED
    # And none of it changed the generation, and the first record kept what it read
    assert store.get_job(jid).gen == gen
    assert first.properties.status.execution_count == 0
    assert first.state is JobState.ENABLED


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every job definition validated from now on."""
    seen: list[object] = []
    validate = JobProperties.model_validate

    def counted(*args: Any, **kwargs: Any) -> JobProperties:
        seen.append(args[0])
        return validate(*args, **kwargs)

    monkeypatch.setattr(JobProperties, "model_validate", counted)
    return seen


def test_a_recurring_jobs_definition_is_validated_once_per_process(
    store: JobStore, validated: list[object]
) -> None:
    # Given a job, and a count of the definitions validated
    [jid] = add_jobs(store, 1)
    validated.clear()

    # When a worker reads it for three attempts, each recorded before the next
    for occurrence_ms in (5, 6, 7):
        store.read_and_lease(jid, occurrence_ms, "m0", None, "").record()
        store.record_attempt(attempt(jid, occurrence_ms, failed=False))

    # Then its definition was validated once
    assert len(validated) == 1


def test_a_long_definition_is_validated_on_every_read_not_kept(
    store: JobStore, validated: list[object]
) -> None:
    # Given a job whose stored definition is longer than a kept one may be (a big body)
    store.put_collection(CID, JobCollection())
    jid = f"{CID}/big"
    request = {"uri": "http://example.test/", "method": "POST", "body": "x" * 8000}
    properties = JobProperties.model_validate({"action": {"type": "Http", "request": request}})
    store.put_job(jid, properties, owner="admin", next_fire_ms=None)
    validated.clear()

    # When a worker reads it three times
    for occurrence_ms in (5, 6, 7):
        store.read_and_lease(jid, occurrence_ms, "m0", None, "").record()

    # Then each read validated it: the process keeps no copy of it
    assert len(validated) == 3
