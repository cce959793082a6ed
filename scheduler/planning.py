"""When a job fires next: pure functions over a job's definition, with ``now`` a parameter.

The recurrence engine answers "which instants does this rule produce"; this module adds
the policy of a running scheduler on top: a job created with a start time in the past
fires at its first occurrence from now on (a one-shot job fires at once), and after a
late dispatch (the beats were down) one catch-up run is made, then the normal schedule
resumes from ``now``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from scheduler.models import JobProperties, JobRecurrence
from scheduler.recurrence import next_occurrence

__all__ = ["first_fire", "following_fire", "is_last_occurrence", "upcoming"]

_EPSILON = timedelta(microseconds=1)


def first_fire(properties: JobProperties, now: datetime) -> datetime | None:
    """The first instant a new or replaced job fires (None: it never will)."""
    start = properties.start_time or now
    if properties.recurrence is None:
        return max(start, now)
    after = max(start, now) - _EPSILON
    return next_occurrence(properties.recurrence, start, after)


def following_fire(
    properties: JobProperties, occurrence: datetime, now: datetime
) -> datetime | None:
    """The next instant after the dispatched ``occurrence`` (None: that was the last)."""
    if properties.recurrence is None:
        return None
    start = properties.start_time or occurrence
    return next_occurrence(properties.recurrence, start, max(occurrence, now))


def is_last_occurrence(
    recurrence: JobRecurrence | None, start: datetime, occurrence: datetime
) -> bool:
    """Whether no occurrence of the rule follows ``occurrence`` (count or endTime reached)."""
    if recurrence is None:
        return True
    return next_occurrence(recurrence, start, occurrence) is None


def upcoming(
    properties: JobProperties, next_fire: datetime | None, now: datetime
) -> Iterator[datetime]:
    """The instants the job will fire at, starting with its stored next fire time.

    Each one after the first is the rule's next occurrence after the previous, exactly as
    the beat computes it when it dispatches on time, so the preview and
    ``status.nextExecutionTime`` agree. A job with no stored time (a disabled one)
    previews what it would do if it were enabled now.
    """
    current = next_fire if next_fire is not None else first_fire(properties, now)
    while current is not None:
        yield current
        if properties.recurrence is None:
            return
        start = properties.start_time or current
        current = next_occurrence(properties.recurrence, start, current)
