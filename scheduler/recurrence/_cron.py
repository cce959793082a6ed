"""Standard five-field cron expressions, parsed into the parts of a calendar rule.

Private to :mod:`scheduler.recurrence.engine`. Only the syntax every cron knows is accepted:
``*``, numbers, ranges, steps, lists, month and weekday names (``jan``, ``mon``),
weekday 7 as Sunday, and the macros ``@yearly``/``@annually``, ``@monthly``,
``@weekly``, ``@daily``/``@midnight``, ``@hourly``. Extensions of some crons (``L``,
``W``, ``#``, ``?``, ``H``, a seconds field) are refused rather than half-supported.

A field is read as Vixie cron (and cronie, and cronsim) reads it:

* ``a-b`` is every value from ``a`` to ``b``; ``a-a`` is ``a`` alone, and a range that
  runs backwards (``5-3``, ``sat-sun``) is refused;
* ``/n`` takes every n-th value of what it follows: ``*/n`` of the whole field,
  ``a-b/n`` of the range, ``a/n`` of ``a`` up to the field's largest value;
* day-of-week runs 0..7, 0 and 7 both Sunday, so ``*/2`` is Sun, Tue, Thu, Sat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                "dec")  # fmt: skip
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ATOM = r"(?:\d+|[a-z]{3})"
_TERM = re.compile(rf"(?P<base>\*|(?P<low>{_ATOM})(?:-(?P<high>{_ATOM}))?)(?:/(?P<step>\d+))?")
_MAX_DIGITS = 6  # past this a number is out of every field's range (and int() stays cheap)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]

    def values(self, text: str, expression: str) -> frozenset[int]:
        """The values a comma-separated field selects."""
        chosen: set[int] = set()
        for term in text.split(","):
            chosen.update(self._term(term, expression))
        return frozenset(chosen)

    def _term(self, term: str, expression: str) -> range:
        match = _TERM.fullmatch(term)
        if match is None:
            raise InvalidRecurrence(
                f"{_FIELD}: {self.name} field {term!r} is not standard cron syntax "
                "(use *, numbers, ranges a-b, steps /n, lists, or names)",
                field=_FIELD,
            )
        step = 1 if match["step"] is None else self._step(match["step"])
        if match["base"] == "*":
            return range(self.low, self.high + 1, step)
        low = self._value(match["low"], expression)
        if match["high"] is None:  # "a" alone, or "a/n": from a to the field's end
            return range(low, (low if match["step"] is None else self.high) + 1, step)
        high = self._value(match["high"], expression)
        if high < low:
            raise InvalidRecurrence(
                f"{_FIELD}: {self.name} field range {term!r} runs backwards; cron ranges "
                f"do not wrap (write {self._unwrapped(low, high)})",
                field=_FIELD,
            )
        return range(low, high + 1, step)

    def _unwrapped(self, low: int, high: int) -> str:
        if self.name == "day-of-week" and high == 0:  # "sat-sun": Sunday is also 7
            return f"{low}-7"
        return f"{low}-{self.high},{self.low}-{high}"

    def _value(self, atom: str, expression: str) -> int:
        if not atom.isdigit():
            if atom not in self.names:
                raise InvalidRecurrence(
                    f"{_FIELD}: {expression!r} is not a valid cron expression ({self.name} "
                    f"field: {atom!r} is not a name it knows)",
                    field=_FIELD,
                )
            return self.names[atom]
        value = int(atom) if len(atom.lstrip("0")) <= _MAX_DIGITS else self.high + 1
        if not self.low <= value <= self.high:
            raise InvalidRecurrence(
                f"{_FIELD}: {self.name} field value {atom} is out of range {self.low}..{self.high}",
                field=_FIELD,
            )
        return value

    def _step(self, digits: str) -> int:
        step = int(digits) if len(digits.lstrip("0")) <= _MAX_DIGITS else 0
        if step == 0:
            raise InvalidRecurrence(
                f"{_FIELD}: {self.name} field step /{digits} must be a whole number from 1 "
                f"to {10**_MAX_DIGITS - 1}",
                field=_FIELD,
            )
        return step


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}),
    _Field("month", 1, 12, {name: i for i, name in enumerate(_MONTH_NAMES, start=1)}),
    _Field("day-of-week", 0, 7, {name: i for i, name in enumerate(_DAY_NAMES)}),  # 7: Sunday
)


@dataclass(frozen=True)
class CronFields:
    """A parsed cron expression.

    Attributes:
        minutes: minutes that fire.
        hours: hours that fire.
        month_days: days of the month, or None for every day.
        months: months, or None for every month.
        weekdays: weekdays with 0 = Monday (Python's numbering), or None for every day.
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
    minutes, hours, month_days, months, weekdays = (
        spec.values(value, expression) for spec, value in zip(_FIELDS, fields, strict=True)
    )
    # Vixie cron: if either day field starts with '*', a day must match both; else either.
    any_day = not (fields[2].startswith("*") or fields[4].startswith("*"))
    days_of_week = frozenset((day - 1) % 7 for day in weekdays)  # cron's Sunday 0/7 -> 6
    return CronFields(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        # A full set means "every day" only when the fields are ANDed: under the OR rule
        # "1-31" with a weekday still fires every day, and must stay a set to say so.
        month_days=None if len(month_days) == 31 and not any_day else tuple(sorted(month_days)),
        months=None if len(months) == 12 else months,
        weekdays=None if len(days_of_week) == 7 and not any_day else days_of_week,
        any_day=any_day,
        elapsed=fields[1].startswith("*"),
    )
