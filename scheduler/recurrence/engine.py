"""When a job fires: the recurrence engine (pure functions, no clock of its own).

A recurrence is Azure Scheduler's JSON object (``frequency``, ``interval``, ``count``,
``endTime``, ``schedule``) plus Takt's extensions (``Second``/``Year`` frequencies,
``schedule.months``, ``timeZone``, ``cron``); ``None`` is a one-shot job that fires once
at its start time. ``docs/recurrence.md`` states the semantics and the DST policy.

Every rule ends at :data:`scheduler.clock.END_OF_TIME` (9999-12-30T00:00Z) at the latest,
whatever its count or start time: past it there is simply no next occurrence, so the
engine never computes a datetime Python cannot represent.

The beat asks "what is the next occurrence after now?" millions of times, so a
recurrence is compiled once into a :class:`Rule` (cached by its JSON and start time)
whose :meth:`Rule.next_after` never iterates from the start time: plain intervals are
arithmetic, calendar rules jump straight to the period that holds ``after``.

Example::

    >>> from datetime import datetime, timezone
    >>> start = datetime(2025, 1, 6, 9, 30, tzinfo=timezone.utc)
    >>> weekly = {"frequency": "Week", "schedule": {"weekDays": ["Monday", "Friday"]}}
    >>> str(next_occurrence(weekly, start, after=start))
    '2025-01-10 09:30:00+00:00'
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from scheduler.errors import InvalidRecurrence
from scheduler.recurrence._calendar import DAY_S, Calendar, DayFilter, Unit
from scheduler.recurrence._clocks import (
    EPOCH_S,
    LAST_INSTANT_S,
    ElapsedZoneClock,
    FixedClock,
    ZoneClock,
    from_seconds,
    to_seconds,
)
from scheduler.recurrence._spacing import gap_lower_bound
from scheduler.recurrence._spec import Spec, parse_spec, parse_time

# Its public names are those scheduler.recurrence exports.

# A count on a calendar rule is resolved by stepping through that many occurrences once
# (2-8 µs each); this keeps the worst case under a second.
_MAX_STEPPED_COUNT = 100_000
# Stands in for an unknown start time (a Monday, so nothing about it is special).
_REFERENCE_START = datetime(2001, 1, 1, tzinfo=UTC)


def iter_occurrences(recurrence: object, start_time: datetime) -> Iterator[datetime]:
    """Yield every occurrence from ``start_time`` on, in strictly increasing order.

    Args:
        recurrence: None (one shot at ``start_time``), the wire-form dict, or a pydantic
            model of it.
        start_time: an aware datetime; no occurrence is earlier.

    Raises:
        InvalidRecurrence: the recurrence or the start time is refused.
    """
    return iter(compile_recurrence(recurrence, start_time))


def next_occurrence(recurrence: object, start_time: datetime, after: datetime) -> datetime | None:
    """The first occurrence strictly after ``after``, or None when there is none.

    Raises:
        InvalidRecurrence: the recurrence, the start time or ``after`` is refused.
    """
    return compile_recurrence(recurrence, start_time).next_after(after)


def min_spacing(recurrence: object, start_time: datetime | None = None) -> timedelta | None:
    """The shortest gap between two consecutive occurrences, or a safe lower bound.

    Never larger than the true minimum (the quota check relies on that); exact for
    plain intervals and for most schedules. None when the rule fires at most once.
    Without ``start_time`` a reference start stands in and ``endTime`` is ignored.
    """
    if start_time is None:
        return compile_recurrence(_without_end(recurrence), _REFERENCE_START).min_spacing
    return compile_recurrence(recurrence, start_time).min_spacing


def validate_recurrence(recurrence: object, start_time: datetime | None = None) -> None:
    """Raise :class:`InvalidRecurrence` (naming the field) unless the rule is accepted.

    Without ``start_time`` everything that does not depend on it is checked.
    """
    if start_time is None:
        compile_recurrence(_without_end(recurrence), _REFERENCE_START)
        _check_end_format(recurrence)
    else:
        compile_recurrence(recurrence, start_time)


def compile_recurrence(recurrence: object, start_time: datetime) -> Rule:
    """The compiled :class:`Rule`, cached by (canonical JSON, start time).

    Raises:
        InvalidRecurrence: the recurrence or the start time is refused.
    """
    start = parse_time(start_time, "startTime")
    return _compile(_canonical_json(recurrence), start.isoformat())


def rule_shape(recurrence: object) -> RuleShape:
    """The recurrence checked and parsed, to be anchored at many start times.

    Raises:
        InvalidRecurrence: the recurrence is refused.
    """
    canonical = _canonical_json(recurrence)
    return _shape(canonical)


class RuleShape:
    """A recurrence not yet anchored at a start time (see :func:`rule_shape`).

    Jobs often share a rule and differ only in their start time (each created at its own
    instant): :meth:`at` anchors the shared parse at one start. A plain interval is
    anchored by arithmetic, with no cache growing per start; any other rule goes through
    :func:`compile_recurrence`'s cache.
    """

    __slots__ = ("_canonical", "_plain")

    def __init__(self, canonical: str, plain: bool) -> None:
        self._canonical = canonical
        self._plain = plain

    def at(self, start_time: datetime) -> Rule:
        """The rule anchored at ``start_time`` (what :func:`compile_recurrence` returns).

        Raises:
            InvalidRecurrence: the start time is refused (naive, or after ``endTime``).
        """
        start = parse_time(start_time, "startTime")
        if self._plain:
            return _anchor(self._canonical, start)
        return _compile(self._canonical, start.isoformat())


class _Source(Protocol):
    def first_at_or_after(self, instant: int) -> int | None: ...

    def spacing(self) -> int: ...


class Rule:
    """A compiled recurrence anchored at a start time.

    Attributes:
        start: the start time it was compiled for.
    """

    __slots__ = ("_endless", "_first", "_last", "_microsecond", "_source", "_tz", "start")

    def __init__(
        self,
        source: _Source,
        start: datetime,
        *,
        last: int | None,
        microsecond: int,
        tz: timezone | ZoneInfo,
    ) -> None:
        start_s, start_us = to_seconds(start)
        self.start = start
        self._source = source
        self._microsecond = microsecond  # every occurrence carries it (cron: 0)
        self._tz = tz
        self._first = start_s + (1 if start_us > microsecond else 0)
        self._last = LAST_INSTANT_S if last is None else min(last, LAST_INSTANT_S)
        self._endless = last is None  # no count, no endTime: the grid has no last

    def next_after(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after ``after`` (aware), or None."""
        if after.utcoffset() is None:
            raise InvalidRecurrence(f"after: {after.isoformat()} has no UTC offset", field="after")
        seconds, microsecond = to_seconds(after)
        found = self._next_second(seconds + (1 if microsecond >= self._microsecond else 0))
        return None if found is None else from_seconds(found, self._microsecond, self._tz)

    def __iter__(self) -> Iterator[datetime]:
        found = self._next_second(self._first)
        while found is not None:
            yield from_seconds(found, self._microsecond, self._tz)
            found = self._next_second(found + 1)

    @property
    def min_spacing(self) -> timedelta | None:
        """See :func:`min_spacing`."""
        first = self._next_second(self._first)
        if first is None or self._next_second(first + 1) is None:
            return None
        return timedelta(seconds=self._source.spacing())

    def grid_us(self) -> tuple[int, int, int | None] | None:
        """A plain interval's occurrences as arithmetic on Unix epoch µs: (first,
        step, last or None), the occurrences being first + k step up to last. None for
        any other rule, and for a plain one that never fires.

        ``next_after(t)`` is then the first ``first + k step > t`` not after ``last``:
        what the beat's claim script computes in Redis for such jobs (see CLAIM_DUE).
        """
        if not isinstance(self._source, _Periodic):
            return None
        first = self._next_second(self._first)
        if first is None:
            return None
        micro = self._microsecond
        last = None if self._endless else (self._last - EPOCH_S) * 1_000_000 + micro
        return (first - EPOCH_S) * 1_000_000 + micro, self._source.step * 1_000_000, last

    def _next_second(self, instant: int) -> int | None:
        if instant > self._last:
            return None
        found = self._source.first_at_or_after(max(instant, self._first))
        if found is None or found > self._last:
            return None
        return found


