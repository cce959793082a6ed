"""Candidate wall-clock times of a recurrence, as whole seconds.

Private to :mod:`scheduler.recurrence.engine`. A time here is an ``int``: seconds since
0001-01-01T00:00 on the proleptic Gregorian calendar (``date.toordinal() * 86400``
plus the second of the day), read on *some* wall clock — the rule's zone or a fixed
UTC offset; :mod:`scheduler.recurrence._clocks` turns these into instants. Integers keep the hot
path free of datetime arithmetic, which is what makes ``next_at_or_after`` cheap.

A :class:`Calendar` is an RFC 5545 rule reduced to three parts: a period (unit and
interval, phased on the origin), the days that may fire inside a period
(:class:`DayFilter`) and the times of day that fire on such a day (``times``).
"""

from __future__ import annotations

import calendar as _gregorian
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from math import gcd

__all__ = ["DAY_S", "Calendar", "DayFilter", "Unit"]

DAY_S = 86_400
_LAST_DAY = date.max.toordinal()
_END_WALL = (_LAST_DAY + 1) * DAY_S  # the first wall second no date represents


class Unit(Enum):
    """A frequency; the value is its length in seconds, or 0 for calendar months/years."""

    SECOND = 1
    MINUTE = 60
    HOUR = 3_600
    DAY = DAY_S
    WEEK = 7 * DAY_S
    MONTH = -1
    YEAR = -2

    @property
    def is_subday(self) -> bool:
        """Whether a period of this unit is shorter than a day."""
        return self in (Unit.SECOND, Unit.MINUTE, Unit.HOUR)


# Periods in one Gregorian cycle (400 years, 146,097 days = 20,871 weeks): a rule that
# fires nowhere in a whole cycle of its periods fires never.
_CYCLE = {Unit.DAY: 146_097, Unit.WEEK: 20_871, Unit.MONTH: 4_800, Unit.YEAR: 400}


@dataclass(frozen=True, eq=False)
class DayFilter:
    """Which days of a month may fire.

    Attributes:
        months: allowed months (1..12), or None for all.
        month_days: days of the month, negative ones counted from the end.
        nth_weekdays: ``(weekday, n)`` pairs, weekday 0 = Monday; ``n`` is the
            occurrence in the month (±1..5) or None for every such weekday.
        weekdays: allowed weekdays, 0 = Monday.
        any_of: combine ``month_days``/``nth_weekdays``/``weekdays`` with OR (cron's
            rule when both day fields are restricted) instead of AND (RFC 5545).
    """

    months: frozenset[int] | None = None
    month_days: tuple[int, ...] | None = None
    nth_weekdays: tuple[tuple[int, int | None], ...] | None = None
    weekdays: frozenset[int] | None = None
    any_of: bool = False
    _memo: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict, repr=False)

    @property
    def is_everyday(self) -> bool:
        """Whether every day passes."""
        return (self.months, self.month_days, self.nth_weekdays, self.weekdays) == (
            None,
            None,
            None,
            None,
        )

    def days_of_month(self, year: int, month: int) -> tuple[int, ...]:
        """The sorted days of ``year-month`` that pass, memoised per month."""
        key = (year, month)
        days = self._memo.get(key)
        if days is None:
            if len(self._memo) > 4_096:  # a long-lived rule visits ~12 months a year
                self._memo.clear()
            days = self._memo[key] = self._compute(year, month)
        return days

    def _compute(self, year: int, month: int) -> tuple[int, ...]:
        if self.months is not None and month not in self.months:
            return ()
        first_weekday, length = _gregorian.monthrange(year, month)
        sets = [
            s
            for s in (
                self._by_month_day(length),
                self._by_nth_weekday(first_weekday, length),
                self._by_weekday(first_weekday, length),
            )
            if s is not None
        ]
        if not sets:
            return tuple(range(1, length + 1))
        chosen = set.union(*sets) if self.any_of else set.intersection(*sets)
        return tuple(sorted(chosen))

    def _by_month_day(self, length: int) -> set[int] | None:
        if self.month_days is None:
            return None
        return {d if d > 0 else length + 1 + d for d in self.month_days if -length <= d <= length}

    def _by_nth_weekday(self, first_weekday: int, length: int) -> set[int] | None:
        if self.nth_weekdays is None:
            return None
        chosen: set[int] = set()
        for weekday, n in self.nth_weekdays:
            days = range(1 + (weekday - first_weekday) % 7, length + 1, 7)
            if n is None:
                chosen.update(days)
            elif -len(days) <= n <= len(days):
                chosen.add(days[n - 1 if n > 0 else n])
        return chosen

    def _by_weekday(self, first_weekday: int, length: int) -> set[int] | None:
        if self.weekdays is None:
            return None
        return {d for d in range(1, length + 1) if (first_weekday + d - 1) % 7 in self.weekdays}


