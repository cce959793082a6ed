"""Turn an attempt's outcome into its history entry, counter flags and final state."""

from __future__ import annotations

from datetime import datetime

from scheduler.clock import from_ms, to_ms, utcnow
from scheduler.domain.models import HistoryEntry, JobExecutionStatus, JobHistoryActionName, JobState
from scheduler.domain.planning import is_last_occurrence
from scheduler.store.codecs import HistoryId
from scheduler.store.jobs import Attempt, JobRecord, JobStore
from workers.attempt import RunRequest
from workers.http_action import Outcome

__all__ = ["record_attempt", "record_postponed", "record_unreadable"]


def _final_state(
    record: JobRecord, run: RunRequest, outcome: Outcome, last_try: bool
) -> JobState | None:
    """Completed/Faulted once the schedule's last occurrence has its outcome.

    Manual runs and error actions never finish a job; a failed attempt with retries left
    has no outcome yet.
    """
    if run.manual or run.error or not (outcome.succeeded or last_try):
        return None
    props = record.properties
    occurrence = from_ms(run.occurrence_ms)
    if not is_last_occurrence(props.recurrence, props.start_time or occurrence, occurrence):
        return None
    return JobState.COMPLETED if outcome.succeeded else JobState.FAULTED


def record_attempt(
    store: JobStore,
    record: JobRecord,
    run: RunRequest,
    started: datetime,
    outcome: Outcome,
    *,
    last_try: bool,
    follow_up: tuple[str, int] | None = None,
) -> None:
    """Write the attempt to history and update the job's status, atomically.

    ``executionCount`` counts occurrences (first attempts of the main action),
    ``failureCount`` occurrences whose first attempt failed, ``faultedCount`` occurrences
    whose last attempt failed. Error-action attempts only add history. The attempt leaves
    the execution ledger and ``follow_up`` (the retry or error action it leads to, as a
    ledger member and time) enters it, in the same script.
    """
    finished = utcnow()
    final = _final_state(record, run, outcome, last_try)
    store.record_attempt(
        _attempt(
            run,
            started,
            finished,
            outcome,
            last_try=last_try,
            final_state=final,
            follow_up=follow_up,
        )
    )


def _attempt(
    run: RunRequest,
    started: datetime,
    finished: datetime,
    outcome: Outcome,
    *,
    last_try: bool,
    final_state: JobState | None,
    follow_up: tuple[str, int] | None = None,
) -> Attempt:
    """An attempt's history entry and counter flags, as the store records them."""
    failed = not outcome.succeeded
    main = not run.error
    entry = HistoryEntry(
        start_time=started,
        end_time=finished,
        expected_execution_time=from_ms(run.occurrence_ms),
        action_name=JobHistoryActionName.MAIN_ACTION if main else JobHistoryActionName.ERROR_ACTION,
        status=JobExecutionStatus.FAILED if failed else JobExecutionStatus.COMPLETED,
        message=outcome.message,
        retry_count=run.attempt,
        repeat_count=0,
    )
    return Attempt(
        jid=run.jid,
        occurrence_ms=run.occurrence_ms,
        tag=run.tag,
        entry_id=HistoryId(run.occurrence_ms, run.tag, manual=run.manual).encode(),
        entry=entry,
        first_attempt=main and run.attempt == 0,
        failed=main and failed,
        faulted=main and failed and last_try,
        final_state=final_state,
        finished_ms=to_ms(finished) if final_state else None,
        ledger_member=run.ledger_entry.member,
        follow_up=follow_up,
    )


def record_postponed(store: JobStore, run: RunRequest, blocking_ms: int) -> None:
    """An occurrence skipped by concurrencyPolicy Forbid: a Postponed entry, no counters."""
    now = utcnow()
    entry = HistoryEntry(
        start_time=now,
        end_time=now,
        expected_execution_time=from_ms(run.occurrence_ms),
        action_name=JobHistoryActionName.MAIN_ACTION,
        status=JobExecutionStatus.POSTPONED,
        message=(
            f"Postponed: the occurrence of {from_ms(blocking_ms).isoformat()} was still "
            "running (concurrencyPolicy Forbid)"
        ),
        retry_count=run.attempt,
    )
    store.record_attempt(
        Attempt(
            jid=run.jid,
            occurrence_ms=run.occurrence_ms,
            tag=run.tag,
            entry_id=HistoryId(run.occurrence_ms, run.tag, postponed=True).encode(),
            entry=entry,
            first_attempt=False,
            failed=False,
            faulted=False,
            final_state=None,
            finished_ms=None,
            ledger_member=run.ledger_entry.member,
        )
    )


def record_unreadable(store: JobStore, run: RunRequest, started: datetime, message: str) -> None:
    """A failed attempt of a job whose stored definition cannot be read: the last one of
    its occurrence (no retry policy can be read), which leaves the job's state alone."""
    failure = Outcome(False, message)
    store.record_attempt(_attempt(run, started, utcnow(), failure, last_try=True, final_state=None))
