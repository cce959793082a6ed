"""One attempt of a job's action: load, lease, run, record.

Tasks carry ids only (job id, occurrence time, attempt); the definition, with its secrets,
is loaded here from Redis, so nothing secret travels through the broker or shows in Flower.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from scheduler.clock import from_ms, to_ms, utcnow
from scheduler.errors import JobNotFound
from scheduler.models import (
    ActionType,
    HistoryEntry,
    JobAction,
    JobExecutionStatus,
    JobHistoryActionName,
    JobState,
)
from scheduler.planning import is_last_occurrence
from scheduler.store import Attempt, JobRecord
from workers.context import WorkerContext
from workers.http_action import OccurrenceInfo, Outcome, call_http

__all__ = ["RunRequest", "execute"]

log = logging.getLogger(__name__)

#: A lease outlives the action's timeout by this much before another worker may take it.
_LEASE_MARGIN_MS = 30_000


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What a task message says: which job, which occurrence, which attempt, and why."""

    jid: str
    occurrence_ms: int
    attempt: int = 0
    manual: bool = False

    @property
    def execution_tag(self) -> str:
        """Stable across retries of one occurrence, so receivers can deduplicate."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"takt:{self.jid}@{self.occurrence_ms}"))


def execute(ctx: WorkerContext, run: RunRequest) -> str:
    """Run one attempt; returns a short word for the task's log line."""
    try:
        record = ctx.store.get_job(run.jid)
    except JobNotFound:
        log.info("job %s was deleted; occurrence %s dropped", run.jid, run.occurrence_ms)
        return "deleted"
    if record.state is not JobState.ENABLED:
        log.info("job %s is %s; it does not run", run.jid, record.state.value)
        return "not-enabled"
    collection_state = ctx.store.collection_state(run.jid.rsplit("/", 1)[0])
    if collection_state != "Enabled":
        log.info("collection of %s is %s; its jobs do not run", run.jid, collection_state)
        return "not-enabled"
    ttl_ms = int(ctx.settings.http_timeout_s * 1000) + _LEASE_MARGIN_MS
    if not ctx.store.acquire_lease(run.jid, run.occurrence_ms, run.attempt, ttl_ms):
        log.info(
            "attempt %s of %s@%s runs or ran elsewhere", run.attempt, run.jid, run.occurrence_ms
        )
        return "duplicate"
    started = utcnow()
    outcome = _run_action(ctx, record.properties.action, run)
    _record(ctx, record, run, started, outcome)
    return "completed" if outcome.succeeded else "failed"


def _run_action(ctx: WorkerContext, action: JobAction, run: RunRequest) -> Outcome:
    if action.type in (ActionType.HTTP, ActionType.HTTPS) and action.request is not None:
        cid, _, name = run.jid.rpartition("/")
        info = OccurrenceInfo(
            job_id=name,
            collection_id=cid.rpartition("/")[2],
            expected_time=from_ms(run.occurrence_ms),
            execution_tag=run.execution_tag,
        )
        return call_http(ctx.http, action.request, info)
    return Outcome(False, f"{action.type.value} actions are not supported by this worker")


def _final_state(record: JobRecord, run: RunRequest, outcome: Outcome) -> JobState | None:
    """Completed/Faulted once the last occurrence of the schedule has its outcome."""
    if run.manual:
        return None
    props = record.properties
    occurrence = from_ms(run.occurrence_ms)
    if not is_last_occurrence(props.recurrence, props.start_time or occurrence, occurrence):
        return None
    return JobState.COMPLETED if outcome.succeeded else JobState.FAULTED


def _record(
    ctx: WorkerContext, record: JobRecord, run: RunRequest, started: datetime, outcome: Outcome
) -> None:
    finished = utcnow()
    final = _final_state(record, run, outcome)
    entry = HistoryEntry(
        start_time=started,
        end_time=finished,
        expected_execution_time=from_ms(run.occurrence_ms),
        action_name=JobHistoryActionName.MAIN_ACTION,
        status=JobExecutionStatus.COMPLETED if outcome.succeeded else JobExecutionStatus.FAILED,
        message=outcome.message,
        retry_count=run.attempt,
        repeat_count=0,
    )
    ctx.store.record_attempt(
        Attempt(
            jid=run.jid,
            occurrence_ms=run.occurrence_ms,
            attempt=run.attempt,
            entry_id=f"{run.occurrence_ms}-{run.attempt}-{'m' if run.manual else 's'}",
            entry=entry,
            first_attempt=run.attempt == 0,
            failed=not outcome.succeeded,
            faulted=not outcome.succeeded,
            final_state=final,
            finished_ms=to_ms(finished) if final else None,
        )
    )
