"""One attempt's read and lease (issue 15): a worker reads the job and takes the attempt's
lease in one round trip to the store, and the lease keeps every guarantee it gave when it
was a round trip of its own: nothing the ledger does not owe runs, a copy delivered while
the attempt is held waits, a recorded attempt runs no more, a job that may not run leaves
no lease behind, and the lease lasts the action's own timeout."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis.connection import Connection

from scheduler.clock import from_ms
from scheduler.domain.models import (
    JobCollection,
    JobProperties,
    JobState,
)
from scheduler.settings import LEASE_MARGIN_S, TaktSettings
from scheduler.store.jobs import JobStore
from tests.support.attempts import record_completed
from tests.support.helpers import HttpTarget, wait_until
from workers.attempt import RunRequest
from workers.context import WorkerContext
from workers.execution import Verdict, execute

CID = "s/rg/leases"
MARGIN_MS = int(LEASE_MARGIN_S * 1000)


@pytest.fixture
def ctx(settings: TaktSettings) -> Iterator[WorkerContext]:
    context = WorkerContext(settings, publish=lambda *_: None, send_task=lambda *_: None)
    yield context
    context.close()


def _add(store: JobStore, name: str, uri: str, **request: Any) -> str:
    """A job calling ``uri`` every minute (so that it stays Enabled as its attempts run)."""
    store.put_collection(CID, JobCollection())
    jid = f"{CID}/{name}"
    properties = JobProperties.model_validate(
        {
            "action": {"type": "Http", "request": {"uri": uri, "method": "POST", **request}},
            "recurrence": {"frequency": "Minute", "interval": 1},
        }
    )
    store.put_job(jid, properties, owner="admin", next_fire_ms=None)
    return jid


def _owed(ctx: WorkerContext, run: RunRequest) -> RunRequest:
    """``run``, entered in the execution ledger as a beat (or a failed attempt) hands it out."""
    ctx.ledger.expect(run.ledger_entry, ctx.store.time_ms())
    return run


def _lease_left_ms(store: JobStore, run: RunRequest) -> int:
    return int(store.redis.pttl(store.keys.lease(run.jid, run.occurrence_ms, run.tag)))


def _taken_left_ms(store: JobStore, run: RunRequest) -> int | None:
    """How long the attempt stays booked as taken (None: it is not)."""
    score = store.redis.zscore(store.keys.ledger_taken, run.ledger_entry.member)
    return None if score is None else int(score) - store.time_ms()


@contextmanager
def _round_trips() -> Iterator[list[bytes]]:
    """Every request this process sends to a Redis server meanwhile: a command, or a
    pipeline's commands at once, each answered before the caller goes on."""
    sent: list[bytes] = []
    send = Connection.send_packed_command

    def counted(self: Connection, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        send(self, command, check_health)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Connection, "send_packed_command", counted)
        yield sent


@contextmanager
def _running(ctx: WorkerContext, run: RunRequest, target: HttpTarget, path: str) -> Iterator[None]:
    """The attempt runs in a thread of its own, its request held by the target until the
    block ends; it has ended when the block has."""
    release = target.hold(path)
    verdicts: list[Verdict] = []
    worker = threading.Thread(target=lambda: verdicts.append(execute(ctx, run)))
    worker.start()
    try:
        wait_until(lambda: target.requests_to(path), timeout=5, message="the held request")
        yield
    finally:
        release.set()
        worker.join(timeout=10)
    assert [v.word for v in verdicts] == ["completed"]


def test_an_attempt_reads_and_leases_in_one_round_trip_and_records_in_another(
    ctx: WorkerContext, target: HttpTarget
) -> None:
    # Given a recurring job with the default timeout, and a first attempt run (the scripts
    # loaded)
    jid = _add(ctx.store, "plain", f"{target.url}/plain")
    execute(ctx, _owed(ctx, RunRequest(jid, 1_000)))

    # When the next attempt runs
    run = _owed(ctx, RunRequest(jid, 2_000))
    with _round_trips() as sent:
        verdict = execute(ctx, run)

    # Then it ran and was recorded, in two round trips to the store
    assert verdict.word == "completed"
    assert len(target.requests_to("/plain")) == 2
    assert len(sent) == 2


