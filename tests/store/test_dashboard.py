"""The collection dashboard's numbers (issue 16) on a real Valkey: runs and failures per
hour, lateness, the bounds on what is read (and saying so), the next runs across jobs, and
the health panel's reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.clock import to_ms
from scheduler.domain.models import (
    HistoryEntry,
    JobCollection,
    JobExecutionStatus,
    JobHistoryActionName,
    JobProperties,
)
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.errors import CollectionNotFound, StoreError
from scheduler.observability import ProcessId, encode_snapshot, process_registry
from scheduler.service.dashboard import (
    WINDOW_HOURS,
    DashboardLimits,
    collection_dashboard,
    percentile,
    store_health,
)
from scheduler.service.jobs import JobService
from scheduler.store.codecs import HistoryId, LedgerEntry
from scheduler.store.jobs import Attempt, JobStore
from scheduler.store.ledger import Ledger
from scheduler.store.metrics import MetricsBoard
from scheduler.store.principals import Principal, PrincipalBook, Role
from tests.support.helpers import free_port

NOW = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)
REF = CollectionRef("sub", "rg", "dash")
ADMIN = Principal("admin", Role.ADMIN)
COMPLETED, FAILED = JobExecutionStatus.COMPLETED, JobExecutionStatus.FAILED


def _collection(store: JobStore) -> JobService:
    store.put_collection(REF.cid, JobCollection(location="local"))
    return JobService(store, PrincipalBook(store), lambda *_: None)


def _job(service: JobService, name: str, **schedule: object) -> str:
    body = {"action": {"type": "Http", "request": {"uri": "https://t.test/", "method": "GET"}}}
    properties = JobProperties.model_validate({**body, **schedule})
    service.put(JobRef(REF, name), properties, ADMIN, NOW)
    return f"{REF.cid}/{name}"


def _ran(
    store: JobStore,
    jid: str,
    started: datetime,
    status: JobExecutionStatus = COMPLETED,
    *,
    late_s: float = 0.0,
    tag: str = "m0",
    manual: bool = False,
    action: JobHistoryActionName = JobHistoryActionName.MAIN_ACTION,
) -> None:
    """Record one attempt as a worker does (its occurrence: started − late_s)."""
    expected = started - timedelta(seconds=late_s)
    occurrence_ms = to_ms(expected)
    entry = HistoryEntry(
        start_time=started,
        end_time=started + timedelta(milliseconds=20),
        expected_execution_time=expected,
        action_name=action,
        status=status,
        message="m",
        retry_count=int(tag[1:]),
    )
    recorded = store.record_attempt(
        Attempt(
            jid=jid,
            occurrence_ms=occurrence_ms,
            tag=tag,
            entry_id=HistoryId(occurrence_ms, tag, manual=manual).encode(),
            entry=entry,
            first_attempt=tag == "m0",
            failed=status is FAILED,
            faulted=False,
            final_state=None,
            finished_ms=None,
        )
    )
    assert recorded


def _at(hh: int, mm: int, day: int = 30) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=UTC)


def test_runs_and_failures_are_counted_by_the_hour_they_started_in(store: JobStore) -> None:
    # Given two jobs' runs inside the window, at its edges and outside it
    service = _collection(store)
    ping, sync = _job(service, "ping"), _job(service, "sync")
    _ran(store, ping, _at(12, 10))
    _ran(store, ping, _at(12, 20), FAILED)
    _ran(store, sync, _at(11, 5))
    _ran(store, sync, _at(11, 6))
    _ran(store, sync, _at(10, 59), FAILED)
    _ran(store, ping, _at(13, 0, day=29))  # the first instant of the window
    _ran(store, ping, _at(12, 59, day=29))  # just before it
    _ran(store, sync, _at(12, 40))  # after "now"
    _ran(store, sync, _at(12, 25), FAILED, action=JobHistoryActionName.ERROR_ACTION)

    # When the dashboard is built at 12:30
    board = collection_dashboard(store, REF, NOW)

    # Then each hour holds its runs by status: 24 hours, the current one last
    assert len(board.hours) == WINDOW_HOURS
    assert board.hours[0].start == _at(13, 0, day=29)
    assert board.hours[-1].start == _at(12, 0)
    by_hour = {h.start.hour: (h.completed, h.failed) for h in board.hours if h.runs}
    assert by_hour == {13: (1, 0), 10: (0, 1), 11: (2, 0), 12: (1, 1)}
    # and the totals add up; the error action is a notification, not a run
    assert (board.runs, board.completed, board.failed) == (6, 4, 2)
    assert not board.partial


def test_lateness_is_measured_on_scheduled_first_attempts_only(store: JobStore) -> None:
    # Given ten scheduled runs late by 1..10 s, a manual run and a retry (both much later
    # than their occurrence, on purpose) and a run on time in another hour
    service = _collection(store)
    ping = _job(service, "ping")
    for late in range(1, 11):
        _ran(store, ping, _at(11, late), late_s=late)
    _ran(store, ping, _at(11, 30), late_s=600, manual=True)
    _ran(store, ping, _at(11, 40), FAILED, late_s=300, tag="m1")
    _ran(store, ping, _at(12, 1))

    # When the dashboard is built
    board = collection_dashboard(store, REF, NOW)

    # Then 11:00's lateness is the ten scheduled runs' (nearest-rank percentiles)
    eleven = board.hours[-2]
    assert sorted(eleven.lateness_s) == [float(s) for s in range(1, 11)]
    assert (eleven.late(0.5), eleven.late(0.95)) == (5.0, 10.0)
    # and the manual run and the retry count as runs but not as lateness
    assert eleven.runs == 12
    assert board.hours[-1].late(0.5) == 0.0
    assert board.late(0.95) == 10.0
    assert board.hours[0].late(0.5) is None


@pytest.mark.parametrize(
    ("samples", "share", "expected"),
    [
        pytest.param([], 0.5, None, id="none"),
        pytest.param([7.0], 0.95, 7.0, id="one"),
        pytest.param([3.0, 1.0, 2.0, 4.0], 0.5, 2.0, id="median-of-four"),
        pytest.param([float(i) for i in range(1, 101)], 0.95, 95.0, id="p95-of-100"),
    ],
)
def test_percentiles_are_nearest_rank(
    samples: list[float], share: float, expected: float | None
) -> None:
    assert percentile(samples, share) == expected


def test_reads_are_bounded_and_a_partial_view_says_so(store: JobStore) -> None:
    # Given five jobs, one of which ran ten times this hour, and bounds of 3 jobs and
    # 12 entries (4 a job)
    service = _collection(store)
    jids = [_job(service, f"job-{i}") for i in range(5)]
    for minute in range(10):
        _ran(store, jids[0], _at(12, minute))
    _ran(store, jids[1], _at(12, 15))
    _ran(store, jids[4], _at(12, 15))  # beyond the first three: not read
    limits = DashboardLimits(jobs=3, entries=12, next_runs=5)

    # When the dashboard is built under those bounds
    board = collection_dashboard(store, REF, NOW, limits)

    # Then only the first three jobs were read, four entries of each
    assert (board.jobs_read, board.jobs_total, board.entries_per_job) == (3, 5, 4)
    assert board.runs == 4 + 1
    # and the view says it is partial, naming the job whose count is a floor
    assert board.partial
    assert board.cut_short == ["job-0"]


def test_a_job_read_whole_is_not_cut_short(store: JobStore) -> None:
    # Given one job whose four newest runs are inside the window and the fifth before it
    service = _collection(store)
    ping = _job(service, "ping")
    _ran(store, ping, _at(9, 0, day=28))  # an old one, outside the window
    for minute in range(4):
        _ran(store, ping, _at(12, minute))

    # When the bound reads five entries (its oldest is outside the window)
    board = collection_dashboard(store, REF, NOW, DashboardLimits(jobs=10, entries=5))

    # Then the job's day was read whole and nothing is partial
    assert board.runs == 4
    assert not board.partial
    # and with room for four only, the count may be a floor, and the page says so
    tight = collection_dashboard(store, REF, NOW, DashboardLimits(jobs=10, entries=4))
    assert tight.partial
    assert tight.cut_short == ["ping"]


def test_the_default_bounds_share_ten_thousand_entries_among_at_most_200_jobs() -> None:
    limits = DashboardLimits()
    assert limits.per_job(1) == 1000  # all a job keeps
    assert limits.per_job(200) == 50
    assert limits.per_job(0) == 1000
    assert limits.jobs * limits.per_job(limits.jobs) <= limits.entries


def test_the_next_runs_merge_every_enabled_job_in_time_order(store: JobStore) -> None:
    # Given an hourly job from 13:00, a half-hourly one from 12:45 (with a display name),
    # a one-off at 14:00, and a disabled job that would run first
    service = _collection(store)
    _job(
        service,
        "hourly",
        startTime="2026-11-30T13:00:00Z",
        recurrence={"frequency": "Hour", "interval": 1},
    )
    _job(
        service,
        "half",
        displayName="Half <hourly>",
        startTime="2026-11-30T12:45:00Z",
        recurrence={"frequency": "Minute", "interval": 30},
    )
    _job(service, "once", startTime="2026-11-30T14:00:00Z")
    _job(
        service,
        "off",
        state="Disabled",
        startTime="2026-11-30T12:31:00Z",
        recurrence={"frequency": "Minute", "interval": 1},
    )

    # When the dashboard asks for the next seven runs
    board = collection_dashboard(store, REF, NOW, DashboardLimits(next_runs=7))

    # Then they are the enabled jobs' occurrences, merged in time order
    assert [(run.at.strftime("%H:%M"), run.job) for run in board.next_runs] == [
        ("12:45", "half"),
        ("13:00", "hourly"),
        ("13:15", "half"),
        ("13:45", "half"),
        ("14:00", "hourly"),
        ("14:00", "once"),
        ("14:15", "half"),
    ]
    assert board.next_runs[0].title == "Half <hourly>"


def test_a_missing_collection_is_not_found(store: JobStore) -> None:
    with pytest.raises(CollectionNotFound):
        collection_dashboard(store, CollectionRef("sub", "rg", "nothing"), NOW)


def test_health_counts_live_snapshots_by_role_and_reads_the_ledger_and_memory(
    store: JobStore,
) -> None:
    # Given a beat's and two workers' snapshots, an unreadable one, and two attempts owed
    board = MetricsBoard(store)
    for role, name in [("beat", "b1"), ("worker", "w1"), ("worker", "w2")]:
        process = ProcessId(role, name)
        board.write(process, encode_snapshot(process_registry(role), process), 60_000)
    board.write(ProcessId("worker", "odd"), "not json", 60_000)
    ledger = Ledger(store, 3_600_000)
    ledger.expect(LedgerEntry(f"{REF.cid}/ping", 1_000), 0)
    ledger.expect(LedgerEntry(f"{REF.cid}/ping", 2_000), 0)

    # When the health panel reads the store
    health = store_health(store)

    # Then it counts what /metrics's takt_beats_alive and takt_workers_alive count
    assert (health.beats_alive, health.workers_alive) == (1, 2)
    assert (health.ledger_size, health.ledger_owed) == (2, 2)
    # and the server's memory as INFO reports it
    assert health.memory.used_bytes > 0
    assert health.memory.used_human.endswith(("K", "M", "G", "B"))


def test_a_snapshot_that_expired_no_longer_counts(store: JobStore) -> None:
    board = MetricsBoard(store)
    process = ProcessId("beat", "gone")
    board.write(process, encode_snapshot(process_registry("beat"), process), 60_000)
    assert store_health(store).beats_alive == 1

    store.redis.delete(board.snapshot_key(process))  # its TTL ran out

    assert store_health(store).beats_alive == 0


def test_a_store_that_does_not_answer_is_a_store_error() -> None:
    gone = JobStore.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=1)
    try:
        with pytest.raises(StoreError):
            store_health(gone)
        with pytest.raises(StoreError):
            collection_dashboard(gone, REF, NOW)
    finally:
        gone.close()
