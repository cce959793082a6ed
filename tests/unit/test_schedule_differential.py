"""Takt's advanced schedules (Azure recurrence) against ``dateutil.rrule``.

Thousands of seeded random rules — frequency, interval, a schedule of minutes, hours,
weekDays, monthDays (negative ones too), monthlyOccurrences (±1..5, or every such
weekday), months; count, endTime; with and without a time zone, started anywhere in
2000-2040 and often just before a DST change — are translated into the equivalent
RRULE (BYMINUTE, BYHOUR, BYDAY with ordinals, BYMONTHDAY, BYMONTH, COUNT, UNTIL) and
the occurrences must be the same: the first ones from ``startTime`` and the next one
after a random instant.

The translation states Azure's rules where they depart from a literal RRULE
(docs/recurrence.md, "Semantics" and "Time zones and DST"):

* ``minutes`` without ``hours`` fire in every hour (Azure's examples): BYHOUR=0..23;
* ``monthlyOccurrences`` count within each month, also for Year: BYMONTH=1..12 when
  no ``months`` are given;
* every occurrence keeps ``startTime``'s microseconds (dateutil drops them);
* in a zone, rrule's wall times are read as PEP 495 ``fold=0`` (a time in a DST gap
  moves forward by the gap, an ambiguous one is its first instance) and the occurrences
  are the *set* of those instants: ``count`` counts instants, so two wall times that
  land on one instant are one occurrence; ``endTime`` is an instant, not a wall time;
* Second, Minute and Hour rules that name no ``hours`` follow elapsed time: their wall
  times are those of ``startTime``'s UTC offset in the zone, all year round.
"""

from __future__ import annotations

import random
from bisect import insort
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from itertools import islice
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule as du

from scheduler.errors import InvalidRecurrence
from scheduler.recurrence import compile_recurrence

SEED = 20261130
RULES = 2_000
FIRES = 8  # occurrences compared per rule
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham",
         "America/Sao_Paulo", "Asia/Kolkata")  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SUBDAY = ("second", "minute", "hour")
_DU_FREQUENCY: dict[str, Literal[0, 1, 2, 3, 4, 5, 6]] = {
    "second": du.SECONDLY,
    "minute": du.MINUTELY,
    "hour": du.HOURLY,
    "day": du.DAILY,
    "week": du.WEEKLY,
    "month": du.MONTHLY,
    "year": du.YEARLY,
}
_DU_WEEKDAYS = (du.MO, du.TU, du.WE, du.TH, du.FR, du.SA, du.SU)
_LONGER_THAN_A_GAP = timedelta(hours=2)  # in ZONES
# Rules are compared over 30 years from their start (dateutil walks a sparse rule period
# by period); one that Takt finds no date for must have none there either.
_HORIZON = timedelta(days=30 * 365)


@dataclass
class Case:
    recurrence: dict[str, Any]
    start: datetime
    after_fraction: float  # where, among the first occurrences, next_after is asked
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.recurrence} from {self.start.isoformat()}"


@pytest.mark.timeout(300)  # about 10 s of CPU; more on a machine busy with other tests
def test_schedules_agree_with_dateutil_on_thousands_of_random_rules() -> None:
    # Given seeded random Azure recurrences with their RRULE equivalents
    rng = random.Random(SEED)
    failures: list[str] = []
    for _ in range(RULES):
        case = _case(rng)
        # When Takt and dateutil list the occurrences
        # Then they are the same instants
        problem = _disagreement(case)
        if problem is not None:
            failures.append(f"{case}: {problem}")
    assert not failures, f"{len(failures)} disagreements, e.g.:\n" + "\n".join(failures[:15])


def _disagreement(case: Case) -> str | None:
    try:
        rule = compile_recurrence(case.recurrence, case.start)
    except InvalidRecurrence as exc:
        if "matches no date" in str(exc) and next(_walls(case, _HORIZON), None) is None:
            return None
        return f"Takt refuses: {exc}"
    expected = _reference(case)
    horizon = case.start + _HORIZON - timedelta(days=1)  # dateutil's UNTIL is a wall time
    got = [moment.astimezone(UTC) for moment in islice(rule, FIRES) if moment <= horizon]
    if got != expected:
        return f"from the start: Takt {_iso(got)}, dateutil {_iso(expected)}"
    return _next_after_disagreement(case, expected, rule.next_after)


def _next_after_disagreement(case: Case, expected: list[datetime], next_after: Any) -> str | None:
    # an instant from an hour before the start up to (not including) the last one listed
    first = case.start - timedelta(hours=1)
    last = expected[-1] if expected else first + timedelta(hours=1)
    after = first + (last - first) * case.after_fraction
    want = next((moment for moment in expected if moment > after), None)
    got = next_after(after)
    if (None if got is None else got.astimezone(UTC)) != want:
        return f"next after {after.isoformat()}: Takt {got}, dateutil {want}"
    return None


