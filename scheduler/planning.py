"""When a job fires next: pure functions over a job's definition, with ``now`` a parameter.

The recurrence engine answers "which instants does this rule produce"; this module adds
the policy of a running scheduler on top: a job created with a start time in the past
fires at its first occurrence from now on (a one-shot job fires at once), and after a
late dispatch (the beats were down) one catch-up run is made, then the normal schedule
resumes from ``now``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from scheduler.models import JobProperties, JobRecurrence
from scheduler.recurrence import next_occurrence

__all__ = ["first_fire", "following_fire", "is_last_occurrence"]

_EPSILON = timedelta(microseconds=1)


def first_fire(properties: JobProperties, now: datetime) -> datetime | None:
    """The first instant a new or replaced job fires (None: it never will)."""
    start = properties.start_time or now
    if properties.recurrence is None:
        return max(start, now) if start >= now else now
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
