"""The console, pure: a schedule in words and the form that makes a schedule (the console
in a browser is tests/e2e/test_console.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler.console.forms import FormData, diff_patch, form_values, schedule_from_form
from scheduler.console.words import describe_schedule
from scheduler.errors import ValidationFailed

START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # a Monday


# -- schedule in words (pure) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("recurrence", "start", "words"),
    [
        pytest.param(None, None, "once, right away", id="one-shot-now"),
        pytest.param(None, START, "once, at 2026-03-02 09:30 UTC", id="one-shot-later"),
        pytest.param(
            {
                "frequency": "Week",
                "schedule": {
                    "weekDays": ["Monday", "Wednesday", "Friday"],
                    "hours": [10, 22],
                    "minutes": [0],
                },
                "timeZone": "Europe/Berlin",
            },
            START,
            "every Monday, Wednesday and Friday at 10:00 and 22:00, Europe/Berlin",
            id="weekdays-hours-zone",
        ),
        pytest.param(
            {"frequency": "Minute", "interval": 15},
            START,
            "every 15 minutes, UTC",
            id="every-15-minutes",
        ),
        pytest.param({"frequency": "Day"}, START, "every day at 09:30, UTC", id="daily-from-start"),
        pytest.param(
            {"frequency": "Day", "interval": 2, "count": 10},
            START,
            "every other day at 09:30, UTC, 10 times",
            id="every-other-day-count",
        ),
        pytest.param(
            {"frequency": "Hour", "schedule": {"minutes": [0, 30]}},
            START,
            "every hour at :00 and :30, UTC",
            id="hourly-minutes",
        ),
        pytest.param(
            {"frequency": "Day", "schedule": {"minutes": [0, 15, 30, 45]}},
            START,
            "every day at :00, :15, :30 and :45 of every hour, UTC",
            id="minutes-without-hours",
        ),
        pytest.param(
            {"frequency": "Month", "schedule": {"monthDays": [1, -1], "hours": [3]}},
            START,
            "every month on day 1 and the last day at 03:30, UTC",
            id="month-days",
        ),
        pytest.param(
            {
                "frequency": "Month",
                "schedule": {"monthlyOccurrences": [{"day": "Friday", "Occurrence": -1}]},
            },
            START,
            "every month on the last Friday at 09:30, UTC",
            id="last-friday",
        ),
        pytest.param(
            {"frequency": "Year", "schedule": {"months": [1, 7], "monthDays": [1]}},
            START,
            "every year on day 1 in January and July at 09:30, UTC",
            id="yearly-months",
        ),
        pytest.param(
            {"frequency": "Week", "endTime": "2026-12-31T23:00:00Z", "timeZone": "Europe/Berlin"},
            START,
            "every week on Monday at 10:30, Europe/Berlin, until 2027-01-01 00:00",
            id="weekly-until-in-zone",
        ),
        pytest.param(
            {"cron": "*/5 * * * *", "timeZone": "America/New_York"},
            START,
            "cron '*/5 * * * *', America/New_York",
            id="cron",
        ),
    ],
)
def test_a_schedule_reads_in_words(
    recurrence: dict[str, Any] | None, start: datetime | None, words: str
) -> None:
    assert describe_schedule(recurrence, start) == words


# -- the form (pure) -------------------------------------------------------------------------


def _form(**fields: str | list[str]) -> FormData:
    return FormData({k: v if isinstance(v, list) else [v] for k, v in fields.items()})


def test_the_schedule_form_makes_the_wire_recurrence_in_its_time_zone() -> None:
    form = _form(
        scheduleKind="recurring",
        startTime="2026-03-02T10:00",
        timeZone="Europe/Berlin",
        frequency="Week",
        interval="1",
        weekDays=["Monday", "Friday"],
        hours="22, 10",
        minutes="0",
        endKind="count",
        count="5",
    )

    assert schedule_from_form(form) == {
        "startTime": "2026-03-02T10:00:00+01:00",
        "recurrence": {
            "frequency": "Week",
            "interval": 1,
            "schedule": {"weekDays": ["Monday", "Friday"], "hours": [10, 22], "minutes": [0]},
            "timeZone": "Europe/Berlin",
            "count": 5,
        },
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"hours": "25"}, "hours", id="hour-out-of-range"),
        pytest.param({"minutes": "x"}, "minutes", id="minute-not-a-number"),
        pytest.param({"timeZone": "Mars/Olympus"}, "timeZone", id="unknown-zone"),
        pytest.param({"monthlyOccurrences": "9 Friday"}, "monthlyOccurrences", id="occurrence"),
        pytest.param({"startTime": "tomorrow"}, "startTime", id="start-not-a-time"),
    ],
)
def test_a_bad_schedule_field_is_named(fields: dict[str, str], field: str) -> None:
    form = _form(scheduleKind="recurring", frequency="Month", **fields)

    with pytest.raises(ValidationFailed) as refused:
        schedule_from_form(form)

    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_form_values_round_trip_through_the_form() -> None:
    properties = {
        "startTime": "2026-03-02T09:00:00Z",
        "action": {"type": "Http", "request": {"uri": "https://x.test/", "method": "POST"}},
        "recurrence": {
            "frequency": "Month",
            "schedule": {"monthlyOccurrences": [{"day": "Friday", "Occurrence": -1}]},
            "timeZone": "Europe/Berlin",
        },
    }
    values = form_values(properties)
    form = _form(**{k: v if isinstance(v, list) else str(v) for k, v in values.items()})

    schedule = schedule_from_form(form)

    assert schedule["recurrence"]["schedule"] == properties["recurrence"]["schedule"]  # type: ignore[index]
    assert datetime.fromisoformat(schedule["startTime"]) == START.replace(hour=9, minute=0)


def test_a_merge_patch_nulls_what_went_and_keeps_what_stayed() -> None:
    current = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}
    wanted = {"a": 1, "b": {"c": 2}, "e": [2], "f": "new"}

    assert diff_patch(current, wanted) == {"b": {"d": None}, "e": [2], "f": "new"}