# -- the reference: dateutil's wall times, read as Takt's documented rule says ----------


def _reference(case: Case) -> list[datetime]:
    """The first FIRES occurrences: the sorted set of instants of rrule's wall times that
    are not before startTime, cut by count and endTime."""
    recurrence, start = case.recurrence, case.start
    count, end = recurrence.get("count"), _end(recurrence)
    wanted = FIRES if count is None else min(FIRES, count)
    first: list[datetime] = []  # the `wanted` earliest instants so far, sorted
    horizon = start + _HORIZON - timedelta(days=1)
    # a fixed offset maps wall times to instants in order; a zone but for a gap's shift
    lookahead = _LONGER_THAN_A_GAP if isinstance(_clock(case), ZoneInfo) else timedelta(0)
    for wall, instant in _instants(case):
        if instant > horizon:
            break
        if instant >= start and instant not in first:
            insort(first, instant)
            del first[wanted:]
        if len(first) == wanted and wall - lookahead > _wall_of(case, first[-1]):
            break
    return [moment for moment in first if end is None or moment <= end]


def _instants(case: Case) -> Iterator[tuple[datetime, datetime]]:
    clock = _clock(case)
    microsecond = case.start.microsecond
    for wall in _walls(case, _HORIZON):
        instant = wall.replace(tzinfo=clock, fold=0).astimezone(UTC)
        yield wall, instant.replace(microsecond=microsecond)


def _walls(case: Case, horizon: timedelta) -> Iterator[datetime]:
    """rrule's wall times (naive), from startTime's wall time on, without count/until."""
    start_wall = _wall_of(case, case.start)
    until = start_wall + horizon
    try:
        yield from _rrule(case.recurrence, start_wall.replace(microsecond=0), until)
    except ValueError as exc:  # a sub-day interval that never meets BYHOUR/BYMINUTE
        if "empty" not in str(exc):
            raise


def _rrule(recurrence: dict[str, Any], dtstart: datetime, until: datetime | None) -> du.rrulebase:
    frequency = recurrence["frequency"].lower()
    schedule = recurrence.get("schedule", {})
    options: dict[str, Any] = {"interval": recurrence.get("interval", 1), "wkst": du.MO}
    if "minutes" in schedule:
        options["byminute"] = schedule["minutes"]
    if "hours" in schedule:
        options["byhour"] = schedule["hours"]
    elif "minutes" in schedule and frequency not in SUBDAY:
        options["byhour"] = range(24)  # Azure: minutes alone fire in every hour
    if "monthDays" in schedule:
        options["bymonthday"] = schedule["monthDays"]
    if "months" in schedule:
        options["bymonth"] = schedule["months"]
    elif "monthlyOccurrences" in schedule and frequency == "year":
        options["bymonth"] = range(1, 13)  # Azure: occurrences count within each month
    rules = [
        du.rrule(_DU_FREQUENCY[frequency], dtstart=dtstart, until=until, **options, **days)
        for days in _by_weekday(schedule)
    ]
    if len(rules) == 1:
        return rules[0]
    union = du.rruleset()
    for rule in rules:
        union.rrule(rule)
    return union


def _by_weekday(schedule: dict[str, Any]) -> list[dict[str, Any]]:
    """BYDAY options: one rule, or two whose union is meant.

    RFC 5545's BYDAY is a list of values, any of which selects a day, and Azure's
    ``monthlyOccurrences`` is a list of entries in the same way. dateutil intersects
    the plain weekdays of a list with its numbered ones (``TU,-4TU`` gives the fourth
    Tuesday from the end only), so a list that mixes them becomes two rules.
    """
    plain = [_DU_WEEKDAYS[WEEKDAYS.index(day)] for day in schedule.get("weekDays", [])]
    numbered = []
    for entry in schedule.get("monthlyOccurrences", []):
        weekday = _DU_WEEKDAYS[WEEKDAYS.index(entry["day"])]
        if "occurrence" in entry:
            numbered.append(weekday(entry["occurrence"]))
        else:
            plain.append(weekday)
    return [{"byweekday": days} for days in (plain, numbered) if days] or [{}]


def _clock(case: Case) -> timezone | ZoneInfo:
    """The clock the rule's wall times are read on."""
    recurrence, start = case.recurrence, case.start
    zone = recurrence.get("timeZone")
    if zone is None:
        return timezone(start.utcoffset() or timedelta(0))
    elapsed = recurrence["frequency"].lower() in SUBDAY and "hours" not in recurrence.get(
        "schedule", {}
    )
    if elapsed:  # startTime's offset in the zone, all year round
        return timezone(start.astimezone(ZoneInfo(zone)).utcoffset() or timedelta(0))
    return ZoneInfo(zone)


def _wall_of(case: Case, moment: datetime) -> datetime:
    return moment.astimezone(_clock(case)).replace(tzinfo=None)


