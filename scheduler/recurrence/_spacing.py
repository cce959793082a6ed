"""A cheap lower bound of the gap between consecutive occurrences (``min_spacing``).

Private to :mod:`scheduler.recurrence.engine`. The quota check (Azure's ``maxRecurrence``)
needs the shortest gap a rule can produce without listing its occurrences, so the bound
is read off the rule's structure. It is exact for plain intervals and most schedules,
and never larger than the true minimum: where DST can shorten a gap, the zone's largest
forward jump is subtracted, and every instant lies on a lattice that bounds it below.
"""

from __future__ import annotations

from itertools import pairwise
from math import gcd

from scheduler.recurrence._calendar import DAY_S, Calendar, Unit
from scheduler.recurrence._clocks import ElapsedZoneClock, FixedClock, ZoneClock, zone_shifts

__all__ = ["gap_lower_bound"]


def gap_lower_bound(calendar: Calendar, clock: FixedClock | ZoneClock | ElapsedZoneClock) -> int:
    """A lower bound of the gap between consecutive occurrences (exact where cheap)."""
    gap = _wall_gap(calendar)
    if isinstance(clock, FixedClock):
        return gap
    shifts = zone_shifts(clock.zone.key)
    # Every instant is a candidate minus an offset, so all lie on one lattice.
    lattice = gcd(DAY_S, *(t - calendar.times[0] for t in calendar.times), shifts.step)
    if isinstance(clock, ElapsedZoneClock):
        # Whole-hour jumps keep the minute of the hour, so "every hour at M" keeps its gaps.
        whole_hours = shifts.step % 3_600 == 0 and _hour_periodic(calendar.times)
        return gap if whole_hours else lattice
    # A forward jump shortens a wall-clock gap by at most its length.
    return min(gap, max(gap - shifts.largest_forward, lattice))


def _hour_periodic(times: tuple[int, ...]) -> bool:
    chosen = set(times)
    return all((t + 3_600) % DAY_S in chosen for t in times)


def _wall_gap(calendar: Calendar) -> int:
    times, unit = calendar.times, calendar.unit
    if unit.is_subday and calendar.interval > 1 and _same_in_every_period(times, unit.value):
        # The chosen periods hold the same times: the gap across two of them is exact.
        period = [t for t in times if t < unit.value]
        return min(
            _inner_gap(period) or DAY_S, unit.value * calendar.interval - (period[-1] - period[0])
        )
    around = times[0] + DAY_S - times[-1]  # from the last time of a day to the next day's first
    if unit.is_subday:
        return min(_inner_gap(times) or around, around)
    across = _day_gap(calendar) * DAY_S - (times[-1] - times[0])
    return min(_inner_gap(times) or across, across)


def _inner_gap(times: tuple[int, ...] | list[int]) -> int | None:
    return min((b - a for a, b in pairwise(times)), default=None)


def _same_in_every_period(times: tuple[int, ...], size: int) -> bool:
    # times are hours x minutes x seconds, so a full count means every period has them
    period = sum(1 for t in times if t < size)
    return period > 0 and period * (DAY_S // size) == len(times)


def _day_gap(calendar: Calendar) -> int:
    """Fewest days between two consecutive firing days (a lower bound)."""
    k, days = calendar.interval, calendar.days
    if calendar.unit is Unit.DAY:
        return k
    if calendar.unit is Unit.WEEK:
        chosen = sorted(days.weekdays or ())
        steps = [b - a for a, b in pairwise(chosen)]
        return min([*steps, 7 * k - (chosen[-1] - chosen[0])])
    single_day = (len(days.month_days or ()) + len(days.nth_weekdays or ())) == 1 and (
        not days.nth_weekdays or days.nth_weekdays[0][1] is not None
    )
    if not single_day:
        return 1
    if calendar.unit is Unit.MONTH:
        return 28 * k  # the same day or nth weekday, k months on
    if days.months is not None and len(days.months) == 1:
        return 7 * -(-(365 * k - 6) // 7) if days.nth_weekdays else 365 * k
    return 28
