"""DST tables: spring forward and fall back in four zones, for each kind of rule.

The policy (docs/recurrence.md): rules below a day (second/minute/hour frequencies whose
schedule names no hours, and cron expressions whose hour field starts with ``*``) follow
elapsed time; the others are wall-clock times in the zone, a wall time in a gap moves
forward by the gap, an ambiguous one fires at its first instance, never an instant twice.

2025 changes used below (local time):
  Europe/Berlin        30 Mar 02:00 +01 -> 03:00 +02;   26 Oct 03:00 +02 -> 02:00 +01
  America/New_York      9 Mar 02:00 -05 -> 03:00 -04;    2 Nov 02:00 -04 -> 01:00 -05
  Australia/Lord_Howe   5 Oct 02:00 +10:30 -> 02:30 +11; 6 Apr 02:00 +11 -> 01:30 +10:30
  Pacific/Chatham      28 Sep 02:45 +12:45 -> 03:45 +13:45; 6 Apr 03:45 +13:45 -> 02:45 +12:45
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import islice, pairwise
from typing import Any

import pytest

from scheduler.recurrence import iter_occurrences, min_spacing, next_occurrence

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
LORD_HOWE, CHATHAM = "Australia/Lord_Howe", "Pacific/Chatham"


def _daily(zone: str, hour: int, minute: int) -> dict[str, Any]:
    return {
        "frequency": "Day",
        "schedule": {"hours": [hour], "minutes": [minute]},
        "timeZone": zone,
    }


def _every(frequency: str, interval: int, zone: str) -> dict[str, Any]:
    return {"frequency": frequency, "interval": interval, "timeZone": zone}


def _cron(expression: str, zone: str) -> dict[str, Any]:
    return {"cron": expression, "timeZone": zone}


# (id, recurrence, start, expected first occurrences as local time with offset)
CASES = [
    # Europe/Berlin, spring forward
    ("berlin-spring-daily-0230-moves-to-0330", _daily(BERLIN, 2, 30), "2025-03-29T00:00+01:00",
     ["2025-03-29T02:30+01:00", "2025-03-30T03:30+02:00", "2025-03-31T02:30+02:00"]),
    ("berlin-spring-daily-1000-keeps-wall-time", _daily(BERLIN, 10, 0), "2025-03-29T00:00+01:00",
     ["2025-03-29T10:00+01:00", "2025-03-30T10:00+02:00", "2025-03-31T10:00+02:00"]),
    ("berlin-spring-hourly-follows-elapsed-time", _every("Hour", 1, BERLIN),
     "2025-03-30T00:00+01:00",
     ["2025-03-30T00:00+01:00", "2025-03-30T01:00+01:00", "2025-03-30T03:00+02:00",
      "2025-03-30T04:00+02:00"]),
    ("berlin-spring-every-15-minutes", _every("Minute", 15, BERLIN), "2025-03-30T01:30+01:00",
     ["2025-03-30T01:30+01:00", "2025-03-30T01:45+01:00", "2025-03-30T03:00+02:00",
      "2025-03-30T03:15+02:00"]),
    ("berlin-spring-cron-every-15-minutes", _cron("*/15 * * * *", BERLIN),
     "2025-03-30T01:30+01:00",
     ["2025-03-30T01:30+01:00", "2025-03-30T01:45+01:00", "2025-03-30T03:00+02:00",
      "2025-03-30T03:15+02:00"]),
    ("berlin-spring-cron-0230-moves-to-0330", _cron("30 2 * * *", BERLIN),
     "2025-03-29T00:00+01:00",
     ["2025-03-29T02:30+01:00", "2025-03-30T03:30+02:00", "2025-03-31T02:30+02:00"]),
    # wall times 02:00 and 02:30 move onto 03:00 and 03:30, which fire once each
    ("berlin-spring-gap-times-merge-with-real-ones",
     {"frequency": "Minute", "interval": 30, "schedule": {"hours": [2, 3]}, "timeZone": BERLIN},
     "2025-03-30T00:00+01:00",
     ["2025-03-30T03:00+02:00", "2025-03-30T03:30+02:00", "2025-03-31T02:00+02:00",
      "2025-03-31T02:30+02:00"]),
    # Europe/Berlin, fall back
    ("berlin-fall-daily-0230-fires-once", _daily(BERLIN, 2, 30), "2025-10-25T00:00+02:00",
     ["2025-10-25T02:30+02:00", "2025-10-26T02:30+02:00", "2025-10-27T02:30+01:00"]),
    ("berlin-fall-hourly-follows-elapsed-time", _every("Hour", 1, BERLIN),
     "2025-10-26T01:00+02:00",
     ["2025-10-26T01:00+02:00", "2025-10-26T02:00+02:00", "2025-10-26T02:00+01:00",
      "2025-10-26T03:00+01:00"]),
    ("berlin-fall-every-15-minutes", _every("Minute", 15, BERLIN), "2025-10-26T02:30+02:00",
     ["2025-10-26T02:30+02:00", "2025-10-26T02:45+02:00", "2025-10-26T02:00+01:00",
      "2025-10-26T02:15+01:00"]),
    ("berlin-fall-cron-every-15-minutes", _cron("*/15 * * * *", BERLIN),
     "2025-10-26T02:30+02:00",
     ["2025-10-26T02:30+02:00", "2025-10-26T02:45+02:00", "2025-10-26T02:00+01:00",
      "2025-10-26T02:15+01:00"]),
    ("berlin-fall-cron-0230-fires-once", _cron("30 2 * * *", BERLIN), "2025-10-25T00:00+02:00",
     ["2025-10-25T02:30+02:00", "2025-10-26T02:30+02:00", "2025-10-27T02:30+01:00"]),
    ("berlin-fall-half-hourly-naming-hours-fires-the-repeated-hour-once",
     {"frequency": "Minute", "interval": 30, "schedule": {"hours": [2]}, "timeZone": BERLIN},
     "2025-10-26T00:00+02:00",
     ["2025-10-26T02:00+02:00", "2025-10-26T02:30+02:00", "2025-10-27T02:00+01:00"]),
    # America/New_York
    ("new-york-spring-daily-0230-moves-to-0330", _daily(NEW_YORK, 2, 30),
     "2025-03-08T00:00-05:00",
     ["2025-03-08T02:30-05:00", "2025-03-09T03:30-04:00", "2025-03-10T02:30-04:00"]),
    ("new-york-spring-hourly-follows-elapsed-time", _every("Hour", 1, NEW_YORK),
     "2025-03-09T00:00-05:00",
     ["2025-03-09T00:00-05:00", "2025-03-09T01:00-05:00", "2025-03-09T03:00-04:00",
      "2025-03-09T04:00-04:00"]),
    ("new-york-fall-daily-0130-fires-once", _daily(NEW_YORK, 1, 30), "2025-11-01T00:00-04:00",
     ["2025-11-01T01:30-04:00", "2025-11-02T01:30-04:00", "2025-11-03T01:30-05:00"]),
    ("new-york-fall-every-15-minutes", _every("Minute", 15, NEW_YORK),
     "2025-11-02T01:30-04:00",
     ["2025-11-02T01:30-04:00", "2025-11-02T01:45-04:00", "2025-11-02T01:00-05:00",
      "2025-11-02T01:15-05:00"]),
    ("new-york-fall-cron-every-15-minutes", _cron("*/15 * * * *", NEW_YORK),
     "2025-11-02T01:30-04:00",
     ["2025-11-02T01:30-04:00", "2025-11-02T01:45-04:00", "2025-11-02T01:00-05:00",
      "2025-11-02T01:15-05:00"]),
    ("new-york-fall-cron-0130-fires-once", _cron("30 1 * * *", NEW_YORK),
     "2025-11-01T00:00-04:00",
     ["2025-11-01T01:30-04:00", "2025-11-02T01:30-04:00", "2025-11-03T01:30-05:00"]),
    # Australia/Lord_Howe: a 30-minute change
    ("lord-howe-spring-daily-0215-moves-30-minutes", _daily(LORD_HOWE, 2, 15),
     "2025-10-04T00:00+10:30",
     ["2025-10-04T02:15+10:30", "2025-10-05T02:45+11:00", "2025-10-06T02:15+11:00"]),
    ("lord-howe-spring-hourly-follows-elapsed-time", _every("Hour", 1, LORD_HOWE),
     "2025-10-05T00:00+10:30",
     ["2025-10-05T00:00+10:30", "2025-10-05T01:00+10:30", "2025-10-05T02:30+11:00",
      "2025-10-05T03:30+11:00"]),
    ("lord-howe-spring-every-15-minutes", _every("Minute", 15, LORD_HOWE),
     "2025-10-05T01:30+10:30",
     ["2025-10-05T01:30+10:30", "2025-10-05T01:45+10:30", "2025-10-05T02:30+11:00",
      "2025-10-05T02:45+11:00"]),
    # cron keeps the wall minute: 90 real minutes from 01:00 to 03:00
    ("lord-howe-spring-cron-hourly-keeps-minute-0", _cron("0 * * * *", LORD_HOWE),
     "2025-10-05T00:00+10:30",
     ["2025-10-05T00:00+10:30", "2025-10-05T01:00+10:30", "2025-10-05T03:00+11:00"]),
    ("lord-howe-fall-daily-0145-fires-once", _daily(LORD_HOWE, 1, 45), "2025-04-05T00:00+11:00",
     ["2025-04-05T01:45+11:00", "2025-04-06T01:45+11:00", "2025-04-07T01:45+10:30"]),
    ("lord-howe-fall-every-15-minutes", _every("Minute", 15, LORD_HOWE),
     "2025-04-06T01:30+11:00",
     ["2025-04-06T01:30+11:00", "2025-04-06T01:45+11:00", "2025-04-06T01:30+10:30",
      "2025-04-06T01:45+10:30", "2025-04-06T02:00+10:30"]),
    ("lord-howe-fall-cron-hourly-keeps-minute-0", _cron("0 * * * *", LORD_HOWE),
     "2025-04-06T00:00+11:00",
     ["2025-04-06T00:00+11:00", "2025-04-06T01:00+11:00", "2025-04-06T02:00+10:30",
      "2025-04-06T03:00+10:30"]),
    # Pacific/Chatham: a 45-minute standard offset
    ("chatham-spring-daily-0300-moves-to-0400", _daily(CHATHAM, 3, 0), "2025-09-27T00:00+12:45",
     ["2025-09-27T03:00+12:45", "2025-09-28T04:00+13:45", "2025-09-29T03:00+13:45"]),
    ("chatham-spring-hourly-follows-elapsed-time", _every("Hour", 1, CHATHAM),
     "2025-09-28T01:45+12:45",
     ["2025-09-28T01:45+12:45", "2025-09-28T03:45+13:45", "2025-09-28T04:45+13:45"]),
    ("chatham-spring-every-15-minutes", _every("Minute", 15, CHATHAM), "2025-09-28T02:30+12:45",
     ["2025-09-28T02:30+12:45", "2025-09-28T03:45+13:45", "2025-09-28T04:00+13:45"]),
    ("chatham-spring-cron-every-15-minutes", _cron("*/15 * * * *", CHATHAM),
     "2025-09-28T02:30+12:45",
     ["2025-09-28T02:30+12:45", "2025-09-28T03:45+13:45", "2025-09-28T04:00+13:45"]),
    ("chatham-fall-daily-0300-fires-once", _daily(CHATHAM, 3, 0), "2025-04-05T00:00+13:45",
     ["2025-04-05T03:00+13:45", "2025-04-06T03:00+13:45", "2025-04-07T03:00+12:45"]),
    ("chatham-fall-cron-0300-fires-once", _cron("0 3 * * *", CHATHAM), "2025-04-05T00:00+13:45",
     ["2025-04-05T03:00+13:45", "2025-04-06T03:00+13:45", "2025-04-07T03:00+12:45"]),
    ("chatham-fall-every-15-minutes", _every("Minute", 15, CHATHAM), "2025-04-06T03:30+13:45",
     ["2025-04-06T03:30+13:45", "2025-04-06T02:45+12:45", "2025-04-06T03:00+12:45"]),
    # Samoa skipped 30 Dec 2011: that day's 10:00 lands on 31 Dec 10:00 and fires once
    ("apia-skipped-day-fires-once", _daily("Pacific/Apia", 10, 0), "2011-12-28T00:00-10:00",
     ["2011-12-28T10:00-10:00", "2011-12-29T10:00-10:00", "2011-12-31T10:00+14:00",
      "2012-01-01T10:00+14:00"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("recurrence", "start", "expected"), [pytest.param(*row[1:], id=row[0]) for row in CASES]
)
def test_occurrences_across_a_dst_change(
    recurrence: dict[str, Any], start: str, expected: list[str]
) -> None:
    # When the first occurrences are listed
    got = list(islice(iter_occurrences(recurrence, datetime.fromisoformat(start)), len(expected)))

    # Then they are the expected instants, shown in the rule's zone
    assert [moment.isoformat(timespec="minutes") for moment in got] == expected


@pytest.mark.parametrize(
    ("recurrence", "start", "expected"), [pytest.param(*row[1:], id=row[0]) for row in CASES]
)
def test_next_occurrence_agrees_from_every_point(
    recurrence: dict[str, Any], start: str, expected: list[str]
) -> None:
    # Given each expected occurrence and the minute before it
    moments = [datetime.fromisoformat(text) for text in expected]
    for before, following in pairwise(moments):
        # Then the next occurrence after one is the next in the list
        assert next_occurrence(recurrence, datetime.fromisoformat(start), before) == following
        # And from just before an occurrence, it is that occurrence
        just_before = following - timedelta(minutes=1)
        assert next_occurrence(recurrence, datetime.fromisoformat(start), just_before) == following


@pytest.mark.parametrize(
    ("recurrence", "expected"),
    [
        pytest.param(_daily(BERLIN, 10, 0), timedelta(hours=23), id="berlin-daily-23h-at-spring"),
        # Lord Howe's changes are 30 minutes now, but were an hour in 1981-1985 and the
        # bound covers 1970-2100
        pytest.param(
            _daily(LORD_HOWE, 10, 0),
            timedelta(hours=23),
            id="lord-howe-daily-bound-by-its-1980s-hour-long-change",
        ),
        pytest.param(_every("Minute", 15, BERLIN), timedelta(minutes=15), id="berlin-15-min"),
        pytest.param(
            _cron("*/15 * * * *", LORD_HOWE), timedelta(minutes=15), id="lord-howe-cron-15-min"
        ),
        pytest.param(
            _cron("0 * * * *", LORD_HOWE),
            timedelta(minutes=30),
            id="lord-howe-cron-hourly-lower-bound",
        ),
    ],
)
def test_min_spacing_in_a_zone_is_never_more_than_the_shortest_gap(
    recurrence: dict[str, Any], expected: timedelta
) -> None:
    assert min_spacing(recurrence) == expected
