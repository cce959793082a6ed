"""What the history of a test's jobs says of a window of occurrences: how many times each
was recorded Completed, the Failed ones, and when (the fault and failover tests count with
it once their deployment owes nothing)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from scheduler.clock import to_ms
from scheduler.domain.models import JobExecutionStatus, JobHistoryActionName
from scheduler.store.jobs import JobStore

__all__ = ["Occurrence", "Tally"]

Occurrence = tuple[str, int]  # (job id, scheduled time in epoch ms)


@dataclass
class Tally:
    """Completed main-action entries per occurrence, the message of each Failed one, and
    each Completed one's lateness (end time minus scheduled time) and end time."""

    completed: Counter[Occurrence] = field(default_factory=Counter)
    failed: dict[Occurrence, str] = field(default_factory=dict)
    lateness_s: list[float] = field(default_factory=list)
    ends: list[datetime] = field(default_factory=list)

    @classmethod
    def read(cls, store: JobStore, jids: Iterable[str]) -> Tally:
        tally = cls()
        for jid in jids:
            for stored in store.history(jid, skip=0, top=1000):
                entry = stored.entry
                if entry.action_name is not JobHistoryActionName.MAIN_ACTION:
                    continue
                key = (jid, to_ms(entry.expected_execution_time))
                if entry.status is JobExecutionStatus.COMPLETED:
                    tally.completed[key] += 1
                    late = entry.end_time - entry.expected_execution_time
                    tally.lateness_s.append(late.total_seconds())
                    tally.ends.append(entry.end_time)
                else:
                    tally.failed[key] = f"{entry.status.value}: {entry.message}"
        return tally

    def doubled(self) -> list[Occurrence]:
        """The occurrences recorded Completed more than once."""
        return sorted(key for key, count in self.completed.items() if count > 1)

    def lateness(self) -> str:
        """Recorded time minus scheduled time of the Completed entries: p50, p99, max."""
        if not self.lateness_s:
            return "lateness: nothing recorded"
        ordered = sorted(self.lateness_s)
        p50, p99 = (ordered[min(len(ordered) - 1, int(len(ordered) * q))] for q in (0.5, 0.99))
        return (
            f"lateness (recorded - scheduled) of {len(ordered)} occurrences: "
            f"p50 {p50:.1f} s, p99 {p99:.1f} s, max {ordered[-1]:.1f} s"
        )
