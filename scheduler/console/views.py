"""What the console's pages show, computed from the services' records (no rules here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from markupsafe import Markup, escape

from scheduler.console.charts import Run
from scheduler.console.words import describe_schedule
from scheduler.dispatch import task_id_for
from scheduler.domain.credentials import mask_uri
from scheduler.domain.models import CollectionState, JobAction, JobExecutionStatus, JobState
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.service.jobs import JobService
from scheduler.service.quotas import effective_quota
from scheduler.store.codecs import HistoryId
from scheduler.store.jobs import CollectionRecord, JobRecord, StoredHistoryEntry

__all__ = [
    "CollectionRow",
    "JobRow",
    "ResultRow",
    "action_summary",
    "collection_row",
    "flower_task_id",
    "job_row",
    "job_status",
    "result_row",
    "run_of",
    "time_element",
    "when",
    "when_short",
]


def when(moment: datetime | None) -> str:
    """A timestamp for people: UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def when_short(moment: datetime | None) -> str:
    """A timestamp for a table cell: UTC (the column says so), to the minute."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else ""


def time_element(
    moment: datetime | None, precision: Literal["second", "minute"] = "second"
) -> Markup:
    """``<time datetime="…Z">`` with the UTC text; ``static/times.js`` rewrites the text
    to the browser's time zone and puts the UTC text in its title. Nothing for None."""
    if moment is None:
        return Markup("")
    utc = moment.astimezone(UTC)
    text = when(utc) if precision == "second" else when_short(utc)
    stamp = utc.isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup('<time datetime="{}" data-precision="{}">{}</time>').format(
        stamp, precision, escape(text)
    )


def action_summary(action: JobAction) -> str:
    """One line that says what the job does (credentials in the URI masked)."""
    if action.request is not None:
        return f"{action.request.method} {mask_uri(action.request.uri)}"
    if action.queue_message is not None:
        message = action.queue_message
        return f"Storage queue {message.storage_account}/{message.queue_name}"
    if action.celery_task is not None:
        return f"Celery task {action.celery_task.name}"
    if action.command is not None:
        return f"Command: {action.command}"
    return action.type.value


@dataclass(frozen=True, slots=True)
class ResultRow:
    entry_id: str
    status: str
    at: str
    action_name: str
    expected: str
    started: str
    ended: str
    duration: str
    retry_count: int
    repeat_count: int
    message: str
    #: The instants behind ``expected``, ``started`` and ``ended`` (for ``time_element``).
    expected_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def summary(self) -> str:
        first = self.message.splitlines()[0] if self.message else ""
        return first if len(first) <= 120 else first[:119] + "…"


def result_row(stored: StoredHistoryEntry) -> ResultRow:
    entry = stored.entry
    seconds = (entry.end_time - entry.start_time).total_seconds()
    return ResultRow(
        entry_id=stored.entry_id,
        status=entry.status.value,
        at=when_short(entry.start_time),
        action_name=entry.action_name.value,
        expected=when(entry.expected_execution_time),
        started=when(entry.start_time),
        ended=when(entry.end_time),
        duration=f"{seconds:.3f} s",
        retry_count=entry.retry_count,
        repeat_count=entry.repeat_count,
        message=entry.message,
        expected_at=entry.expected_execution_time,
        started_at=entry.start_time,
        ended_at=entry.end_time,
    )


@dataclass(frozen=True, slots=True)
class JobRow:
    """One line of the Jobs table, and what its menu and side panel need."""

    name: str
    title: str
    state: str
    owner: str
    action: str
    schedule: str
    next_run: str
    last: ResultRow | None
    executions: int
    failures: int
    next_run_at: datetime | None = None
    #: What an attempt in progress is doing ("Queued", "Running", "Retrying"); None: idle.
    activity: str | None = None

    @property
    def final(self) -> bool:
        return JobState(self.state).is_final

    @property
    def enabled(self) -> bool:
        return self.state == JobState.ENABLED.value

    @property
    def last_ok(self) -> bool:
        return self.last is not None and self.last.status == JobExecutionStatus.COMPLETED.value


