"""The execution ledger: attempts handed to the broker are owed until a worker records them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from beat.redelivery import Redelivery
from scheduler.clock import to_ms, utcnow
from scheduler.dispatch.routing import task_id_for
from scheduler.domain.models import (
    HistoryEntry,
    JobCollection,
    JobExecutionStatus,
    JobHistoryActionName,
    JobProperties,
    JobState,
)
from scheduler.settings import TaktSettings
from scheduler.store.claims import Advance, ClaimQueue
from scheduler.store.jobs import Attempt, JobStore
from scheduler.store.ledger import Ledger, LedgerEntry
from tests.support.deployments import Deployment
from tests.support.helpers import HttpTarget, wait_until
from workers.app import create_celery_app

CID = "s/rg/c"
PERIOD_MS = 60_000


def _http_job(uri: str = "http://127.0.0.1:9/x") -> JobProperties:
    return JobProperties.model_validate(
        {"action": {"type": "Http", "request": {"uri": uri, "method": "GET"}}}
    )


def _ledger(store: JobStore) -> dict[str, int]:
    return {
        str(m): int(s) for m, s in store.redis.zrange(store.keys.ledger, 0, -1, withscores=True)
    }


def test_a_claimed_occurrence_is_owed_until_the_beat_decides_not_to_run_it(
    store: JobStore,
) -> None:
    # Given two jobs due now that the beat plans itself (a starting deadline)
    store.put_collection(CID, JobCollection())
    now_ms = store.time_ms()
    planned = _http_job().model_copy(update={"starting_deadline": timedelta(hours=1)})
    store.put_job(f"{CID}/on", planned, owner="admin", next_fire_ms=now_ms - 10)
    store.put_job(f"{CID}/off", planned, owner="admin", next_fire_ms=now_ms - 10)
    claims = ClaimQueue(store, PERIOD_MS)
    claims.ensure_claim_group()

    # When a beat claims them
    batch = claims.claim_due("beat", 10)
    claimed_at, taken = batch.now_ms, batch.claims

    # Then both first attempts are owed one period from Redis's now
    assert _ledger(store) == {
        f"{CID}/on|m|{now_ms - 10}|0|s": claimed_at + PERIOD_MS,
        f"{CID}/off|m|{now_ms - 10}|0|s": claimed_at + PERIOD_MS,
    }
    assert {claim.ledger_member for claim in taken} == set(_ledger(store))

    # And the one the beat does not publish leaves the ledger when it advances
    off = next(claim for claim in taken if claim.jid.endswith("off"))
    claims.advance(batch.stream_ids, [Advance(claim, None) for claim in taken], [off])
    assert list(_ledger(store)) == [f"{CID}/on|m|{now_ms - 10}|0|s"]


def test_recording_an_attempt_pays_it_and_owes_the_one_that_follows(store: JobStore) -> None:
    # Given an owed first attempt
    store.put_collection(CID, JobCollection())
    store.put_job(f"{CID}/j", _http_job(), owner="admin", next_fire_ms=None)
    ledger = Ledger(store, PERIOD_MS)
    first = LedgerEntry(f"{CID}/j", 1_000)
    ledger.expect(first, now_ms=5_000)
    assert ledger.due_at(first) == 5_000 + PERIOD_MS

    # When the worker records it failed, with a retry due in 30 s
    now = utcnow()
    retry = LedgerEntry(f"{CID}/j", 1_000, attempt=1)
    retry_due = to_ms(now + timedelta(seconds=30)) + PERIOD_MS
    store.record_attempt(
        Attempt(
            jid=f"{CID}/j",
            occurrence_ms=1_000,
            tag="m0",
            entry_id="1000-m0",
            entry=HistoryEntry(
                start_time=now,
                end_time=now,
                expected_execution_time=now,
                action_name=JobHistoryActionName.MAIN_ACTION,
                status=JobExecutionStatus.FAILED,
                message="500",
                retry_count=0,
            ),
            first_attempt=True,
            failed=True,
            faulted=False,
            final_state=None,
            finished_ms=None,
            ledger_member=first.member,
            follow_up=(retry.member, retry_due),
        )
    )

    # Then the first attempt is paid and the retry is owed from its own due time
    assert ledger.due_at(first) is None
    assert _ledger(store) == {f"{CID}/j|m|1000|1|s": retry_due}
    assert LedgerEntry.parse(retry.member) == retry


@pytest.fixture
def redelivery(settings: TaktSettings, store: JobStore) -> Iterator[Redelivery]:
    app = create_celery_app(settings)
    yield Redelivery(app, store, Ledger(store, PERIOD_MS), batch=100)
    store.redis.delete(f"{settings.key_prefix}.http")


def test_an_overdue_attempt_waits_while_its_queue_has_a_backlog_then_is_sent_again(
    store: JobStore, redelivery: Redelivery, settings: TaktSettings
) -> None:
    # Given an owed attempt whose time has come, and a queue holding another message
    store.put_collection(CID, JobCollection())
    store.put_job(f"{CID}/j", _http_job(), owner="admin", next_fire_ms=None)
    owed = LedgerEntry(f"{CID}/j", 1_000, manual=True)
    redelivery.ledger.expect(owed, now_ms=store.time_ms() - PERIOD_MS - 1)
    queue = f"{settings.key_prefix}.http"
    store.redis.lpush(queue, "someone else's message")

    # When a beat looks at the ledger, it does not send it, and looks again a period later
    assert redelivery.run() == 0
    pushed_to = redelivery.ledger.due_at(owed)
    assert pushed_to is not None
    assert pushed_to > store.time_ms() + PERIOD_MS - 5_000

    # And once the queue is empty and the time comes again, the attempt is sent again
    store.redis.delete(queue)
    redelivery.ledger.expect(owed, now_ms=store.time_ms() - PERIOD_MS - 1)
    assert redelivery.run() == 1
    message = json.loads(store.redis.lpop(queue))
    assert message["headers"]["id"] == task_id_for(f"{CID}/j", 1_000, manual=True)
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([f"{CID}/j", 1_000], {"manual": True})
    assert redelivery.ledger.due_at(owed) is not None  # still owed until recorded


def test_after_a_failover_every_attempt_is_sent_again_at_once_by_one_beat(
    store: JobStore, redelivery: Redelivery, settings: TaktSettings
) -> None:
    # Given two attempts owed a whole period from now, one of them taken by a worker, and
    # a queue that holds a backlog (their messages may be in it, or gone with the primary)
    store.put_collection(CID, JobCollection())
    store.put_job(f"{CID}/j", _http_job(), owner="admin", next_fire_ms=None)
    first, second = LedgerEntry(f"{CID}/j", 1_000), LedgerEntry(f"{CID}/j", 2_000)
    for entry in (first, second):
        redelivery.ledger.expect(entry, now_ms=store.time_ms())
    store.redis.zadd(store.keys.ledger_taken, {second.member: store.time_ms() + PERIOD_MS})
    queue = f"{settings.key_prefix}.http"
    store.redis.lpush(queue, "someone else's message")
    assert redelivery.after_history_change("a" * 40) == 0  # the first id seen: recorded
    assert redelivery.after_history_change("a" * 40) == 0  # the same history

    # When the store's history changes (a failover), and two beats see it
    sent = redelivery.after_history_change("b" * 40)
    again = redelivery.after_history_change("b" * 40)

    # Then one of them sends both again at once, despite the backlog, and the other none
    assert (sent, again) == (2, 0)
    ids = {json.loads(m)["headers"]["id"] for m in store.redis.lrange(queue, 0, 1)}
    assert ids == {task_id_for(f"{CID}/j", 1_000), task_id_for(f"{CID}/j", 2_000)}
    # ... they stay owed (until recorded), due a period later, and no longer taken
    for entry in (first, second):
        due = redelivery.ledger.due_at(entry)
        assert due is not None
        assert due > store.time_ms() + PERIOD_MS - 5_000
    assert store.redis.zcard(store.keys.ledger_taken) == 0


def test_a_beat_looks_at_the_stores_history_as_it_looks_for_orphans(
    store: JobStore, settings: TaktSettings
) -> None:
    # Given a beat, and a deployment whose beats saw another history than the store's
    from beat.scheduler import JobScheduler

    app = create_celery_app(settings)
    beat = JobScheduler(app, lazy=True)
    beat.claims.ensure_claim_group()
    try:
        store.put_collection(CID, JobCollection())
        store.put_job(f"{CID}/j", _http_job(), owner="admin", next_fire_ms=None)
        owed = LedgerEntry(f"{CID}/j", 3_000)
        beat.redelivery.ledger.expect(owed, now_ms=store.time_ms())
        store.redis.set(store.keys.ledger_history, "0" * 40)

        # When it looks for orphans (once a second)
        beat._recover_orphans()

        # Then it has sent the attempt again and recorded the store's replication id
        assert store.redis.llen(f"{settings.key_prefix}.http") == 1
        assert store.redis.get(store.keys.ledger_history) == store.history_id()
        assert len(store.history_id()) == 40
    finally:
        beat.close()
        store.redis.delete(f"{settings.key_prefix}.http")


def test_an_attempt_whose_worker_stopped_is_sent_again_once_its_lease_expires_despite_a_backlog(
    store: JobStore, redelivery: Redelivery, settings: TaktSettings
) -> None:
    # Given an attempt owed for a whole period yet, taken by a worker with a 300 ms lease,
    # and a queue holding another message
    store.put_collection(CID, JobCollection())
    store.put_job(f"{CID}/j", _http_job(), owner="admin", next_fire_ms=None)
    taken = LedgerEntry(f"{CID}/j", 1_000)
    redelivery.ledger.expect(taken, now_ms=store.time_ms())
    assert store.acquire_lease(f"{CID}/j", 1_000, "m0", 300, taken.member).taken
    queue = f"{settings.key_prefix}.http"
    store.redis.lpush(queue, "someone else's message")

    # When a beat looks before the lease expires, nothing is sent
    assert redelivery.run() == 0

    # Then once it has expired (the worker stopped without a record), the attempt is sent
    # again at once, though its queue holds a backlog, and it is no longer booked as taken
    wait_until(lambda: store.redis.pttl(store.keys.lease(f"{CID}/j", 1_000, "m0")) < 0, 5)
    assert redelivery.run() == 1
    assert store.redis.llen(queue) == 2
    assert store.redis.zcard(store.keys.ledger_taken) == 0
    assert redelivery.ledger.due_at(taken) is not None  # still owed until recorded
    # ... and sent once: a second look finds nothing to send
    assert redelivery.run() == 0


def test_a_taken_attempt_recorded_by_an_older_worker_is_dropped_not_sent_again(
    store: JobStore,
) -> None:
    # Given an attempt taken with a 1 ms lease and recorded by a worker of a version that
    # knew no taken set (its record left the ledger only, as during a rolling upgrade)
    ledger = Ledger(store, PERIOD_MS)
    done = LedgerEntry(f"{CID}/j", 2_000)
    ledger.expect(done, now_ms=store.time_ms())
    assert store.acquire_lease(f"{CID}/j", 2_000, "m0", 1, done.member).taken
    store.redis.zrem(store.keys.ledger, done.member)
    wait_until(lambda: store.redis.pttl(store.keys.lease(f"{CID}/j", 2_000, "m0")) < 0, 5)

    # Then the ledger owes nothing, and the taken set forgets it
    assert ledger.owed(100) == ([], [])
    assert store.redis.zcard(store.keys.ledger_taken) == 0


def test_an_attempt_of_a_deleted_job_is_no_longer_owed(
    store: JobStore, redelivery: Redelivery
) -> None:
    gone = LedgerEntry(f"{CID}/gone", 1_000)
    redelivery.ledger.expect(gone, now_ms=store.time_ms() - PERIOD_MS - 1)
    assert redelivery.run() == 0
    assert redelivery.ledger.due_at(gone) is None


@pytest.mark.e2e
def test_a_message_lost_between_broker_and_worker_is_delivered_again_and_runs_once(
    redis_url: str, tmp_path: Path, target: HttpTarget
) -> None:
    # Given a job with two occurrences 2 s apart, a beat that published the first, and
    # that message lost on its way to a worker (popped, as by a worker SIGKILLed after
    # BRPOP)
    broker = f"{redis_url}/7"
    with Deployment(redis_url, tmp_path, broker_url=broker) as deployment:
        deployment.spawn("beat")
        store = JobStore.from_url(redis_url, deployment.prefix)
        store.put_collection(CID, JobCollection())
        start = utcnow().replace(microsecond=0) + timedelta(seconds=1)
        job = JobProperties.model_validate(
            {
                "startTime": start.isoformat(),
                "action": {
                    "type": "Http",
                    "request": {"uri": f"{target.url}/lost", "method": "GET"},
                },
                "recurrence": {"frequency": "Second", "interval": 2, "count": 2},
            }
        )
        store.put_job(f"{CID}/lost", job, owner="admin", next_fire_ms=to_ms(start))
        queue = f"{deployment.prefix}.http"
        broker_store = JobStore.from_url(broker, deployment.prefix)
        lost = wait_until(lambda: broker_store.redis.lpop(queue), timeout=15, message="publish")
        assert json.loads(base64.b64decode(json.loads(lost)["body"]))[0][1] == to_ms(start)

        # When a worker starts (it runs the second occurrence, the job's last, at once)
        deployment.spawn("worker", "-c", "2", "--without-mingle", "--without-gossip")

        # Then, after the redelivery timeout (9 s here), the first runs too, once, though
        # the job was Completed by then
        entries = wait_until(
            lambda: len(e := store.history(f"{CID}/lost")) == 2 and e,
            timeout=30,
            message="both occurrences",
        )
        second = to_ms(start) + 2_000
        assert [
            (to_ms(e.entry.expected_execution_time), e.entry.status.value, e.entry.retry_count)
            for e in entries
        ] == [(to_ms(start), "Completed", 0), (second, "Completed", 0)]
        assert len(target.requests_to("/lost")) == 2
        assert store.get_job(f"{CID}/lost").state is JobState.COMPLETED
        assert _ledger(store) == {}
        broker_store.close()
        store.close()


def test_a_server_that_refuses_info_leaves_the_history_step_out(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a server (a proxy, a managed service) that refuses INFO
    import redis

    def refused(*_: object, **__: object) -> None:
        raise redis.ResponseError("unknown command 'INFO'")

    monkeypatch.setattr(store.redis, "info", refused)

    # Then the store cannot tell its history, rather than fail the beat's tick
    assert store.history_id() is None
