"""Stored jobs rendered for an answer, where one that cannot be rendered is contained.

A job written by an older Takt, by a bug or behind the API's back may hold a value that
reads but does not render (a date that overflows once converted to UTC). Alone it is a
409 :class:`~scheduler.errors.UnreadableJob` that says to delete it; in a list it is left
out and logged, so it never takes its collection's list down. (The store leaves out the
ones it cannot even read, likewise.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from scheduler.errors import UnreadableJob
from scheduler.store.jobs import JobRecord

__all__ = ["render_job", "render_jobs"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What rendering a damaged record raises (pydantic's errors are ValueErrors).
_RENDER_ERRORS = (KeyError, TypeError, ValueError, OverflowError)


def render_job(record: JobRecord, render: Callable[[JobRecord], T]) -> T:
    """``render(record)``; :class:`UnreadableJob` if the record cannot be rendered."""
    try:
        return render(record)
    except _RENDER_ERRORS as exc:
        raise UnreadableJob.of(record.jid, exc) from exc


def render_jobs(records: Iterable[JobRecord], render: Callable[[JobRecord], T]) -> list[T]:
    """``render`` of each record, leaving out (and logging) those that cannot be rendered."""
    rendered = []
    for record in records:
        try:
            rendered.append(render_job(record, render))
        except UnreadableJob as exc:
            log.warning("left out of a list: %s", exc)
    return rendered
