"""The recurrence wire form (Azure Scheduler 2016-03-01 plus Takt's extensions), checked.

Private to :mod:`scheduler.recurrence.engine`. :func:`parse_spec` turns the JSON object into a
:class:`Spec` or raises :class:`~scheduler.errors.InvalidRecurrence` whose message starts
with the path of the offending field (``recurrence.schedule.minutes: 60 is out of range
0..59``). Property names match case-insensitively and enum values arrive in any casing,
as Azure's .NET service accepted them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.errors import InvalidRecurrence
from scheduler.recurrence._calendar import Unit
from scheduler.recurrence._cron import CronFields, parse_cron

__all__ = ["Spec", "parse_spec", "parse_time"]

_ROOT = "recurrence"
_SCHEDULE = f"{_ROOT}.schedule"
_FREQUENCIES = {unit.name.lower(): unit for unit in Unit}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Azure's documented maxima; Second and Year are Takt's and get bounds in the same spirit.
_MAX_INTERVAL = {Unit.SECOND: 1_000, Unit.MINUTE: 1_000, Unit.HOUR: 1_000, Unit.DAY: 548,
                 Unit.WEEK: 78, Unit.MONTH: 18, Unit.YEAR: 100}  # fmt: skip
_RECURRENCE_KEYS = ("frequency", "interval", "count", "endTime", "schedule", "timeZone", "cron")
_SCHEDULE_KEYS = ("minutes", "hours", "weekDays", "monthDays", "monthlyOccurrences", "months")
# Which frequencies each day-selecting schedule field works with (Azure: weekDays only
# weekly, monthDays/monthlyOccurrences only monthly; Takt adds yearly for both and
# months for the frequencies whose periods are whole days).
_ALLOWED_WITH = {
    "weekDays": (Unit.WEEK,),
    "monthDays": (Unit.MONTH, Unit.YEAR),
    "monthlyOccurrences": (Unit.MONTH, Unit.YEAR),
    "months": (Unit.DAY, Unit.WEEK, Unit.MONTH, Unit.YEAR),
}


@dataclass(frozen=True)
class Spec:
    """A checked recurrence; None means "not given"."""

    frequency: Unit | None
    interval: int
    count: int | None
    end: datetime | None
    minutes: tuple[int, ...] | None
    hours: tuple[int, ...] | None
    weekdays: frozenset[int] | None
    month_days: tuple[int, ...] | None
    occurrences: tuple[tuple[int, int | None], ...] | None
    months: frozenset[int] | None
    zone: ZoneInfo | None
    cron: CronFields | None


def parse_spec(raw: Mapping[str, Any]) -> Spec:
    """Check a recurrence object and return its :class:`Spec`."""
    fields = _by_name(raw, _RECURRENCE_KEYS, _ROOT)
    schedule = _by_name(_object(fields.get("schedule"), _SCHEDULE), _SCHEDULE_KEYS, _SCHEDULE)
    cron = _cron(fields)
    frequency = None if cron else _frequency(fields.get("frequency"))
    if frequency is not None:
        _check_schedule_fits(frequency, schedule)
    return Spec(
        frequency=frequency,
        interval=_interval(fields.get("interval"), frequency),
        count=_count(fields.get("count")),
        end=_end(fields.get("endTime")),
        minutes=_integers(schedule.get("minutes"), "minutes", 0, 59),
        hours=_integers(schedule.get("hours"), "hours", 0, 23),
        weekdays=_weekdays(schedule.get("weekDays")),
        month_days=_month_days(schedule.get("monthDays")),
        occurrences=_occurrences(schedule.get("monthlyOccurrences")),
        months=_months(schedule.get("months")),
        zone=_zone(fields.get("timeZone")),
        cron=cron,
    )


def parse_time(value: object, field: str) -> datetime:
    """An aware datetime from a datetime or an ISO 8601 string; naive ones are refused."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise _invalid(field, f"{value!r} is not an ISO 8601 date-time") from exc
    if not isinstance(value, datetime):
        raise _invalid(field, f"{value!r} is not a date-time")
    if value.utcoffset() is None:
        raise _invalid(field, f"{value.isoformat()} has no UTC offset; give one (e.g. Z)")
    return value


def _invalid(field: str, rule: str) -> InvalidRecurrence:
    return InvalidRecurrence(f"{field}: {rule}", field=field)