def _end(recurrence: dict[str, Any]) -> datetime | None:
    end = recurrence.get("endTime")
    return None if end is None else datetime.fromisoformat(end).astimezone(UTC)


# -- generating rules ----------------------------------------------------------------------


def _case(rng: random.Random) -> Case:
    frequency = rng.choice(("Second", "Minute", "Minute", "Hour", "Hour", "Day", "Day", "Week",
                            "Week", "Month", "Month", "Month", "Year", "Year"))  # fmt: skip
    recurrence: dict[str, Any] = {"frequency": frequency, "interval": _interval(rng, frequency)}
    schedule = _schedule(rng, frequency)
    if schedule:
        recurrence["schedule"] = schedule
    zone = rng.choice((None, None, *ZONES))
    if zone is not None:
        recurrence["timeZone"] = zone
    start = _start(rng, zone)
    if rng.random() < 0.4:
        recurrence["count"] = rng.randint(1, FIRES + 4)
    if rng.random() < 0.3:
        end = start + timedelta(seconds=rng.randint(0, _typical_span_s(frequency)))
        recurrence["endTime"] = end.astimezone(_random_offset(rng)).isoformat()
    return Case(recurrence, start, rng.random())


def _interval(rng: random.Random, frequency: str) -> int:
    if rng.random() < 0.4:
        return 1
    return rng.randint(1, {"Second": 90, "Minute": 90, "Hour": 30}.get(frequency, 5))


def _schedule(rng: random.Random, frequency: str) -> dict[str, Any]:
    schedule: dict[str, Any] = {}
    if frequency == "Second":
        return schedule  # dateutil steps second by second through a schedule: too slow
    if rng.random() < 0.5:
        schedule["minutes"] = _some(rng, range(60), 4)
    if rng.random() < 0.4:
        schedule["hours"] = _some(rng, range(24), 3)
    if frequency == "Week" and rng.random() < 0.6:
        schedule["weekDays"] = _some(rng, WEEKDAYS, 3)
    if frequency in ("Month", "Year") and rng.random() < 0.5:
        schedule["monthDays"] = _some(rng, [*range(1, 32), *range(-31, 0)], 3)
    # both day lists must match: rare days, so rarely both (dateutil walks to them)
    both = 0.15 if "monthDays" in schedule else 0.5
    if frequency in ("Month", "Year") and rng.random() < both:
        schedule["monthlyOccurrences"] = [_occurrence(rng) for _ in range(rng.randint(1, 2))]
    if frequency in ("Day", "Week", "Month", "Year") and rng.random() < 0.3:
        schedule["months"] = _some(rng, range(1, 13), 4)
    return schedule


def _occurrence(rng: random.Random) -> dict[str, Any]:
    entry: dict[str, Any] = {"day": rng.choice(WEEKDAYS)}
    if rng.random() < 0.85:
        entry["occurrence"] = rng.choice((1, 2, 3, 4, 5, -1, -2, -3, -4, -5))
    return entry


def _some(rng: random.Random, values: Any, most: int) -> list[Any]:
    return rng.sample(list(values), rng.randint(1, most))


def _start(rng: random.Random, zone: str | None) -> datetime:
    moment = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 40 * 365 * 86_400))
    if zone is not None and rng.random() < 0.5:  # up to three days before a DST change
        changes = _offset_changes(zone)
        if changes:
            moment = rng.choice(changes) - timedelta(seconds=rng.randint(0, 3 * 86_400))
    if rng.random() < 0.3:
        moment = moment.replace(microsecond=rng.randint(1, 999_999))
    if zone is not None:
        return moment.astimezone(ZoneInfo(zone))
    return moment.astimezone(_random_offset(rng))


def _random_offset(rng: random.Random) -> timezone:
    return timezone(timedelta(minutes=15 * rng.randint(-12 * 4, 14 * 4)))


def _typical_span_s(frequency: str) -> int:
    periods = {"Second": 1, "Minute": 60, "Hour": 3_600, "Day": 86_400, "Week": 7 * 86_400,
               "Month": 31 * 86_400, "Year": 366 * 86_400}  # fmt: skip
    return periods[frequency] * FIRES * 3


@cache
def _offset_changes(zone: str) -> list[datetime]:
    """The UTC days (as midnight) on which ``zone`` changes its offset, 2000-2040."""
    tz = ZoneInfo(zone)
    changes = []
    day = datetime(2000, 1, 1, tzinfo=UTC)
    previous = day.astimezone(tz).utcoffset()
    while day.year < 2041:
        day += timedelta(days=1)
        offset = day.astimezone(tz).utcoffset()
        if offset != previous:
            changes.append(day - timedelta(days=1))
            previous = offset
    return changes


def _iso(moments: list[datetime]) -> list[str]:
    return [moment.isoformat() for moment in moments]