@dataclass(frozen=True, eq=False)
class Calendar:
    """The candidate wall times of a rule, from ``origin`` on.

    Attributes:
        unit: the period.
        interval: every how many periods; the phase is the origin's period.
        origin: the first wall second that may fire; also fixes the phase.
        times: sorted seconds of the day that fire on a chosen day.
        days: the days that fire (only for units of a day and longer).
    """

    unit: Unit
    interval: int
    origin: int
    times: tuple[int, ...]
    days: DayFilter = field(default_factory=DayFilter)

    def next_at_or_after(self, wall: int) -> int | None:
        """The first candidate at or after ``wall``, or None when there is none."""
        wall = max(wall, self.origin)
        if wall >= _END_WALL:
            return None
        if self.unit.is_subday:
            return self._next_subday(wall)
        day, second = divmod(wall, DAY_S)
        i = bisect_left(self.times, second)
        if i < len(self.times):
            found = self._next_day(day)
            if found == day:
                return day * DAY_S + self.times[i]
        else:
            found = self._next_day(day + 1)
        return None if found is None else found * DAY_S + self.times[0]

    # -- below a day: every candidate time checked against the interval's phase --

    def _next_subday(self, wall: int) -> int | None:
        size, k = self.unit.value, self.interval
        phase = (self.origin // size) % k
        day, second = divmod(wall, DAY_S)
        start = bisect_left(self.times, second)
        # The pattern of chosen periods repeats after lcm(size * k, one day).
        cycle_days = size * k // gcd(size * k, DAY_S)
        for d in range(day, min(day + cycle_days + 1, _LAST_DAY + 1)):
            base = d * DAY_S
            for j in range(start, len(self.times)):
                candidate = base + self.times[j]
                if k == 1 or (candidate // size - phase) % k == 0:
                    return candidate
            start = 0
        return None

    # -- a day and longer: chosen periods, then days inside them --

    def _next_day(self, day: int) -> int | None:
        """The first day at or after ``day`` that fires, in a chosen period."""
        k = self.interval
        if k == 1:  # every period is chosen: look for the day directly, across periods
            return self._scan_days(day, _LAST_DAY + 1)
        origin_index = self._period_index(self.origin // DAY_S)
        index = self._period_index(day)
        for _ in range(_CYCLE[self.unit] // gcd(k, _CYCLE[self.unit]) + 1):
            behind = (index - origin_index) % k
            if behind:
                index += k - behind
                day = self._period_start(index)
            if day > _LAST_DAY:
                return None
            found = self._first_day_in_period(index, day)
            if found is not None:
                return found
            index += k
            day = self._period_start(index)
        return None

    def _period_index(self, day: int) -> int:
        if self.unit is Unit.DAY:
            return day
        if self.unit is Unit.WEEK:
            return (day - 1) // 7  # ordinal 1 (0001-01-01) is a Monday
        d = date.fromordinal(day)
        return d.year * 12 + d.month - 1 if self.unit is Unit.MONTH else d.year

    def _period_start(self, index: int) -> int:
        if self.unit is Unit.DAY:
            return index
        if self.unit is Unit.WEEK:
            return index * 7 + 1
        year, month = divmod(index, 12) if self.unit is Unit.MONTH else (index, 0)
        if year > date.max.year:
            return _LAST_DAY + 1
        return date(year, month + 1, 1).toordinal()

    def _first_day_in_period(self, index: int, day: int) -> int | None:
        return self._scan_days(day, self._period_start(index + 1))

    def _scan_days(self, day: int, end: int) -> int | None:
        """The first day in ``[day, end)`` that passes the day filter."""
        if self.days.is_everyday:
            return day if day < min(end, _LAST_DAY + 1) else None
        for _ in range(_CYCLE[Unit.MONTH] + 1):
            if day >= end or day > _LAST_DAY:
                return None
            d = date.fromordinal(day)
            days = self.days.days_of_month(d.year, d.month)
            i = bisect_left(days, d.day)
            if i < len(days):
                found = day + days[i] - d.day
                return found if found < end else None
            day += _gregorian.monthrange(d.year, d.month)[1] - d.day + 1
        return None  # no day passes in a whole 400-year cycle