def _object(value: object, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _invalid(field, "must be an object")
    return value


def _by_name(raw: Mapping[str, Any], known: tuple[str, ...], where: str) -> dict[str, Any]:
    """The non-null members of ``raw`` under their canonical (Azure) spelling."""
    canonical = {name.lower(): name for name in known}
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        name = canonical.get(str(key).lower())
        if name is None:
            raise _invalid(f"{where}.{key}", f"unknown field; known: {', '.join(known)}")
        if value is not None:
            fields[name] = value
    return fields


def _cron(fields: dict[str, Any]) -> CronFields | None:
    expression = fields.get("cron")
    if expression is None:
        return None
    for other in ("frequency", "interval", "schedule"):
        if other in fields:
            raise _invalid(f"{_ROOT}.{other}", "cannot be combined with recurrence.cron")
    if not isinstance(expression, str):
        raise _invalid(f"{_ROOT}.cron", "must be a string")
    return parse_cron(expression)


def _frequency(value: object) -> Unit:
    field = f"{_ROOT}.frequency"
    if value is None:
        raise _invalid(field, "is required (or give recurrence.cron)")
    unit = _FREQUENCIES.get(value.lower()) if isinstance(value, str) else None
    if unit is None:
        choices = ", ".join(name.capitalize() for name in _FREQUENCIES)
        raise _invalid(field, f"{value!r} is not one of {choices}")
    return unit


def _check_schedule_fits(frequency: Unit, schedule: dict[str, Any]) -> None:
    for name, allowed in _ALLOWED_WITH.items():
        if name in schedule and frequency not in allowed:
            choices = " or ".join(unit.name.capitalize() for unit in allowed)
            raise _invalid(
                f"{_SCHEDULE}.{name}",
                f"only works with frequency {choices}, not {frequency.name.capitalize()}",
            )


def _integer(value: object, field: str, low: int, high: int | None) -> int:
    # bool is an int in Python but never a number in JSON
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(field, f"{value!r} is not an integer")
    if value < low or (high is not None and value > high):
        bound = f"out of range {low}..{high}" if high is not None else f"less than {low}"
        raise _invalid(field, f"{value} is {bound}")
    return value


def _interval(value: object, frequency: Unit | None) -> int:
    if value is None:
        return 1
    high = None if frequency is None else _MAX_INTERVAL[frequency]
    return _integer(value, f"{_ROOT}.interval", 1, high)


def _end(value: object) -> datetime | None:
    return None if value is None else parse_time(value, f"{_ROOT}.endTime")


def _count(value: object) -> int | None:
    return None if value is None else _integer(value, f"{_ROOT}.count", 1, None)


def _listed(value: object, name: str) -> list[object]:
    """A schedule member as a list: Azure also takes a single value for a list."""
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise _invalid(f"{_SCHEDULE}.{name}", "must name at least one value")
    return items


def _integers(value: object, name: str, low: int, high: int) -> tuple[int, ...] | None:
    if value is None:
        return None
    items = _listed(value, name)
    return tuple(sorted({_integer(v, f"{_SCHEDULE}.{name}", low, high) for v in items}))


def _weekday(value: object, field: str) -> int:
    if isinstance(value, str) and value.lower() in _WEEKDAYS:
        return _WEEKDAYS.index(value.lower())
    choices = ", ".join(day.capitalize() for day in _WEEKDAYS)
    raise _invalid(field, f"{value!r} is not a weekday ({choices})")


def _weekdays(value: object) -> frozenset[int] | None:
    if value is None:
        return None
    field = f"{_SCHEDULE}.weekDays"
    return frozenset(_weekday(v, field) for v in _listed(value, "weekDays"))


def _month_days(value: object) -> tuple[int, ...] | None:
    days = _integers(value, "monthDays", -31, 31)
    if days is not None and 0 in days:
        raise _invalid(f"{_SCHEDULE}.monthDays", "0 is not a day; use 1..31 or -31..-1")
    return days


def _months(value: object) -> frozenset[int] | None:
    months = _integers(value, "months", 1, 12)
    return None if months is None else frozenset(months)


def _occurrences(value: object) -> tuple[tuple[int, int | None], ...] | None:
    if value is None:
        return None
    pairs = set()
    for i, item in enumerate(_listed(value, "monthlyOccurrences")):
        field = f"{_SCHEDULE}.monthlyOccurrences[{i}]"
        entry = _by_name(_object(item, field), ("day", "occurrence"), field)
        if "day" not in entry:
            raise _invalid(f"{field}.day", "is required")
        pairs.add((_weekday(entry["day"], f"{field}.day"), _occurrence(entry, field)))
    return tuple(sorted(pairs, key=lambda pair: (pair[0], pair[1] or 0)))


def _occurrence(entry: dict[str, Any], field: str) -> int | None:
    value = entry.get("occurrence")
    if value is None:
        return None  # every such weekday of the month
    number = _integer(value, f"{field}.occurrence", -5, 5)
    if number == 0:
        raise _invalid(f"{field}.occurrence", "0 is not an occurrence; use 1..5 or -5..-1")
    return number


def _zone(value: object) -> ZoneInfo | None:
    if value is None:
        return None
    field = f"{_ROOT}.timeZone"
    if not isinstance(value, str) or not value:
        raise _invalid(field, f"{value!r} is not an IANA time zone name")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a directory
        raise _invalid(field, f"{value!r} is not a known IANA time zone") from exc
