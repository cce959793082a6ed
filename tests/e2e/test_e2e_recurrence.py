"""Jobs with an advanced schedule, a time zone and a cron rule fire at the right instants.

Expected instants are computed here by hand (zoneinfo arithmetic), not by the engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from tests.support.arm import API_VERSION, get_job, http_job, iso, new_collection, put_job
from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

TOLERANCE_S = 1.0


def whole_seconds_ahead(seconds: int) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


def test_schedule_timezone_and_cron_jobs_fire_when_they_should(
    stack: Stack, target: HttpTarget
) -> None:
    collection = new_collection(stack.http)
    due = whole_seconds_ahead(3)
    berlin = due.astimezone(ZoneInfo("Europe/Berlin"))
    chatham = ZoneInfo("Pacific/Chatham")  # UTC+12:45 / +13:45
    next_minute = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    at_chatham = next_minute.astimezone(chatham)

    # Given a weekly schedule naming today, this hour and this minute (seconds from
    # startTime), a daily Berlin wall-clock schedule, and a cron rule in Chatham time
    put_job(
        stack.http,
        collection,
        "weekly",
        http_job(
            f"{target.url}/weekly",
            start=due,
            recurrence={
                "frequency": "Week",
                "schedule": {
                    "weekDays": [due.strftime("%A")],
                    "hours": [due.hour],
                    "minutes": [due.minute],
                },
            },
        ),
    )
    put_job(
        stack.http,
        collection,
        "berlin",
        http_job(
            f"{target.url}/berlin",
            start=due,
            recurrence={
                "frequency": "Day",
                "timeZone": "Europe/Berlin",
                "schedule": {"hours": [berlin.hour], "minutes": [berlin.minute]},
            },
        ),
    )
    put_job(
        stack.http,
        collection,
        "cron",
        http_job(
            f"{target.url}/cron",
            start=datetime.now(UTC),
            recurrence={
                "cron": f"{at_chatham.minute} {at_chatham.hour} * * *",
                "timeZone": "Pacific/Chatham",
            },
        ),
    )

    # Then each one's next execution time is the instant computed by hand
    for name, expected in (("weekly", due), ("berlin", due), ("cron", next_minute)):
        status = get_job(stack.http, collection, name)["properties"]["status"]
        assert status["nextExecutionTime"] == iso(expected), name

    # and each fires at it, within the tolerance, and is rescheduled a day or a week on
    for path, expected in (("/weekly", due), ("/berlin", due), ("/cron", next_minute)):
        remaining = expected.timestamp() - datetime.now(UTC).timestamp() + 5
        [received] = wait_until(
            lambda p=path: target.requests_to(p), timeout=remaining, message=f"{path} to fire"
        )
        assert abs(received.at - expected.timestamp()) < TOLERANCE_S, path
    follow_ups = {"weekly": due + timedelta(weeks=1), "cron": next_minute + timedelta(days=1)}
    for name, expected in follow_ups.items():
        status = wait_until(
            lambda n=name: (
                (s := get_job(stack.http, collection, n)["properties"]["status"]).get(
                    "nextExecutionTime"
                )
                != iso(due)
                and s
            ),
            timeout=5,
        )
        assert status["nextExecutionTime"] == iso(expected), name


def test_the_occurrences_preview_agrees_with_next_execution_time(stack: Stack) -> None:
    # Given a job every 15 minutes from a start in the past
    collection = new_collection(stack.http)
    # (halfway between two of its quarter hours: an occurrence at most 10 s old when the
    # job is saved would be due at once, scheduler.domain.planning.first_fire)
    start = (datetime.now(UTC) - timedelta(days=300, minutes=7, seconds=30)).replace(microsecond=0)
    put_job(
        stack.http,
        collection,
        "quarterly",
        http_job(
            "http://127.0.0.1:9/",
            start=start,
            recurrence={"frequency": "Minute", "interval": 15, "count": 1_000_000},
        ),
    )

    # When its next 5 occurrences are asked for
    response = stack.http.get(
        f"{collection}/jobs/quarterly/occurrences", params={**API_VERSION, "count": 5}
    )
    assert response.status_code == 200, response.text
    preview = response.json()["value"]

    # Then the first is nextExecutionTime, and they step by 15 minutes from the start
    status = get_job(stack.http, collection, "quarterly")["properties"]["status"]
    assert preview[0] == status["nextExecutionTime"]
    instants = [datetime.fromisoformat(p) for p in preview]
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(instants))
    assert all((i - start) % timedelta(minutes=15) == timedelta(0) for i in instants)
    assert instants[0] > datetime.now(UTC) - timedelta(seconds=5)


@pytest.mark.parametrize(("count", "status"), [(0, 400), (1001, 400), (1000, 200)])
def test_the_preview_count_is_bounded(stack: Stack, count: int, status: int) -> None:
    collection = new_collection(stack.http)
    put_job(
        stack.http,
        collection,
        "j",
        http_job(
            "http://127.0.0.1:9/",
            start=datetime(2030, 1, 1, tzinfo=UTC),
            recurrence={"frequency": "Hour"},
        ),
    )
    response = stack.http.get(
        f"{collection}/jobs/j/occurrences", params={**API_VERSION, "count": count}
    )
    assert response.status_code == status


def test_an_invalid_recurrence_is_a_400_naming_the_field(stack: Stack) -> None:
    collection = new_collection(stack.http)
    body = http_job(
        "http://127.0.0.1:9/", recurrence={"frequency": "Day", "schedule": {"weekDays": ["Monday"]}}
    )
    response = stack.http.put(f"{collection}/jobs/bad", params=API_VERSION, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(
        "properties.recurrence.schedule.weekDays:"
    )
