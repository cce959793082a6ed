"""Every example of Azure Scheduler's "advanced schedule" table, with hand-written answers.

The table ("Build advanced schedules and recurrences for jobs in Azure Scheduler",
section "Examples: Recurrence Schedules") gives a schedule and a sentence; it assumes
interval 1 and "the right frequency" for the schedule. Each row here picks that
frequency and a concrete start time and lists the first occurrences by hand, from a
2025 calendar: Jan 1 is a Wednesday; the Fridays of January are the 3rd, 10th, 17th,
24th and 31st, of February the 7th to the 28th, of March the 7th to the 28th.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pytest

from scheduler.recurrence import iter_occurrences, next_occurrence

MONDAY_8AM = "2025-01-06T08:00"  # a Monday
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
MON_WED_FRI = ["monday", "wednesday", "friday"]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _friday(occurrence: int) -> dict[str, object]:
    return {"day": "friday", "occurrence": occurrence}


# (id, frequency, schedule, start, expected first occurrences)
EXAMPLES = [
    ("5am-every-day", "Day", {"hours": [5]}, MONDAY_8AM,
     ["2025-01-07T05:00", "2025-01-08T05:00", "2025-01-09T05:00"]),
    ("5-15am-every-day", "Day", {"minutes": [15], "hours": [5]}, MONDAY_8AM,
     ["2025-01-07T05:15", "2025-01-08T05:15", "2025-01-09T05:15"]),
    ("5-15am-and-5-15pm-every-day", "Day", {"minutes": [15], "hours": [5, 17]}, MONDAY_8AM,
     ["2025-01-06T17:15", "2025-01-07T05:15", "2025-01-07T17:15", "2025-01-08T05:15"]),
    ("5-15-5-45-am-and-pm-every-day", "Day", {"minutes": [15, 45], "hours": [5, 17]},
     MONDAY_8AM,
     ["2025-01-06T17:15", "2025-01-06T17:45", "2025-01-07T05:15", "2025-01-07T05:45",
      "2025-01-07T17:15"]),
    ("every-15-minutes", "Day", {"minutes": [0, 15, 30, 45]}, MONDAY_8AM,
     ["2025-01-06T08:00", "2025-01-06T08:15", "2025-01-06T08:30", "2025-01-06T08:45",
      "2025-01-06T09:00"]),
    # "if the start time is 12:25 PM, the job will be run at 00:25, 01:25, ..., 23:25"
    ("every-hour-minute-from-start", "Day", {"hours": list(range(24))}, "2025-01-06T22:25",
     ["2025-01-06T22:25", "2025-01-06T23:25", "2025-01-07T00:25", "2025-01-07T01:25"]),
    ("every-hour-on-the-hour", "Day", {"minutes": [0]}, "2025-01-06T22:10",
     ["2025-01-06T23:00", "2025-01-07T00:00", "2025-01-07T01:00"]),
    # "... if the frequency were week, the schedule would execute only one day a week"
    ("every-hour-on-the-hour-weekly-is-one-day-a-week", "Week", {"minutes": [0]},
     "2025-01-06T22:10",
     ["2025-01-06T23:00", "2025-01-13T00:00", "2025-01-13T01:00"]),
    ("15-minutes-past-every-hour", "Day", {"minutes": [15]}, "2025-01-06T22:10",
     ["2025-01-06T22:15", "2025-01-06T23:15", "2025-01-07T00:15"]),
    ("5pm-on-saturdays", "Week", {"hours": [17], "weekDays": ["saturday"]}, MONDAY_8AM,
     ["2025-01-11T17:00", "2025-01-18T17:00", "2025-01-25T17:00"]),
    ("5pm-mon-wed-fri", "Week", {"hours": [17], "weekDays": MON_WED_FRI}, MONDAY_8AM,
     ["2025-01-06T17:00", "2025-01-08T17:00", "2025-01-10T17:00", "2025-01-13T17:00"]),
    ("5-15pm-and-5-45pm-mon-wed-fri", "Week",
     {"minutes": [15, 45], "hours": [17], "weekDays": MON_WED_FRI}, MONDAY_8AM,
     ["2025-01-06T17:15", "2025-01-06T17:45", "2025-01-08T17:15", "2025-01-08T17:45",
      "2025-01-10T17:15"]),
    ("5am-and-5pm-mon-wed-fri", "Week", {"hours": [5, 17], "weekDays": MON_WED_FRI},
     MONDAY_8AM,
     ["2025-01-06T17:00", "2025-01-08T05:00", "2025-01-08T17:00", "2025-01-10T05:00",
      "2025-01-10T17:00", "2025-01-13T05:00"]),
    ("5-15-5-45-am-and-pm-mon-wed-fri", "Week",
     {"minutes": [15, 45], "hours": [5, 17], "weekDays": MON_WED_FRI}, MONDAY_8AM,
     ["2025-01-06T17:15", "2025-01-06T17:45", "2025-01-08T05:15", "2025-01-08T05:45",
      "2025-01-08T17:15", "2025-01-08T17:45", "2025-01-10T05:15"]),
    ("every-15-minutes-on-weekdays", "Week",
     {"minutes": [0, 15, 30, 45], "weekDays": WEEKDAYS}, "2025-01-10T23:30",
     ["2025-01-10T23:30", "2025-01-10T23:45", "2025-01-13T00:00", "2025-01-13T00:15"]),
    ("every-15-minutes-on-weekdays-9am-to-4-45pm", "Week",
     {"minutes": [0, 15, 30, 45], "hours": list(range(9, 17)), "weekDays": WEEKDAYS},
     "2025-01-10T16:30",
     ["2025-01-10T16:30", "2025-01-10T16:45", "2025-01-13T09:00", "2025-01-13T09:15"]),
    ("sundays-at-start-time", "Week", {"weekDays": ["sunday"]}, MONDAY_8AM,
     ["2025-01-12T08:00", "2025-01-19T08:00", "2025-01-26T08:00"]),
    ("tuesdays-and-thursdays-at-start-time", "Week", {"weekDays": ["tuesday", "thursday"]},
     MONDAY_8AM,
     ["2025-01-07T08:00", "2025-01-09T08:00", "2025-01-14T08:00", "2025-01-16T08:00"]),
    ("6am-on-the-28th", "Month", {"minutes": [0], "hours": [6], "monthDays": [28]},
     MONDAY_8AM,
     ["2025-01-28T06:00", "2025-02-28T06:00", "2025-03-28T06:00"]),
    ("6am-on-the-last-day", "Month", {"minutes": [0], "hours": [6], "monthDays": [-1]},
     MONDAY_8AM,
     ["2025-01-31T06:00", "2025-02-28T06:00", "2025-03-31T06:00", "2025-04-30T06:00"]),
    ("6am-on-the-first-and-last-day", "Month",
     {"minutes": [0], "hours": [6], "monthDays": [1, -1]}, MONDAY_8AM,
     ["2025-01-31T06:00", "2025-02-01T06:00", "2025-02-28T06:00", "2025-03-01T06:00",
      "2025-03-31T06:00"]),
    ("first-and-last-day-at-start-time", "Month", {"monthDays": [1, -1]}, MONDAY_8AM,
     ["2025-01-31T08:00", "2025-02-01T08:00", "2025-02-28T08:00", "2025-03-01T08:00"]),
    ("first-and-fourteenth-at-start-time", "Month", {"monthDays": [1, 14]}, MONDAY_8AM,
     ["2025-01-14T08:00", "2025-02-01T08:00", "2025-02-14T08:00", "2025-03-01T08:00"]),
    ("second-day-at-start-time", "Month", {"monthDays": [2]}, MONDAY_8AM,
     ["2025-02-02T08:00", "2025-03-02T08:00", "2025-04-02T08:00"]),
    ("first-friday-5am", "Month",
     {"minutes": [0], "hours": [5], "monthlyOccurrences": [_friday(1)]}, MONDAY_8AM,
     ["2025-02-07T05:00", "2025-03-07T05:00", "2025-04-04T05:00"]),
    ("first-friday-at-start-time", "Month", {"monthlyOccurrences": [_friday(1)]}, MONDAY_8AM,
     ["2025-02-07T08:00", "2025-03-07T08:00", "2025-04-04T08:00"]),
    ("third-friday-from-the-end", "Month", {"monthlyOccurrences": [_friday(-3)]}, MONDAY_8AM,
     ["2025-01-17T08:00", "2025-02-14T08:00", "2025-03-14T08:00", "2025-04-11T08:00"]),
    ("first-and-last-friday-5-15am", "Month",
     {"minutes": [15], "hours": [5], "monthlyOccurrences": [_friday(1), _friday(-1)]},
     MONDAY_8AM,
     ["2025-01-31T05:15", "2025-02-07T05:15", "2025-02-28T05:15", "2025-03-07T05:15",
      "2025-03-28T05:15"]),
    ("first-and-last-friday-at-start-time", "Month",
     {"monthlyOccurrences": [_friday(1), _friday(-1)]}, MONDAY_8AM,
     ["2025-01-31T08:00", "2025-02-07T08:00", "2025-02-28T08:00", "2025-03-07T08:00"]),
    # Only January, May and August 2025 have a fifth Friday.
    ("fifth-friday-skips-months-without-one", "Month", {"monthlyOccurrences": [_friday(5)]},
     MONDAY_8AM,
     ["2025-01-31T08:00", "2025-05-30T08:00", "2025-08-29T08:00"]),
    ("every-15-minutes-on-the-last-friday", "Month",
     {"minutes": [0, 15, 30, 45], "monthlyOccurrences": [_friday(-1)]}, "2025-01-31T23:30",
     ["2025-01-31T23:30", "2025-01-31T23:45", "2025-02-28T00:00", "2025-02-28T00:15"]),
    ("5-15-5-45-am-and-pm-third-wednesday", "Month",
     {"minutes": [15, 45], "hours": [5, 17],
      "monthlyOccurrences": [{"day": "wednesday", "occurrence": 3}]}, MONDAY_8AM,
     ["2025-01-15T05:15", "2025-01-15T05:45", "2025-01-15T17:15", "2025-01-15T17:45",
      "2025-02-19T05:15"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("frequency", "schedule", "start", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in EXAMPLES],
)
def test_azure_advanced_schedule_example(
    frequency: str, schedule: dict[str, object], start: str, expected: list[str]
) -> None:
    # Given the example's schedule at interval 1
    recurrence = {"frequency": frequency, "interval": 1, "schedule": schedule}

    # When the first occurrences are listed
    got = list(islice(iter_occurrences(recurrence, _utc(start)), len(expected)))

    # Then they are the ones worked out by hand
    assert got == [_utc(text) for text in expected]


@pytest.mark.parametrize(
    "start",
    [
        pytest.param("2015-04-07T14:00", id="start-one-day-before-now"),
        pytest.param("2015-04-05T14:00", id="start-three-days-before-now"),
        pytest.param("2015-04-01T14:00", id="start-a-week-before-now"),
    ],
)
def test_start_time_in_the_past_keeps_the_phase_of_the_start_time(start: str) -> None:
    # Given Azure's worked example: every 2 days from a past start, now 2015-04-08 13:00
    every_two_days = {"frequency": "Day", "interval": 2}
    now = _utc("2015-04-08T13:00")

    # When the next occurrences after now are asked for
    first = next_occurrence(every_two_days, _utc(start), after=now)
    assert first is not None
    second = next_occurrence(every_two_days, _utc(start), after=first)

    # Then the first is 2015-04-09 14:00 and then every two days
    assert (first, second) == (_utc("2015-04-09T14:00"), _utc("2015-04-11T14:00"))


def test_count_five_daily_from_monday_ends_on_friday() -> None:
    # Given Azure's count example: daily, count 5, starting on a Monday
    recurrence = {"frequency": "Day", "count": 5}

    # When every occurrence is listed
    got = list(iter_occurrences(recurrence, _utc(MONDAY_8AM)))

    # Then the job completes after Friday's run
    assert got == [_utc(f"2025-01-{day:02d}T08:00") for day in range(6, 11)]


def test_count_and_end_time_whichever_comes_first() -> None:
    # Given count 10 but an end time after the third day
    recurrence = {"frequency": "Day", "count": 10, "endTime": "2025-01-08T08:00:00Z"}

    # When every occurrence is listed
    got = list(iter_occurrences(recurrence, _utc(MONDAY_8AM)))

    # Then the end time (inclusive) ends it
    assert got == [_utc("2025-01-06T08:00"), _utc("2025-01-07T08:00"), _utc("2025-01-08T08:00")]


def test_one_shot_fires_once_at_start_time() -> None:
    start = _utc(MONDAY_8AM)
    assert list(iter_occurrences(None, start)) == [start]
    assert next_occurrence(None, start, after=start) is None
