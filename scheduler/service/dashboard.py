"""A collection's last 24 hours and next runs, and the deployment's health, for the console.

The reads are bounded, whatever the collection holds (thousands of jobs, 1,000 history
entries each): at most :attr:`DashboardLimits.jobs` jobs (the first by name), and at most
:attr:`DashboardLimits.entries` history entries in all, shared evenly among the jobs read
(``entries // jobs``, at most the 1,000 a job keeps). So one job is read whole, 200 jobs
50 entries each; a page never parses more than 10,000 entries (0.12–0.15 s for 200 of
1,000 jobs with 50 entries each, measured on a busy 2-core machine). When a bound leaves
something out — jobs beyond the first 200, or a job whose read is full and reached back
no further than the window — :attr:`CollectionDashboard.partial` says so, and the page
shows it.

What counts:

* a **run** is a main-action attempt (a retry is a run of its own; the error action is
  not a run) that started inside the window, by its status;
* **lateness** is start time − expected time of an occurrence's first attempt fired by the
  schedule: a manual run was not scheduled, a retry waited on purpose and a postponed
  occurrence did not run (:class:`~scheduler.store.codecs.HistoryId` says which is which);
* the **next runs** are the read jobs' upcoming occurrences (Enabled jobs only: a disabled
  job does not fire), merged in time order, as the beat would fire them
  (:func:`scheduler.domain.planning.upcoming`).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

from scheduler.domain.models import JobExecutionStatus, JobHistoryActionName, JobState
from scheduler.domain.planning import upcoming
from scheduler.domain.refs import CollectionRef
from scheduler.observability.exposition import SNAPSHOT_VERSION
from scheduler.store.codecs import HistoryId
from scheduler.store.health import StoreMemory, store_memory
from scheduler.store.jobs import HISTORY_MAX_ENTRIES, JobRecord, JobStore, StoredHistoryEntry
from scheduler.store.metrics import MetricsBoard

__all__ = [
    "WINDOW_HOURS",
    "CollectionDashboard",
    "DashboardLimits",
    "HourBucket",
    "NextRun",
    "StoreHealth",
    "collection_dashboard",
    "percentile",
    "store_health",
]

#: The dashboard's window: the current hour so far and the 23 before it.
WINDOW_HOURS = 24
_HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class DashboardLimits:
    """The most the dashboard reads (see the module's docstring for why these numbers)."""

    jobs: int = 200
    entries: int = 10_000
    next_runs: int = 20

    def per_job(self, jobs_read: int) -> int:
        """History entries read per job: an even share of :attr:`entries`."""
        return max(1, min(HISTORY_MAX_ENTRIES, self.entries // max(1, jobs_read)))


@dataclass(slots=True)
class HourBucket:
    """One hour of the window: its runs by status and its lateness samples (seconds)."""

    start: datetime
    completed: int = 0
    failed: int = 0
    postponed: int = 0
    lateness_s: list[float] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return self.completed + self.failed + self.postponed

    def late(self, share: float) -> float | None:
        """The ``share`` percentile of this hour's lateness (None: nothing fired)."""
        return percentile(self.lateness_s, share)


@dataclass(frozen=True, slots=True)
class NextRun:
    """One upcoming occurrence of one job."""

    job: str
    title: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CollectionDashboard:
    """A collection's last 24 hours by the hour, and its next runs, from bounded reads."""

    ref: CollectionRef
    now: datetime
    hours: list[HourBucket]
    next_runs: list[NextRun]
    jobs_total: int
    jobs_read: int
    entries_per_job: int
    #: Jobs whose bounded read ended inside the window: their counts are a floor.
    cut_short: list[str]

    @property
    def partial(self) -> bool:
        return self.jobs_read < self.jobs_total or bool(self.cut_short)

    @property
    def completed(self) -> int:
        return sum(hour.completed for hour in self.hours)

    @property
    def failed(self) -> int:
        return sum(hour.failed for hour in self.hours)

    @property
    def postponed(self) -> int:
        return sum(hour.postponed for hour in self.hours)

    @property
    def runs(self) -> int:
        return sum(hour.runs for hour in self.hours)

    def late(self, share: float) -> float | None:
        """The ``share`` percentile of the whole window's lateness."""
        return percentile([s for hour in self.hours for s in hour.lateness_s], share)


def percentile(samples: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``samples``; None for none."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * share // 1))  # ceil, at least the first
    return ordered[min(len(ordered), int(rank)) - 1]


def collection_dashboard(
    store: JobStore,
    ref: CollectionRef,
    now: datetime,
    limits: DashboardLimits | None = None,
) -> CollectionDashboard:
    """The dashboard of ``ref`` at ``now``.

    Raises:
        CollectionNotFound: no such collection.
        StoreError: the store did not answer.
    """
    limits = limits or DashboardLimits()
    store.get_collection(ref.cid)
    total = store.count_jobs(ref.cid)
    names = store.job_names(ref.cid, skip=0, top=limits.jobs)
    records = store.get_jobs([f"{ref.cid}/{name}" for name in names])
    per_job = limits.per_job(len(names))
    first_hour = now.replace(minute=0, second=0, microsecond=0) - (WINDOW_HOURS - 1) * _HOUR
    hours = [HourBucket(first_hour + i * _HOUR) for i in range(WINDOW_HOURS)]
    cut_short = []
    for record in records:
        entries = store.history(record.jid, skip=0, top=per_job)
        # Full, and nothing read from before the window: older ones may be inside it too.
        if len(entries) == per_job and min(e.entry.start_time for e in entries) >= first_hour:
            cut_short.append(record.jid.rsplit("/", 1)[1])
        _count(hours, entries, first_hour, now)
    return CollectionDashboard(
        ref=ref,
        now=now,
        hours=hours,
        next_runs=_next_runs(records, now, limits.next_runs),
        jobs_total=max(total, len(records)),
        jobs_read=len(records),
        entries_per_job=per_job,
        cut_short=cut_short,
    )


def _count(
    hours: list[HourBucket], entries: list[StoredHistoryEntry], first_hour: datetime, now: datetime
) -> None:
    for stored in entries:
        entry = stored.entry
        if entry.action_name is not JobHistoryActionName.MAIN_ACTION:
            continue
        if not first_hour <= entry.start_time <= now:
            continue
        hour = hours[int((entry.start_time - first_hour) / _HOUR)]
        if entry.status is JobExecutionStatus.COMPLETED:
            hour.completed += 1
        elif entry.status is JobExecutionStatus.FAILED:
            hour.failed += 1
        else:
            hour.postponed += 1
        if _scheduled_first_attempt(stored):
            late = (entry.start_time - entry.expected_execution_time).total_seconds()
            hour.lateness_s.append(max(0.0, late))


def _scheduled_first_attempt(stored: StoredHistoryEntry) -> bool:
    found = HistoryId.parse(stored.entry_id)
    return (
        found is not None
        and found.tag == "m0"
        and not found.manual
        and not found.postponed
        and stored.entry.status is not JobExecutionStatus.POSTPONED
    )


def _next_runs(records: list[JobRecord], now: datetime, count: int) -> list[NextRun]:
    """The first ``count`` occurrences across ``records``: a lazy merge, so each job's rule
    is asked for no more occurrences than are shown."""

    def fires(record: JobRecord) -> Iterator[NextRun]:
        name = record.jid.rsplit("/", 1)[1]
        title = record.properties.display_name or name
        status = record.properties.status
        stored = status.next_execution_time if status else None
        for moment in upcoming(record.properties, stored, now):
            yield NextRun(name, title, moment)

    firing = [r for r in records if r.state is JobState.ENABLED]
    merged = heapq.merge(*(fires(r) for r in firing), key=lambda run: (run.at, run.job))
    return list(islice(merged, count))


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """The deployment at a glance: live beats and workers (their metrics snapshots), the
    execution ledger and the store's memory."""

    beats_alive: int
    workers_alive: int
    ledger_owed: int
    ledger_taken: int
    memory: StoreMemory

    @property
    def ledger_size(self) -> int:
        return self.ledger_owed + self.ledger_taken

    @property
    def memory_share(self) -> float | None:
        """Used memory as a share of ``maxmemory`` (None: no limit set)."""
        if not self.memory.max_bytes:
            return None
        return self.memory.used_bytes / self.memory.max_bytes


def store_health(store: JobStore) -> StoreHealth:
    """Read the health panel's numbers (a few round trips).

    Beats and workers alive are counted as ``takt_beats_alive`` and ``takt_workers_alive``
    are: one per live snapshot, by the role it names (a snapshot that cannot be read, or
    of a newer schema, is not counted).

    Raises:
        StoreError: the store did not answer.
    """
    gauges = MetricsBoard(store).gauges()
    alive = {"beat": 0, "worker": 0}
    for raw in gauges.snapshots:
        role = _role_of(raw)
        if role in alive:
            alive[role] += 1
    return StoreHealth(
        beats_alive=alive["beat"],
        workers_alive=alive["worker"],
        ledger_owed=gauges.ledger_owed,
        ledger_taken=gauges.ledger_taken,
        memory=store_memory(store),
    )


def _role_of(raw: str) -> str | None:
    try:
        payload = json.loads(raw)
        if not isinstance(payload, dict) or payload.get("sv", 0) > SNAPSHOT_VERSION:
            return None
        role = payload.get("role")
    except (ValueError, TypeError):
        return None
    return role if isinstance(role, str) else None