# -- compiling --------------------------------------------------------------------


@lru_cache(maxsize=16_384)
def _compile(canonical: str, start_iso: str) -> Rule:
    return _anchor(canonical, datetime.fromisoformat(start_iso))


@lru_cache(maxsize=1_024)
def _shape(canonical: str) -> RuleShape:
    if canonical == "null":
        return RuleShape(canonical, plain=True)
    plain = isinstance(_source(_spec(canonical), _REFERENCE_START), _Periodic)
    return RuleShape(canonical, plain)


def _anchor(canonical: str, start: datetime) -> Rule:
    start_s, _ = to_seconds(start)
    own_tz = timezone(start.utcoffset() or timedelta(0))
    if canonical == "null":  # a one-shot job: the start time is the only occurrence
        return Rule(
            _Periodic(start_s, DAY_S),
            start,
            last=start_s,
            microsecond=start.microsecond,
            tz=own_tz,
        )
    spec = _spec(canonical)
    if spec.end is not None and spec.end < start:
        raise InvalidRecurrence(
            f"recurrence.endTime: {spec.end.isoformat()} is before startTime {start.isoformat()}",
            field="recurrence.endTime",
        )
    microsecond = 0 if spec.cron else start.microsecond  # cron fires on whole minutes
    first = start_s + (1 if start.microsecond > microsecond else 0)
    if first > LAST_INSTANT_S:  # starts after the end of time (stored by an old version)
        return Rule(_Periodic(start_s, DAY_S), start, last=first - 1, microsecond=0, tz=own_tz)
    source = _source(spec, start)
    if source.first_at_or_after(first) is None:
        field = "recurrence.cron" if spec.cron else "recurrence.schedule"
        raise InvalidRecurrence(f"{field}: matches no date at all", field=field)
    last = _last_second(spec, source, first, microsecond)
    return Rule(source, start, last=last, microsecond=microsecond, tz=spec.zone or own_tz)


