"""A job's schedule in words, as the console's Jobs table shows it.

Pure functions over the wire form (``startTime`` and ``recurrence``), no clock::

    >>> describe_schedule({"frequency": "Week", "schedule": {"weekDays": ["Monday"],
    ...     "hours": [10], "minutes": [0]}, "timeZone": "Europe/Berlin"}, None)
    'every Monday at 10:00, Europe/Berlin'

Hours and minutes a schedule leaves out come from the start time, read in the rule's
zone, as the recurrence engine reads them (``docs/recurrence.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["describe_schedule", "join_words"]

_UNITS = {
    "second": "second",
    "minute": "minute",
    "hour": "hour",
    "day": "day",
    "week": "week",
    "month": "month",
    "year": "year",
}
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}


def join_words(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def describe_schedule(recurrence: Mapping[str, Any] | None, start_time: datetime | None) -> str:
    """The schedule of a job in English, for people (not parsed back).

    Args:
        recurrence: the wire-form recurrence (camelCase keys), or None for a one-shot job.
        start_time: the job's start time (aware), or None for "when it is created".
    """
    zone_name = (recurrence or {}).get("timeZone") or None
    start = _in_zone(start_time, zone_name)
    if not recurrence:
        return "once, " + (f"at {_stamp(start)}" if start else "right away")
    if recurrence.get("cron"):
        text = f"cron {recurrence['cron']!r}"
    else:
        text = _frequency_words(recurrence, start)
    text += _zone_words(zone_name, start)
    return text + _limit_words(recurrence, zone_name)


def _in_zone(moment: datetime | None, zone_name: str | None) -> datetime | None:
    if moment is None:
        return None
    return moment.astimezone(_zone(zone_name)) if zone_name else moment


def _zone(name: str) -> ZoneInfo | Any:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _stamp(moment: datetime) -> str:
    offset = moment.utcoffset()
    suffix = " UTC" if offset is not None and not offset else ""
    return moment.strftime("%Y-%m-%d %H:%M") + suffix


def _zone_words(zone_name: str | None, start: datetime | None) -> str:
    if zone_name:
        return f", {zone_name}"
    offset = start.utcoffset() if start else None
    if start is None or not offset:
        return ", UTC"
    return f", UTC{start.strftime('%z')[:3]}:{start.strftime('%z')[3:]}"


def _limit_words(recurrence: Mapping[str, Any], zone_name: str | None) -> str:
    parts = []
    count = recurrence.get("count")
    if count:
        parts.append("once only" if count == 1 else f"{count} times")
    end = recurrence.get("endTime")
    if end:
        end_time = datetime.fromisoformat(end) if isinstance(end, str) else end
        local = _in_zone(end_time, zone_name)
        parts.append(f"until {_stamp(local)}" if local else "")
    return "".join(f", {part}" for part in parts if part)


def _every(unit: str, interval: int) -> str:
    if interval == 1:
        return f"every {unit}"
    if interval == 2:
        return f"every other {unit}"
    return f"every {interval} {unit}s"


def _frequency_words(recurrence: Mapping[str, Any], start: datetime | None) -> str:
    frequency = str(recurrence.get("frequency") or "").casefold()
    unit = _UNITS.get(frequency, frequency or "period")
    interval = int(recurrence.get("interval") or 1)
    schedule: Mapping[str, Any] = recurrence.get("schedule") or {}
    if unit in ("second", "minute", "hour"):
        return _sub_daily(unit, interval, schedule)
    days = _day_words(unit, interval, schedule, start)
    return days + _time_words(schedule, start)


def _sub_daily(unit: str, interval: int, schedule: Mapping[str, Any]) -> str:
    text = _every(unit, interval)
    minutes = sorted(_ints(schedule.get("minutes")))
    hours = sorted(_ints(schedule.get("hours")))
    if minutes and unit == "hour":
        text += " at " + join_words([f":{m:02d}" for m in minutes])
    elif minutes:
        text += " in minutes " + join_words([f":{m:02d}" for m in minutes])
    if hours:
        text += " during hours " + join_words([f"{h:02d}" for h in hours])
    return text


def _day_words(
    unit: str, interval: int, schedule: Mapping[str, Any], start: datetime | None
) -> str:
    week_days = [str(d).capitalize() for d in schedule.get("weekDays") or []]
    months = [_MONTHS[m - 1] for m in sorted(_ints(schedule.get("months"))) if 1 <= m <= 12]
    if unit == "week" and week_days:
        text = (
            f"every {join_words(week_days)}"
            if interval == 1
            else f"{_every('week', interval)} on {join_words(week_days)}"
        )
    elif unit == "week" and start is not None:
        text = f"{_every('week', interval)} on {start.strftime('%A')}"
    else:
        text = _every(unit, interval)
    if unit in ("month", "year"):
        text += _month_day_words(schedule, start, explicit_months=bool(months))
    if months:
        text += " in " + join_words(months)
    elif unit == "year" and start is not None and not _has_days(schedule):
        text += f" in {start.strftime('%B')}"
    return text


def _has_days(schedule: Mapping[str, Any]) -> bool:
    return bool(schedule.get("monthDays") or schedule.get("monthlyOccurrences"))


def _month_day_words(
    schedule: Mapping[str, Any], start: datetime | None, *, explicit_months: bool
) -> str:
    days = [_month_day(d) for d in sorted(_ints(schedule.get("monthDays")), key=_day_order)]
    occurrences = [_occurrence(o) for o in schedule.get("monthlyOccurrences") or []]
    if not days and not occurrences and start is not None:
        days = [_month_day(start.day)]
    parts = []
    if days:
        parts.append("on " + join_words(days))
    if occurrences:
        parts.append("on " + join_words(occurrences))
    return (" " + " and ".join(parts)) if parts else ""


def _day_order(day: int) -> tuple[int, int]:
    return (1, day) if day < 0 else (0, day)


def _month_day(day: int) -> str:
    if day == -1:
        return "the last day"
    if day < 0:
        return f"the {_ordinal_number(-day)} last day"
    return f"day {day}"


def _ordinal_number(value: int) -> str:
    if 10 <= value % 100 <= 20:
        return f"{value}th"
    return f"{value}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(value % 10, 'th') }"


def _occurrence(item: Mapping[str, Any]) -> str:
    day = str(item.get("day", "")).capitalize()
    number = item.get("Occurrence", item.get("occurrence"))
    if number is None:
        return f"every {day}"
    return f"the {_ORDINALS.get(int(number), _ordinal_number(int(number)))} {day}"


def _time_words(schedule: Mapping[str, Any], start: datetime | None) -> str:
    hours = sorted(_ints(schedule.get("hours")))
    minutes = sorted(_ints(schedule.get("minutes")))
    if minutes and not hours:
        return " at " + join_words([f":{m:02d}" for m in minutes]) + " of every hour"
    if not hours and start is not None:
        hours = [start.hour]
    if not minutes and start is not None:
        minutes = [start.minute]
    if not hours:
        return ""
    times = [f"{h:02d}:{m:02d}" for h in hours for m in (minutes or [0])]
    return " at " + join_words(times)


def _ints(values: Any) -> list[int]:
    if values is None:
        return []
    if isinstance(values, int):
        return [values]
    return [int(v) for v in values]
