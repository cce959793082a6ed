"""Attempts written into a store as a worker records them, for tests that need a job with
history or in its final state."""

from __future__ import annotations

from datetime import datetime

from scheduler.clock import to_ms
from scheduler.domain.models import HistoryEntry, JobExecutionStatus, JobHistoryActionName, JobState
from scheduler.store.jobs import Attempt, JobStore


def record_completed(
    store: JobStore, jid: str, at: datetime, *, final: JobState | None = None
) -> None:
    """The first attempt of the occurrence ``at``, Completed; with ``final``, the job's
    last one, which leaves it in that state, finished at ``at``."""
    entry = HistoryEntry(
        start_time=at,
        end_time=at,
        expected_execution_time=at,
        action_name=JobHistoryActionName.MAIN_ACTION,
        status=JobExecutionStatus.COMPLETED,
        message="ok",
    )
    store.record_attempt(
        Attempt(
            jid=jid,
            occurrence_ms=to_ms(at),
            tag="m0",
            entry_id=str(to_ms(at)),
            entry=entry,
            first_attempt=True,
            failed=False,
            faulted=False,
            final_state=final,
            finished_ms=to_ms(at) if final else None,
        )
    )