@lru_cache(maxsize=1_024)
def _spec(canonical: str) -> Spec:
    """The checked rule, cached apart from any start time: jobs that differ only in their
    start (100,000 jobs "every minute", each created at its own instant) parse it once."""
    raw = json.loads(canonical)
    if not isinstance(raw, dict):
        raise InvalidRecurrence("recurrence: must be a JSON object or null", field="recurrence")
    return parse_spec(raw)


def _last_second(spec: Spec, source: _Source, first: int, microsecond: int) -> int | None:
    """The latest second that may fire: from endTime, from count, whichever is first."""
    if (
        spec.count is not None
        and spec.count > _MAX_STEPPED_COUNT
        and not isinstance(source, _Periodic)
    ):
        raise InvalidRecurrence(
            f"recurrence.count: {spec.count} is more than {_MAX_STEPPED_COUNT:,}, the most for "
            "a rule with a schedule, a calendar frequency, a time zone or cron (a plain "
            "interval takes any count; endTime has no limit)",
            field="recurrence.count",
        )
    last = None
    if spec.end is not None:
        end_s, end_us = to_seconds(spec.end)
        last = end_s - (1 if microsecond > end_us else 0)
    if spec.count is not None:
        nth = _nth(source, first, spec.count)
        last = nth if last is None or nth is None else min(last, nth)
    return last


def _nth(source: _Source, first: int, count: int) -> int | None:
    """The ``count``-th occurrence: arithmetic for plain intervals, else one pass."""
    if isinstance(source, _Periodic):
        return max(source.start, first) + (count - 1) * source.step
    found = source.first_at_or_after(first)
    for _ in range(count - 1):
        if found is None:
            break
        found = source.first_at_or_after(found + 1)
    return found


