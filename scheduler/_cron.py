"""Standard five-field cron expressions, parsed into the parts of a calendar rule.

Private to :mod:`scheduler.recurrence`. Only the syntax every cron knows is accepted:
``*``, numbers, ranges, steps, lists, month and weekday names (``jan``, ``mon``),
weekday 7 as Sunday, and the macros ``@yearly``/``@annually``, ``@monthly``,
``@weekly``, ``@daily``/``@midnight``, ``@hourly``. Extensions of some crons (``L``,
``W``, ``#``, ``?``, ``H``, a seconds field) are refused rather than half-supported.
croniter expands the fields; the checks in front of it give messages that name the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from croniter import croniter

from scheduler.errors import InvalidRecurrence

__all__ = ["CronFields", "parse_cron"]

_FIELD = "recurrence.cron"
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (name, low, high) of the five fields; weekday 7 is Sunday again.
_RANGES = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12),
           ("day-of-week", 0, 7))  # fmt: skip
_ATOM = r"(?:\d+|[a-z]{3})"
_TERM = re.compile(rf"(?:\*|{_ATOM}(?:-{_ATOM})?)(?:/\d+)?")


@dataclass(frozen=True)
class CronFields:
    """A parsed cron expression.

    Attributes:
        minutes: minutes that fire.
        hours: hours that fire.
        month_days: days of the month, or None for ``*``.
        months: months, or None for ``*``.
        weekdays: weekdays with 0 = Monday (Python's numbering), or None for ``*``.
        any_day: both day fields are restricted, so a day fires when either matches.
        elapsed: the hour field starts with ``*``: a Vixie cron "wildcard" job that
            follows elapsed time across DST changes instead of the wall clock.
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    month_days: tuple[int, ...] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None
    any_day: bool
    elapsed: bool


def parse_cron(expression: str) -> CronFields:
    """Parse a five-field cron expression.

    Raises:
        InvalidRecurrence: the expression is not standard cron; the message says which
            field and why.
    """
    text = _MACROS.get(expression.strip().lower(), expression.strip().lower())
    fields = text.split()
    if len(fields) != 5:
        raise InvalidRecurrence(
            f"{_FIELD}: {expression!r} has {len(fields)} fields; standard cron has 5 "
            "(minute hour day-of-month month day-of-week)",
            field=_FIELD,
        )
    for value, bounds in zip(fields, _RANGES, strict=True):
        _check_field(value, *bounds)
    expanded = _expand(expression, text)
    return CronFields(
        minutes=_values(expanded[0], 0, 59),
        hours=_values(expanded[1], 0, 23),
        month_days=None if expanded[2] == ["*"] else _values(expanded[2], 1, 31),
        months=None if expanded[3] == ["*"] else frozenset(_values(expanded[3], 1, 12)),
        weekdays=None if expanded[4] == ["*"] else _weekdays(expanded[4]),
        # Vixie cron: if either day field starts with '*', a day must match both.
        any_day=not (fields[2].startswith("*") or fields[4].startswith("*")),
        elapsed=fields[1].startswith("*"),
    )


def _check_field(value: str, name: str, low: int, high: int) -> None:
    for term in value.split(","):
        if not _TERM.fullmatch(term):
            raise InvalidRecurrence(
                f"{_FIELD}: {name} field {value!r} is not standard cron syntax "
                "(use *, numbers, ranges a-b, steps /n, lists, or names)",
                field=_FIELD,
            )
        for number in re.findall(r"(?<![/\d])\d+", term):
            if not low <= int(number) <= high:
                raise InvalidRecurrence(
                    f"{_FIELD}: {name} field value {number} is out of range {low}..{high}",
                    field=_FIELD,
                )


def _expand(expression: str, text: str) -> list[list[int | str]]:
    try:
        expanded, nth = croniter.expand(text)
    except ValueError as exc:  # croniter's errors are ValueErrors
        raise InvalidRecurrence(
            f"{_FIELD}: {expression!r} is not a valid cron expression ({exc})", field=_FIELD
        ) from exc
    if nth or any("l" in values for values in expanded):
        raise InvalidRecurrence(
            f"{_FIELD}: {expression!r} uses a non-standard extension", field=_FIELD
        )
    return list(expanded)


def _values(values: list[int | str], low: int, high: int) -> tuple[int, ...]:
    if values == ["*"]:
        return tuple(range(low, high + 1))
    return tuple(sorted({int(v) for v in values}))


def _weekdays(values: list[int | str]) -> frozenset[int]:
    # cron counts from Sunday = 0 (croniter folds 7 into 0); Python from Monday = 0.
    return frozenset((day - 1) % 7 for day in _values(values, 0, 6))