def job_row(
    jobs: JobService, collection: CollectionRef, record: JobRecord, activity: str | None = None
) -> JobRow:
    """The row of one job; its last result is the newest history entry; ``activity``
    says what an attempt in progress is doing (None: nothing is)."""
    name = record.jid.rsplit("/", 1)[1]
    properties = record.properties
    recurrence: dict[str, Any] | None = (
        properties.recurrence.to_wire() if properties.recurrence else None
    )
    try:
        entries, _ = jobs.history(JobRef(collection, name), skip=0, top=1)
    except LookupError:
        entries = []  # deleted while the page was built
    status = properties.status
    return JobRow(
        name=name,
        title=properties.display_name or name,
        state=record.state.value,
        owner=properties.owner or "",
        action=action_summary(properties.action),
        schedule=describe_schedule(recurrence, properties.start_time),
        next_run=when_short(status.next_execution_time if status else None),
        last=result_row(entries[0]) if entries else None,
        executions=status.execution_count if status else 0,
        failures=status.failure_count if status else 0,
        next_run_at=status.next_execution_time if status else None,
        activity=activity,
    )


@dataclass(frozen=True, slots=True)
class CollectionRow:
    """One line of the collections page."""

    ref: CollectionRef
    state: str
    jobs: int
    #: The most jobs the collection's quota allows (None: no limit).
    max_jobs: int | None

    @property
    def job_count(self) -> str:
        """How many jobs: "3 jobs", "1 job", or "3 of 50 jobs" under a quota."""
        noun = "job" if self.jobs == 1 and self.max_jobs is None else "jobs"
        limit = f" of {self.max_jobs}" if self.max_jobs is not None else ""
        return f"{self.jobs}{limit} {noun}"


def collection_row(record: CollectionRecord, jobs: int) -> CollectionRow:
    properties = record.collection.properties
    state = properties.state if properties and properties.state else CollectionState.ENABLED
    return CollectionRow(
        ref=CollectionRef.from_cid(record.cid),
        state=state.value,
        jobs=jobs,
        max_jobs=effective_quota(record.collection).max_job_count,
    )


def flower_task_id(jid: str, entry_id: str) -> str | None:
    """The Celery task id of the occurrence a history entry belongs to, for Flower.

    A history id names its occurrence and attempt (:class:`~scheduler.store.codecs.HistoryId`);
    retries that wait in the broker keep the first attempt's task id, so the link goes to
    that task.
    """
    found = HistoryId.parse(entry_id)
    if found is None:
        return None
    return task_id_for(jid, found.occurrence_ms, manual=found.manual, error=found.error)


def job_status(jobs: JobService, ref: JobRef, base: str, activity: str | None) -> dict[str, Any]:
    """The job's live status as the job page polls it (JSON): state, what an attempt in
    progress is doing (``activity``, from :meth:`JobService.in_progress`), the last result.

    ``base`` is the collection's console URL, for the link to the result's details.
    """
    row = job_row(jobs, ref.collection, jobs.get(ref), activity)
    last = row.last
    return {
        "job": row.name,
        "state": row.state,
        "activity": row.activity,
        "executions": row.executions,
        "failures": row.failures,
        "nextRun": row.next_run,
        "nextRunAt": _iso(row.next_run_at),
        "last": None
        if last is None
        else {
            "entryId": last.entry_id,
            "status": last.status,
            "started": last.started,
            "startedAt": _iso(last.started_at),
            "duration": last.duration,
            "details": f"{base}/jobs/{row.name}/results/{last.entry_id}",
            "flowerTask": flower_task_id(ref.jid, last.entry_id),
        },
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_of(stored: StoredHistoryEntry, href: str) -> Run:
    """A history entry as the run history chart draws it (a bar linked to ``href``)."""
    entry = stored.entry
    seconds = (entry.end_time - entry.start_time).total_seconds()
    return Run(entry.status.value, entry.start_time, max(0.0, seconds), href)