@pytest.mark.parametrize("timeout", ["PT2M", "PT1S"], ids=["longer", "shorter"])
def test_a_job_with_its_own_timeout_holds_its_lease_for_that_timeout(
    ctx: WorkerContext, target: HttpTarget, timeout: str
) -> None:
    # Given a job whose request has its own timeout, longer or shorter than the default
    jid = _add(ctx.store, "own", f"{target.url}/own", timeout=timeout)
    expected_ms = {"PT2M": 120_000, "PT1S": 1_000}[timeout] + MARGIN_MS
    run = _owed(ctx, RunRequest(jid, 1_000))

    # When its attempt runs, its request held
    with _running(ctx, run, target, "/own"):
        # Then, while the action runs, the lease and the taken booking end by its timeout
        assert expected_ms - 2_000 < _lease_left_ms(ctx.store, run) <= expected_ms
        taken = _taken_left_ms(ctx.store, run)
        assert taken is not None
        assert expected_ms - 2_000 < taken <= expected_ms


def test_a_second_delivery_while_the_attempt_is_held_is_busy_and_runs_nothing(
    ctx: WorkerContext, target: HttpTarget
) -> None:
    # Given an attempt running, its request held
    jid = _add(ctx.store, "held", f"{target.url}/held")
    run = _owed(ctx, RunRequest(jid, 1_000))
    with _running(ctx, run, target, "/held"):
        # When the broker delivers a copy of it
        verdict = execute(ctx, run)

        # Then the copy is busy, to look again once the lease has expired, and sent nothing
        assert verdict.word == "busy"
        assert verdict.again
        assert verdict.retry_in is not None
        assert verdict.retry_in.total_seconds() > 60
        assert len(target.requests_to("/held")) == 1

    # And the attempt is recorded once
    assert len(ctx.store.history(jid)) == 1


def test_a_recorded_attempt_delivered_again_is_a_duplicate(
    ctx: WorkerContext, target: HttpTarget
) -> None:
    # Given an attempt that ran and was recorded
    jid = _add(ctx.store, "twice", f"{target.url}/twice")
    run = _owed(ctx, RunRequest(jid, 1_000))
    assert execute(ctx, run).word == "completed"

    # When a copy of it is delivered, owed again (a redelivery the ledger had sent)
    verdict = execute(ctx, _owed(ctx, run))

    # Then it is a duplicate: sent once, recorded once, no longer owed
    assert verdict.word == "duplicate"
    assert len(target.requests_to("/twice")) == 1
    assert len(ctx.store.history(jid)) == 1
    assert ctx.store.redis.zscore(ctx.store.keys.ledger, run.ledger_entry.member) is None


@pytest.mark.parametrize("disabled", ["job", "collection"])
def test_a_disabled_job_or_collection_runs_nothing_and_leaves_no_lease(
    ctx: WorkerContext, target: HttpTarget, disabled: str
) -> None:
    # Given an owed attempt of a job that is disabled, or whose collection is
    store = ctx.store
    jid = _add(store, "off", f"{target.url}/off")
    run = _owed(ctx, RunRequest(jid, 1_000))
    if disabled == "job":
        store.set_job_state(jid, JobState.DISABLED, None)
    else:
        store.set_collection_state(CID, "Disabled")

    # When it is delivered
    verdict = execute(ctx, run)

    # Then it does not run, and neither a lease nor a taken booking is left
    assert verdict.word == "not-run"
    assert target.requests_to("/off") == []
    assert _lease_left_ms(store, run) == -2
    assert _taken_left_ms(store, run) is None

    # And once enabled again, the attempt runs when it is owed again
    if disabled == "job":
        store.set_job_state(jid, JobState.ENABLED, None)
    else:
        store.set_collection_state(CID, "Enabled")
    assert execute(ctx, _owed(ctx, run)).word == "completed"
    assert len(target.requests_to("/off")) == 1


def test_a_finished_job_still_runs_a_retry_it_handed_out_before_it_finished(
    ctx: WorkerContext, target: HttpTarget
) -> None:
    # Given a job that reached its final state at 5 s, after it handed out a retry of the
    # occurrence of 1 s (whose first attempt failed)
    store = ctx.store
    jid = _add(store, "late", f"{target.url}/late", timeout="PT2M")
    record_completed(store, jid, from_ms(5_000), final=JobState.COMPLETED)
    assert store.get_job(jid).state is JobState.COMPLETED
    run = _owed(ctx, RunRequest(jid, 1_000, attempt=1))

    # When the retry is delivered, its request held
    with _running(ctx, run, target, "/late"):
        # Then it runs, under a lease of its own timeout
        assert 120_000 < _lease_left_ms(store, run) <= 120_000 + MARGIN_MS
        taken = _taken_left_ms(store, run)
        assert taken is not None
        assert taken > 120_000

    # And a retry of an occurrence after it finished does not run
    later = _owed(ctx, RunRequest(jid, 9_000, attempt=1))
    assert execute(ctx, later).word == "not-run"
    assert _lease_left_ms(store, later) == -2