@dataclass(frozen=True)
class _Periodic:
    """start, start + step, start + 2 step, ... in real elapsed time."""

    start: int
    step: int

    def first_at_or_after(self, instant: int) -> int:
        if instant <= self.start:
            return self.start
        return self.start + -(-(instant - self.start) // self.step) * self.step

    def spacing(self) -> int:
        return self.step


@dataclass(frozen=True)
class _Calendared:
    """A calendar read on a clock."""

    calendar: Calendar
    clock: FixedClock | ZoneClock | ElapsedZoneClock

    def first_at_or_after(self, instant: int) -> int | None:
        return self.clock.first_at_or_after(self.calendar, instant)

    def spacing(self) -> int:
        # computed on demand: in a zone it probes the zone's history once (~50 ms)
        return gap_lower_bound(self.calendar, self.clock)


def _source(spec: Spec, start: datetime) -> _Source:
    """How the rule's occurrences are found."""
    start_s, _ = to_seconds(start)
    if spec.cron is not None:
        return _cron_source(spec, start)
    unit = spec.frequency
    assert unit is not None  # parse_spec demands frequency or cron
    plain = all(
        f is None
        for f in (
            spec.minutes,
            spec.hours,
            spec.weekdays,
            spec.month_days,
            spec.occurrences,
            spec.months,
        )
    )
    elapsed = unit.is_subday and spec.hours is None
    if plain and (elapsed or (spec.zone is None and unit in (Unit.DAY, Unit.WEEK))):
        return _Periodic(start_s, unit.value * spec.interval)
    zone = spec.zone
    if elapsed or zone is None:  # the fixed offset that startTime has (in the zone)
        clock: FixedClock | ZoneClock = FixedClock(_offset(start, zone))
    else:
        clock = ZoneClock(zone)
    wall = start_s + _offset(start, zone)
    calendar = Calendar(
        unit, spec.interval, wall, _times(spec, unit, wall), _days(spec, unit, wall)
    )
    return _Calendared(calendar, clock)


def _cron_source(spec: Spec, start: datetime) -> _Source:
    cron = spec.cron
    assert cron is not None
    times = tuple(sorted(h * 3_600 + m * 60 for h in cron.hours for m in cron.minutes))
    days = DayFilter(
        months=cron.months, month_days=cron.month_days, weekdays=cron.weekdays, any_of=cron.any_day
    )
    # Interval 1 has no phase, so the origin only has to lie before any start time.
    calendar = Calendar(Unit.DAY, 1, DAY_S, times, days)
    zone = spec.zone
    clock: FixedClock | ZoneClock | ElapsedZoneClock
    if zone is None:
        clock = FixedClock(_offset(start, None))
    elif cron.elapsed:
        clock = ElapsedZoneClock(zone)
    else:
        clock = ZoneClock(zone)
    return _Calendared(calendar, clock)


def _offset(start: datetime, zone: ZoneInfo | None) -> int:
    moment = start if zone is None else start.astimezone(zone)
    offset = moment.utcoffset() or timedelta(0)
    return offset.days * DAY_S + offset.seconds


def _times(spec: Spec, unit: Unit, wall: int) -> tuple[int, ...]:
    """Seconds of the day that fire. What the schedule leaves out comes from startTime,
    except that minutes without hours fire in every hour (Azure's examples)."""
    h0, m0, s0 = (wall % DAY_S) // 3_600, (wall % 3_600) // 60, wall % 60
    seconds = range(60) if unit is Unit.SECOND else (s0,)
    minutes = spec.minutes or (range(60) if unit in (Unit.SECOND, Unit.MINUTE) else (m0,))
    every_hour = unit.is_subday or spec.minutes is not None
    hours = spec.hours or (range(24) if every_hour else (h0,))
    return tuple(sorted(h * 3_600 + m * 60 + s for h in hours for m in minutes for s in seconds))


def _days(spec: Spec, unit: Unit, wall: int) -> DayFilter:
    """Days that fire; RFC 5545's defaults from startTime fill what is left out."""
    first = datetime.fromordinal(wall // DAY_S)
    months, month_days = spec.months, spec.month_days
    if unit in (Unit.MONTH, Unit.YEAR) and month_days is None and spec.occurrences is None:
        month_days = (first.day,)
        if unit is Unit.YEAR and months is None:
            months = frozenset({first.month})
    weekdays = spec.weekdays
    if unit is Unit.WEEK and weekdays is None:
        weekdays = frozenset({first.weekday()})
    return DayFilter(
        months=months, month_days=month_days, nth_weekdays=spec.occurrences, weekdays=weekdays
    )


def canonical_recurrence(recurrence: Mapping[str, Any]) -> str:
    """A wire recurrence's canonical JSON: the key of the engine's caches."""
    return _canonical_json(recurrence)


def _canonical_json(recurrence: object) -> str:
    cached = getattr(recurrence, "canonical_json", None)
    if isinstance(cached, str):
        return cached
    if recurrence is not None and hasattr(recurrence, "model_dump"):
        recurrence = recurrence.model_dump(by_alias=True, exclude_none=True, mode="json")
    if recurrence is not None and not isinstance(recurrence, Mapping):
        raise InvalidRecurrence("recurrence: must be a JSON object or null", field="recurrence")
    try:
        return _CANONICAL.encode(recurrence)
    except (TypeError, ValueError) as exc:
        raise InvalidRecurrence(f"recurrence: not JSON ({exc})", field="recurrence") from exc


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()  # a naive one stays naive and is refused later
    raise TypeError(f"{type(value).__name__} is not JSON")


#: One encoder for every rule (json.dumps with options builds a new one per call, which
#: cost more than the encoding: the beat canonicalises a rule per firing).
_CANONICAL = json.JSONEncoder(sort_keys=True, default=_json_value)


def _without_end(recurrence: object) -> object:
    if recurrence is not None and hasattr(recurrence, "model_dump"):
        recurrence = recurrence.model_dump(by_alias=True, exclude_none=True, mode="json")
    if isinstance(recurrence, Mapping):
        return {k: v for k, v in recurrence.items() if str(k).lower() != "endtime"}
    return recurrence


def _check_end_format(recurrence: object) -> None:
    if recurrence is not None and hasattr(recurrence, "model_dump"):
        recurrence = recurrence.model_dump(by_alias=True, exclude_none=True, mode="json")
    if isinstance(recurrence, Mapping):
        for key, value in recurrence.items():
            if str(key).lower() == "endtime" and value is not None:
                parse_time(value, "recurrence.endTime")
