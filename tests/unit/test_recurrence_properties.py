"""Properties of the recurrence engine, checked on generated rules (500 examples each).

The rule under test is matched against a restatement of the semantics written here
(``_fits``), against croniter's own matcher for cron, and — for rules without a time
zone — against an independent ``dateutil.rrule`` built in this file.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import islice, pairwise
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from dateutil import rrule as du
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from scheduler.errors import InvalidRecurrence
from scheduler.recurrence import iter_occurrences, min_spacing, next_occurrence

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"]
FREQUENCIES = ["Second", "Minute", "Hour", "Day", "Week", "Month", "Year"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SUBDAY = {"second", "minute", "hour"}
TAKE = 30  # occurrences looked at per example

PROPERTY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- strategies -----------------------------------------------------------------------


def _some(values: st.SearchStrategy[Any], most: int = 4) -> st.SearchStrategy[list[Any]]:
    return st.lists(values, min_size=1, max_size=most, unique_by=repr)


@st.composite
def schedules(draw: st.DrawFn, frequency: str) -> dict[str, Any]:
    schedule: dict[str, Any] = {}
    if frequency != "Second" and draw(st.booleans()):
        schedule["minutes"] = draw(_some(st.integers(0, 59)))
    if frequency != "Second" and draw(st.booleans()):
        schedule["hours"] = draw(_some(st.integers(0, 23)))
    if frequency == "Week" and draw(st.booleans()):
        schedule["weekDays"] = draw(_some(st.sampled_from(WEEKDAYS), 3))
    if frequency in ("Month", "Year") and draw(st.booleans()):
        days = st.integers(1, 31) | st.integers(-31, -1)
        schedule["monthDays"] = draw(_some(days, 3))
    if frequency in ("Month", "Year") and draw(st.booleans()):
        occurrence = st.fixed_dictionaries(
            {
                "day": st.sampled_from(WEEKDAYS),
                "occurrence": st.sampled_from([1, 2, 3, 4, 5, -1, -2, -5]),
            }
        )
        schedule["monthlyOccurrences"] = draw(_some(occurrence, 2))
    if frequency in ("Day", "Week", "Month", "Year") and draw(st.booleans()):
        schedule["months"] = draw(_some(st.integers(1, 12), 4))
    return schedule


CRON_FIELDS = (
    ["*", "*/5", "0", "0,30", "15-45/10", "59"],
    ["*", "*/3", "2", "9-17", "0,12", "23"],
    ["*", "1", "1,15", "29", "31"],
    ["*", "1-6", "3,10", "2"],
    ["*", "1-5", "0", "mon,fri", "7"],
)


@st.composite
def recurrences(draw: st.DrawFn, zoned: bool = True) -> dict[str, Any]:
    recurrence: dict[str, Any]
    if draw(st.integers(0, 4)) == 0:
        recurrence = {"cron": " ".join(draw(st.sampled_from(f)) for f in CRON_FIELDS)}
    else:
        frequency = draw(st.sampled_from(FREQUENCIES))
        recurrence = {
            "frequency": draw(st.sampled_from([frequency, frequency.lower()])),
            "interval": draw(st.integers(1, 5)),
        }
        schedule = draw(schedules(frequency))
        if schedule:
            recurrence["schedule"] = schedule
    if draw(st.booleans()):
        recurrence["count"] = draw(st.integers(1, TAKE + 5))
    if zoned and draw(st.booleans()):
        recurrence["timeZone"] = draw(st.sampled_from(ZONES))
    return recurrence


offsets = st.integers(-12 * 4, 14 * 4).map(
    lambda quarters: timezone(timedelta(minutes=15 * quarters))
)
starts = st.builds(
    lambda moment, tz: moment.replace(tzinfo=tz),
    st.datetimes(datetime(2019, 1, 1), datetime(2031, 1, 1)),
    offsets,
)


def _occurrences(recurrence: dict[str, Any], start: datetime) -> list[datetime]:
    try:
        return list(islice(iter_occurrences(recurrence, start), TAKE))
    except InvalidRecurrence as exc:
        if "matches no date" not in str(exc):
            raise
        reject()  # e.g. monthDays [31] with months [2]: refused, rightly


# -- the rule restated ------------------------------------------------------------------


def _clock_walls(recurrence: dict[str, Any], start: datetime, moment: datetime) -> list[datetime]:
    """The wall readings that may have produced ``moment`` (two inside a DST gap)."""
    zone = recurrence.get("timeZone")
    frequency = str(recurrence.get("frequency", "")).lower()
    names_hours = "hours" in recurrence.get("schedule", {})
    if zone is None or (frequency in SUBDAY and not names_hours):
        offset = start.astimezone(ZoneInfo(zone)).utcoffset() if zone else start.utcoffset()
        return [moment.astimezone(timezone(offset or timedelta(0))).replace(tzinfo=None)]
    tz = ZoneInfo(zone)
    local = moment.astimezone(tz)
    walls = [local.replace(tzinfo=None)]
    if "cron" not in recurrence or not recurrence["cron"].split()[1].startswith("*"):
        earlier = (moment - timedelta(days=2)).astimezone(tz).utcoffset()
        walls.append((moment.astimezone(UTC) + (earlier or timedelta(0))).replace(tzinfo=None))
    return walls


def _start_wall(recurrence: dict[str, Any], start: datetime) -> datetime:
    zone = recurrence.get("timeZone")
    return (start.astimezone(ZoneInfo(zone)) if zone else start).replace(tzinfo=None)


def _phase_ok(frequency: str, interval: int, first: datetime, wall: datetime) -> bool:
    if frequency in SUBDAY:
        size = {"second": 1, "minute": 60, "hour": 3600}[frequency]
        epoch = datetime(2000, 1, 1)
        return (
            int((wall - epoch).total_seconds()) // size
            - int((first - epoch).total_seconds()) // size
        ) % interval == 0
    periods = {
        "day": (wall.date() - first.date()).days,
        "week": (wall.date().toordinal() - 1) // 7 - (first.date().toordinal() - 1) // 7,
        "month": (wall.year - first.year) * 12 + wall.month - first.month,
        "year": wall.year - first.year,
    }
    return periods[frequency] % interval == 0


def _nth_weekdays(wall: datetime) -> set[tuple[int, int]]:
    first = date(wall.year, wall.month, 1)
    length = ((first.replace(day=28) + timedelta(days=4)).replace(day=1) - first).days
    same = [
        d
        for d in range(1, length + 1)
        if date(wall.year, wall.month, d).weekday() == wall.weekday()
    ]
    i = same.index(wall.day)
    return {(wall.weekday(), i + 1), (wall.weekday(), i - len(same))}


def _day_fits(frequency: str, schedule: dict[str, Any], first: datetime, wall: datetime) -> bool:
    if "months" in schedule and wall.month not in schedule["months"]:
        return False
    if frequency == "week":
        chosen = {WEEKDAYS.index(d.capitalize()) for d in schedule.get("weekDays", [])}
        return wall.weekday() in (chosen or {first.weekday()})
    if frequency not in ("month", "year"):
        return True
    month_days, nths = schedule.get("monthDays"), schedule.get("monthlyOccurrences")
    if month_days is None and nths is None:
        same_month = frequency == "month" or "months" in schedule or wall.month == first.month
        return wall.day == first.day and same_month
    length = ((wall.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)).day
    if month_days is not None and not {wall.day, wall.day - length - 1} & set(month_days):
        return False
    wanted = {(WEEKDAYS.index(o["day"]), o["occurrence"]) for o in nths or []}
    return nths is None or bool(wanted & _nth_weekdays(wall))


def _time_fits(frequency: str, schedule: dict[str, Any], first: datetime, wall: datetime) -> bool:
    if frequency != "second" and wall.second != first.second:
        return False
    minutes = schedule.get("minutes")
    if minutes is None:
        minutes = range(60) if frequency in ("second", "minute") else [first.minute]
    hours = schedule.get("hours")
    if hours is None:
        hours = range(24) if frequency in SUBDAY or "minutes" in schedule else [first.hour]
    return wall.minute in minutes and wall.hour in hours


def _fits(recurrence: dict[str, Any], start: datetime, moment: datetime) -> bool:
    walls = _clock_walls(recurrence, start, moment)
    if "cron" in recurrence:
        return any(croniter.match(recurrence["cron"], wall) for wall in walls)
    frequency = recurrence["frequency"].lower()
    schedule = recurrence.get("schedule", {})
    first = (
        _clock_walls(recurrence, start, start)[0]
        if frequency in SUBDAY
        else _start_wall(recurrence, start)
    )
    return any(
        _phase_ok(frequency, recurrence["interval"], first, wall)
        and _day_fits(frequency, schedule, first, wall)
        and _time_fits(frequency, schedule, first, wall)
        for wall in walls
    )


# -- properties ---------------------------------------------------------------------------


@PROPERTY
@given(recurrence=recurrences(), start=starts)
def test_occurrences_strictly_increase_from_the_start(
    recurrence: dict[str, Any], start: datetime
) -> None:
    got = _occurrences(recurrence, start)
    assert got, "a rule that is accepted fires at least once"
    assert got[0] >= start
    assert all(a < b for a, b in pairwise(got))
    assert all(moment.utcoffset() is not None for moment in got)


@PROPERTY
@given(recurrence=recurrences(), start=starts)
def test_each_occurrence_matches_the_rule(recurrence: dict[str, Any], start: datetime) -> None:
    for moment in _occurrences(recurrence, start):
        assert _fits(recurrence, start, moment), moment.isoformat()


@PROPERTY
@given(recurrence=recurrences(), start=starts, data=st.data())
def test_next_occurrence_is_the_first_listed_after(
    recurrence: dict[str, Any], start: datetime, data: st.DataObject
) -> None:
    # Given the listed occurrences and a moment somewhere among them
    got = _occurrences(recurrence, start)
    span = (got[-1] - start) + timedelta(hours=1)
    after = start + data.draw(st.timedeltas(-timedelta(days=1), span), label="after - start")

    # When the next occurrence after it is asked for
    following = next_occurrence(recurrence, start, after)

    # Then it is the first listed one after that moment
    expected = next((moment for moment in got if moment > after), None)
    if expected is not None or len(got) < TAKE:
        assert following == expected


@PROPERTY
@given(recurrence=recurrences(), start=starts, count=st.integers(1, TAKE))
def test_count_is_honoured_exactly(recurrence: dict[str, Any], start: datetime, count: int) -> None:
    unbounded = _occurrences({k: v for k, v in recurrence.items() if k != "count"}, start)
    counted = list(islice(iter_occurrences({**recurrence, "count": count}, start), TAKE + 1))
    if len(unbounded) == TAKE:  # the unbounded rule had at least `count` occurrences
        assert counted == unbounded[:count]


@PROPERTY
@given(recurrence=recurrences(), start=starts, cut=st.integers(0, TAKE - 1))
def test_nothing_fires_after_end_time(
    recurrence: dict[str, Any], start: datetime, cut: int
) -> None:
    unbounded = _occurrences(recurrence, start)
    end = unbounded[min(cut, len(unbounded) - 1)]
    ended = list(
        islice(iter_occurrences({**recurrence, "endTime": end.isoformat()}, start), TAKE + 1)
    )
    assert ended == [moment for moment in unbounded if moment <= end]


@PROPERTY
@given(recurrence=recurrences(), start=starts)
def test_min_spacing_is_never_more_than_a_gap(recurrence: dict[str, Any], start: datetime) -> None:
    got = _occurrences(recurrence, start)
    spacing = min_spacing(recurrence, start)
    if len(got) > 1:
        assert spacing is not None
        assert spacing <= min(b - a for a, b in pairwise(got))
    elif "count" in recurrence and recurrence["count"] == 1:
        assert spacing is None


# -- against dateutil ---------------------------------------------------------------------

_DU_FREQUENCY = {
    "second": du.SECONDLY,
    "minute": du.MINUTELY,
    "hour": du.HOURLY,
    "day": du.DAILY,
    "week": du.WEEKLY,
    "month": du.MONTHLY,
    "year": du.YEARLY,
}
_DU_WEEKDAYS = (du.MO, du.TU, du.WE, du.TH, du.FR, du.SA, du.SU)


def _dateutil_rule(recurrence: dict[str, Any], start: datetime) -> du.rrule:
    """The same rule built by hand for dateutil, on the wall clock of ``start``'s offset."""
    frequency = recurrence["frequency"].lower()
    schedule = recurrence.get("schedule", {})
    options: dict[str, Any] = {"interval": recurrence["interval"], "count": recurrence.get("count")}
    if "minutes" in schedule:
        options["byminute"] = schedule["minutes"]
    if "hours" in schedule:
        options["byhour"] = schedule["hours"]
    elif "minutes" in schedule and frequency not in SUBDAY:
        options["byhour"] = range(24)  # Azure: minutes alone fire in every hour
    weekdays = [_DU_WEEKDAYS[WEEKDAYS.index(d.capitalize())] for d in schedule.get("weekDays", [])]
    nths = [
        _DU_WEEKDAYS[WEEKDAYS.index(o["day"])](o["occurrence"])
        for o in schedule.get("monthlyOccurrences", [])
    ]
    if weekdays or nths:
        options["byweekday"] = weekdays or nths
    if "monthDays" in schedule:
        options["bymonthday"] = schedule["monthDays"]
    if "months" in schedule:
        options["bymonth"] = schedule["months"]
    elif nths and frequency == "year":
        options["bymonth"] = range(1, 13)  # occurrences count within each month
    return du.rrule(_DU_FREQUENCY[frequency], dtstart=start.replace(tzinfo=None), **options)


frequency_rules = recurrences(zoned=False).filter(
    # dateutil steps second by second through a schedule below a minute: too slow here
    lambda r: "frequency" in r and not (r["frequency"].lower() == "second" and "schedule" in r)
)


@PROPERTY
@given(recurrence=frequency_rules, start=starts.map(lambda moment: moment.replace(microsecond=0)))
def test_rules_without_time_zone_agree_with_dateutil(
    recurrence: dict[str, Any], start: datetime
) -> None:
    got = _occurrences(recurrence, start)
    expected = [
        moment.replace(tzinfo=start.tzinfo)
        for moment in islice(_dateutil_rule(recurrence, start), len(got))
    ]
    assert got == expected
