"""Conversions between aware datetimes and the epoch milliseconds stored in Redis, and the
last instant anything is scheduled at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["END_OF_TIME", "from_ms", "to_ms", "utcnow"]

#: The last instant a job fires at: a recurrence ends here, a one-shot job beyond it never
#: fires. A day before datetime's end, so that showing it at any UTC offset (at most
#: ±24 h) and comparing it stays within what datetime represents.
END_OF_TIME = datetime(9999, 12, 30, tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are refused)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: a UTC offset is required")
    return (moment - _EPOCH) // _MS  # exact: a float timestamp can round down a whole ms


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def from_ms(epoch_ms: int | float | str) -> datetime:
    """The UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(int(float(epoch_ms)) / 1000, UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC (a parameter everywhere else; only entry points call it)."""
    return datetime.now(UTC)
