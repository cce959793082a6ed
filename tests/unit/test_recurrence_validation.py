"""What the recurrence engine refuses (and how it says so), what it accepts, min_spacing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, Field

import scheduler.recurrence
import scheduler.recurrence.engine as recurrence_module
from scheduler.errors import InvalidRecurrence
from scheduler.recurrence import (
    compile_recurrence,
    iter_occurrences,
    min_spacing,
    next_occurrence,
    validate_recurrence,
)

START = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)  # a Monday


def _daily(**schedule: Any) -> dict[str, Any]:
    return {"frequency": "Day", "schedule": schedule}


def _monthly(**schedule: Any) -> dict[str, Any]:
    return {"frequency": "Month", "schedule": schedule}


def _friday(occurrence: object) -> dict[str, Any]:
    return {
        "frequency": "Month",
        "schedule": {"monthlyOccurrences": [{"day": "Friday", "occurrence": occurrence}]},
    }


# (id, recurrence, field named, words the message must contain)
INVALID = [
    ("weekdays-with-day", _daily(weekDays=["Monday"]), "recurrence.schedule.weekDays",
     "only works with frequency Week, not Day"),
    ("weekdays-with-month", _monthly(weekDays=["Monday"]), "recurrence.schedule.weekDays",
     "only works with frequency Week"),
    ("month-days-with-week", {"frequency": "Week", "schedule": {"monthDays": [1]}},
     "recurrence.schedule.monthDays", "only works with frequency Month or Year"),
    ("monthly-occurrences-with-day", _daily(monthlyOccurrences=[{"day": "Friday"}]),
     "recurrence.schedule.monthlyOccurrences", "only works with frequency Month or Year"),
    ("months-with-hour", {"frequency": "Hour", "schedule": {"months": [1]}},
     "recurrence.schedule.months", "only works with frequency Day or Week or Month or Year"),
    ("occurrence-6", _friday(6), "recurrence.schedule.monthlyOccurrences[0].occurrence",
     "6 is out of range -5..5"),
    ("occurrence-minus-6", _friday(-6), "recurrence.schedule.monthlyOccurrences[0].occurrence",
     "-6 is out of range -5..5"),
    ("occurrence-0", _friday(0), "recurrence.schedule.monthlyOccurrences[0].occurrence",
     "0 is not an occurrence"),
    ("occurrence-unknown-day", _monthly(monthlyOccurrences=[{"day": "Funday", "occurrence": 1}]),
     "recurrence.schedule.monthlyOccurrences[0].day", "'Funday' is not a weekday"),
    ("occurrence-without-day", _monthly(monthlyOccurrences=[{"occurrence": 1}]),
     "recurrence.schedule.monthlyOccurrences[0].day", "is required"),
    ("minute-60", _daily(minutes=[0, 60]), "recurrence.schedule.minutes",
     "60 is out of range 0..59"),
    ("minute-negative", _daily(minutes=[-1]), "recurrence.schedule.minutes",
     "-1 is out of range 0..59"),
    ("hour-24", _daily(hours=[24]), "recurrence.schedule.hours", "24 is out of range 0..23"),
    ("month-day-0", _monthly(monthDays=[0]), "recurrence.schedule.monthDays", "0 is not a day"),
    ("month-day-32", _monthly(monthDays=[32]), "recurrence.schedule.monthDays",
     "32 is out of range -31..31"),
    ("month-day-minus-32", _monthly(monthDays=[-32]), "recurrence.schedule.monthDays",
     "-32 is out of range -31..31"),
    ("month-13", _monthly(months=[13]), "recurrence.schedule.months", "13 is out of range 1..12"),
    ("minute-as-text", _daily(minutes=["5"]), "recurrence.schedule.minutes",
     "'5' is not an integer"),
    ("minute-as-boolean", _daily(minutes=[True]), "recurrence.schedule.minutes",
     "True is not an integer"),
    ("empty-minutes", _daily(minutes=[]), "recurrence.schedule.minutes",
     "must name at least one value"),
    ("interval-0", {"frequency": "Minute", "interval": 0}, "recurrence.interval",
     "0 is out of range 1..1000"),
    ("interval-over-azure-monthly-limit", {"frequency": "Month", "interval": 19},
     "recurrence.interval", "19 is out of range 1..18"),
    ("count-0", {"frequency": "Day", "count": 0}, "recurrence.count", "0 is less than 1"),
    ("count-too-large-for-a-schedule", {"frequency": "Day", "count": 100_001,
     "schedule": {"hours": [1]}}, "recurrence.count", "100001 is more than 100,000"),
    ("count-as-text", {"frequency": "Day", "count": "5"}, "recurrence.count",
     "'5' is not an integer"),
    ("end-time-before-start", {"frequency": "Day", "endTime": "2025-01-05T00:00:00Z"},
     "recurrence.endTime", "is before startTime"),
    ("end-time-naive", {"frequency": "Day", "endTime": "2026-01-01T00:00:00"},
     "recurrence.endTime", "has no UTC offset"),
    ("end-time-not-a-date", {"frequency": "Day", "endTime": "tomorrow"}, "recurrence.endTime",
     "is not an ISO 8601 date-time"),
    ("frequency-unknown", {"frequency": "Fortnight"}, "recurrence.frequency",
     "'Fortnight' is not one of Second, Minute, Hour, Day, Week, Month, Year"),
    ("frequency-missing", {"interval": 2}, "recurrence.frequency", "is required"),
    ("weekday-abbreviated", {"frequency": "Week", "schedule": {"weekDays": ["Mon"]}},
     "recurrence.schedule.weekDays", "'Mon' is not a weekday"),
    ("time-zone-unknown", {"frequency": "Day", "timeZone": "Mars/Olympus_Mons"},
     "recurrence.timeZone", "is not a known IANA time zone"),
    ("time-zone-a-path", {"frequency": "Day", "timeZone": "../../etc/passwd"},
     "recurrence.timeZone", "is not a known IANA time zone"),
    ("time-zone-empty", {"frequency": "Day", "timeZone": ""}, "recurrence.timeZone",
     "is not an IANA time zone name"),
    ("cron-with-frequency", {"cron": "0 * * * *", "frequency": "Hour"}, "recurrence.frequency",
     "cannot be combined with recurrence.cron"),
    ("cron-with-schedule", {"cron": "0 * * * *", "schedule": {"hours": [1]}},
     "recurrence.schedule", "cannot be combined with recurrence.cron"),
    ("cron-with-interval", {"cron": "0 * * * *", "interval": 2}, "recurrence.interval",
     "cannot be combined with recurrence.cron"),
    ("cron-words", {"cron": "every day"}, "recurrence.cron", "has 2 fields"),
    ("cron-with-seconds-field", {"cron": "0 0 * * * *"}, "recurrence.cron", "has 6 fields"),
    ("cron-minute-60", {"cron": "60 * * * *"}, "recurrence.cron",
     "minute field value 60 is out of range 0..59"),
    ("cron-month-13", {"cron": "0 0 1 13 *"}, "recurrence.cron",
     "month field value 13 is out of range 1..12"),
    ("cron-last-day-extension", {"cron": "0 0 L * *"}, "recurrence.cron",
     "not standard cron syntax"),
    ("cron-nth-weekday-extension", {"cron": "0 0 * * 5#3"}, "recurrence.cron",
     "not standard cron syntax"),
    ("cron-unknown-name", {"cron": "0 0 * * fun"}, "recurrence.cron",
     "is not a valid cron expression"),
    ("cron-never-fires", {"cron": "0 0 30 2 *"}, "recurrence.cron", "matches no date"),
    ("schedule-never-fires", {"frequency": "Year", "schedule": {"months": [2], "monthDays": [30]}},
     "recurrence.schedule", "matches no date"),
    ("unknown-member", {"frequency": "Day", "every": 2}, "recurrence.every", "unknown field"),
    ("unknown-schedule-member", _daily(minute=[5]), "recurrence.schedule.minute",
     "unknown field"),
    ("schedule-not-an-object", {"frequency": "Day", "schedule": [5]}, "recurrence.schedule",
     "must be an object"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("recurrence", "field", "words"), [pytest.param(*row[1:], id=row[0]) for row in INVALID]
)
def test_invalid_recurrence_is_refused_naming_the_field(
    recurrence: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidRecurrence) as caught:
        validate_recurrence(recurrence, START)

    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "recurrence",
    [
        pytest.param(
            {"frequency": "Day", "endTime": "2025-01-05T00:00:00Z"},
            id="end-time-before-an-unknown-start",
        ),
        pytest.param({"frequency": "Day"}, id="plain-daily"),
        pytest.param({"cron": "*/5 * * * *", "timeZone": "Europe/Berlin"}, id="cron-in-a-zone"),
    ],
)
def test_validation_without_start_time_checks_what_does_not_depend_on_it(
    recurrence: dict[str, Any],
) -> None:
    validate_recurrence(recurrence)


def test_validation_without_start_time_still_refuses_a_naive_end_time() -> None:
    with pytest.raises(InvalidRecurrence, match=r"^recurrence\.endTime: .*no UTC offset"):
        validate_recurrence({"frequency": "Day", "endTime": "2026-01-01T00:00:00"})


def test_a_recurrence_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidRecurrence, match=r"^recurrence: must be a JSON object"):
        validate_recurrence("daily", START)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: next_occurrence(None, datetime(2025, 1, 1), START), id="naive-start"),
        pytest.param(lambda: next_occurrence(None, START, datetime(2025, 1, 1)), id="naive-after"),
        pytest.param(
            lambda: iter_occurrences({"frequency": "Day"}, datetime(2025, 1, 1)),
            id="naive-start-iterating",
        ),
    ],
)
def test_naive_datetimes_are_refused(call: Any) -> None:
    with pytest.raises(InvalidRecurrence, match="has no UTC offset"):
        call()


# -- accepted spellings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "recurrence",
    [
        pytest.param({"frequency": "week", "schedule": {"weekDays": ["monday"]}}, id="lower-case"),
        pytest.param({"frequency": "WEEK", "schedule": {"weekDays": ["MONDAY"]}}, id="upper-case"),
        pytest.param(
            {"Frequency": "Week", "Schedule": {"WeekDays": ["Monday"]}},
            id="member-names-in-any-case",
        ),
        pytest.param(
            {
                "frequency": "Week",
                "interval": None,
                "count": None,
                "schedule": {"weekDays": ["Monday"], "hours": None},
            },
            id="null-members-are-absent",
        ),
    ],
)
def test_enum_values_and_member_names_arrive_in_any_casing(recurrence: dict[str, Any]) -> None:
    assert next_occurrence(recurrence, START, START) == START + timedelta(weeks=1)


@pytest.mark.parametrize("key", ["Occurrence", "occurrence"])
def test_occurrence_is_accepted_with_either_capitalisation(key: str) -> None:
    recurrence = {
        "frequency": "Month",
        "schedule": {"monthlyOccurrences": [{"day": "Friday", key: -1}]},
    }
    assert next_occurrence(recurrence, START, START) == datetime(2025, 1, 31, 8, tzinfo=UTC)


def test_a_single_value_stands_for_a_list_as_in_azure() -> None:
    assert next_occurrence(_daily(minutes=15), START, START) == START + timedelta(minutes=15)


def test_a_monthly_occurrence_without_occurrence_means_every_such_weekday() -> None:
    recurrence = _monthly(monthlyOccurrences=[{"day": "Friday"}])
    fridays = [
        moment.day for moment, _ in zip(iter_occurrences(recurrence, START), range(4), strict=False)
    ]
    assert fridays == [10, 17, 24, 31]


class _Occurrence(BaseModel):
    day: str
    occurrence: int = Field(alias="Occurrence")


class _Schedule(BaseModel):
    hours: list[int] | None = None
    monthly_occurrences: list[_Occurrence] | None = Field(default=None, alias="monthlyOccurrences")


class _Recurrence(BaseModel):
    frequency: str
    end_time: datetime | None = Field(default=None, alias="endTime")
    schedule: _Schedule | None = None
    time_zone: str | None = Field(default=None, alias="timeZone")


def test_a_pydantic_model_is_read_through_its_wire_form() -> None:
    # Given a model with aliases, as the API's models have
    model = _Recurrence.model_validate(
        {
            "frequency": "Month",
            "endTime": datetime(2025, 4, 1, tzinfo=UTC),
            "schedule": {"hours": [5], "monthlyOccurrences": [{"day": "Friday", "Occurrence": -1}]},
            "timeZone": "Europe/Berlin",
        }
    )

    # When its occurrences are listed
    got = [moment.isoformat() for moment in iter_occurrences(model, START)]

    # Then the model's wire form was used
    assert got == [
        "2025-01-31T05:00:00+01:00",
        "2025-02-28T05:00:00+01:00",
        "2025-03-28T05:00:00+01:00",
    ]


# -- the compiled rule ----------------------------------------------------------------------


def test_exports_are_the_public_api_sorted() -> None:
    # The package is the engine's one public face (canonical_recurrence is the domain's
    # key for a rule, which models import).
    expected = [
        "Rule",
        "RuleShape",
        "canonical_recurrence",
        "compile_recurrence",
        "iter_occurrences",
        "min_spacing",
        "next_occurrence",
        "rule_shape",
        "validate_recurrence",
    ]
    assert scheduler.recurrence.__all__ == expected


def test_compiled_rules_are_cached_by_json_and_start() -> None:
    first = compile_recurrence({"frequency": "Day", "interval": 2}, START)
    again = compile_recurrence({"interval": 2, "frequency": "Day"}, START)
    other_offset = compile_recurrence({"frequency": "Day", "interval": 2}, START.astimezone())
    assert first is again
    assert first.start == START
    assert other_offset is first or other_offset.start.utcoffset() == START.astimezone().utcoffset()


FAR_START = datetime(1990, 1, 1, 0, 0, 30, tzinfo=UTC)  # 13:45:30 in Chatham
FAR_AFTER = datetime(9000, 6, 15, 12, 34, 56, tzinfo=UTC)  # a Sunday; June's last Friday: 27th


@pytest.mark.parametrize(
    ("recurrence", "expected"),
    [
        pytest.param({"frequency": "Second"}, "9000-06-15T12:34:57+00:00", id="every-second"),
        pytest.param(
            {"frequency": "Minute", "interval": 7},
            "9000-06-15T12:41:30+00:00",
            id="every-7-minutes",
        ),
        pytest.param(
            {
                "frequency": "Week",
                "schedule": {"weekDays": ["monday", "friday"], "hours": [10, 22]},
            },
            "9000-06-16T10:00:30+00:00",
            id="weekly-mon-fri-after-a-sunday",
        ),
        pytest.param(
            {
                "frequency": "Month",
                "interval": 5,
                "schedule": {"monthlyOccurrences": [{"day": "friday", "occurrence": -1}]},
            },
            "9000-06-27T00:00:30+00:00",
            id="every-5-months-last-friday",
        ),
        pytest.param(
            {"cron": "*/5 * * * *", "timeZone": "Europe/Berlin"},
            "9000-06-15T14:35:00+02:00",
            id="cron-in-a-zone",
        ),
        pytest.param(
            {"frequency": "Day", "schedule": {"hours": [10]}, "timeZone": "Pacific/Chatham"},
            "9000-06-16T10:45:30+12:45",
            id="daily-in-chatham-minute-from-start",
        ),
    ],
)
def test_next_occurrence_far_from_the_start_does_not_iterate_from_it(
    recurrence: dict[str, Any], expected: str
) -> None:
    # 7,000 years of occurrences would never finish in the per-test timeout if iterated
    got = next_occurrence(recurrence, FAR_START, FAR_AFTER)
    assert got is not None
    assert got.isoformat() == expected


# -- min_spacing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recurrence", "expected"),
    [
        pytest.param(None, None, id="one-shot"),
        pytest.param({"frequency": "Minute", "count": 1}, None, id="count-1"),
        pytest.param(
            {"frequency": "Day", "endTime": "2025-01-06T20:00:00Z"},
            None,
            id="end-time-before-the-second",
        ),
        pytest.param({"frequency": "Second"}, timedelta(seconds=1), id="every-second"),
        pytest.param(
            {"frequency": "Minute", "interval": 15}, timedelta(minutes=15), id="every-15-minutes"
        ),
        pytest.param(
            {"frequency": "Hour", "schedule": {"minutes": [0, 30]}},
            timedelta(minutes=30),
            id="hourly-at-0-and-30",
        ),
        pytest.param(
            {"frequency": "Hour", "interval": 2, "schedule": {"minutes": [0]}},
            timedelta(hours=2),
            id="every-2-hours-at-0",
        ),
        pytest.param(
            {"frequency": "Hour", "interval": 3, "schedule": {"minutes": [0, 50]}},
            timedelta(minutes=50),
            id="every-3-hours-at-0-and-50",
        ),
        pytest.param({"frequency": "Day"}, timedelta(days=1), id="daily"),
        pytest.param(_daily(hours=[5, 17]), timedelta(hours=12), id="daily-5-and-17"),
        pytest.param(
            _daily(minutes=[0, 15, 30, 45]),
            timedelta(minutes=15),
            id="every-15-minutes-by-schedule",
        ),
        pytest.param(
            {
                "frequency": "Week",
                "schedule": {"weekDays": ["monday", "wednesday", "friday"], "hours": [10, 22]},
            },
            timedelta(hours=12),
            id="weekly-mon-wed-fri-10-and-22",
        ),
        pytest.param(
            {"frequency": "Week", "schedule": {"weekDays": ["saturday", "sunday"]}},
            timedelta(days=1),
            id="weekends",
        ),
        pytest.param({"frequency": "Week", "interval": 2}, timedelta(weeks=2), id="fortnightly"),
        pytest.param(_friday(-1), timedelta(days=28), id="last-friday"),
        pytest.param(_monthly(monthDays=[1, -1]), timedelta(days=1), id="first-and-last-day"),
        pytest.param({"frequency": "Year"}, timedelta(days=365), id="yearly"),
        pytest.param({"cron": "*/5 * * * *"}, timedelta(minutes=5), id="cron-every-5-minutes"),
        pytest.param({"cron": "0 9 * * 1-5"}, timedelta(days=1), id="cron-weekdays-at-9"),
        # conservative: the bound allows for an hour-long change between 9:00 and 17:00
        pytest.param(
            {"cron": "0 9,17 * * *", "timeZone": "Europe/Berlin"},
            timedelta(hours=7),
            id="cron-9-and-17-in-berlin-less-a-possible-hour",
        ),
    ],
)
def test_min_spacing(recurrence: dict[str, Any] | None, expected: timedelta | None) -> None:
    assert min_spacing(recurrence, START) == expected


@pytest.mark.parametrize(
    "recurrence",
    [
        {"frequency": "Second", "interval": 1},
        {"frequency": "Minute", "interval": 15, "count": 4},
        {"frequency": "Hour", "interval": 2, "endTime": "2025-01-07T08:00:00Z"},
        {"frequency": "Day", "interval": 2},
        {"frequency": "Minute", "interval": 5, "timeZone": "Europe/Berlin"},
        {"frequency": "Week", "schedule": {"weekDays": ["Monday", "Friday"]}},
        {"cron": "*/5 9-17 * * 1-5", "timeZone": "America/New_York"},
    ],
    ids=["second", "count", "end", "day", "zone", "week-days", "cron"],
)
def test_a_shape_anchored_at_a_start_is_the_compiled_rule(recurrence: dict[str, Any]) -> None:
    # Given one shape and jobs that started at different instants
    shape = recurrence_module.rule_shape(recurrence)
    for offset_ms in (0, 1, 999, 1_234_567):
        start = START + timedelta(milliseconds=offset_ms)

        # When it is anchored at each start
        anchored = shape.at(start)

        # Then it fires exactly when the rule compiled for that start does
        compiled = compile_recurrence(recurrence, start)
        after = START + timedelta(hours=3, milliseconds=17)
        assert [anchored.next_after(after + timedelta(minutes=m)) for m in range(0, 600, 37)] == [
            compiled.next_after(after + timedelta(minutes=m)) for m in range(0, 600, 37)
        ]
        assert list(zip(range(5), anchored, strict=False)) == list(
            zip(range(5), compiled, strict=False)
        )


def test_a_shape_refuses_a_start_after_its_end_time() -> None:
    shape = recurrence_module.rule_shape({"frequency": "Hour", "endTime": "2025-01-01T00:00:00Z"})
    with pytest.raises(InvalidRecurrence, match="endTime"):
        shape.at(START)
