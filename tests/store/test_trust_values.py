"""Bounded values (issue 12, rows 5, 6 and 13): dates, durations, counts, nesting and URIs
are range-checked at write time on every write path, and the recurrence engine and the
beat's planning end cleanly at the last instant they can represent instead of overflowing.
"""

from __future__ import annotations

import json
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from scheduler.api import create_api
from scheduler.clock import END_OF_TIME
from scheduler.domain.bounds import check_header, check_http_uri
from scheduler.domain.models import JobProperties, MissedRunPolicy
from scheduler.domain.planning import first_fire, plan_dispatch, upcoming
from scheduler.recurrence import compile_recurrence
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore
from tests.support.arm import API_VERSION, collection_path
from tests.support.helpers import ADMIN_TOKEN
from tests.support.swagger import validated

with warnings.catch_warnings():
    # Starlette now asks for its httpx fork; the httpx it warns about works the same here.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

FUTURE = "2099-01-01T00:00:00Z"
LAST_WALL = "9999-12-31T23:59:59-14:00"  # issue row 5: past year 9999 once in UTC

Mutation = Callable[[dict[str, Any]], None]


@pytest.fixture
def api(settings: TaktSettings, store: JobStore) -> Iterator[TestClient]:
    with validated(TestClient(create_api(settings, store))) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


def valid_job() -> dict[str, Any]:
    """The flat job properties every hostile case starts from."""
    return {
        "startTime": FUTURE,
        "action": {
            "type": "Http",
            "request": {"uri": "http://127.0.0.1:9/x", "method": "GET"},
            "retryPolicy": {"retryType": "None"},
        },
    }


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting ``a.b.c`` of the flat job to ``value`` (creating the members)."""

    def mutate(job: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = job
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = json.loads(json.dumps(value))  # a fresh copy for each job

    return mutate


def _both(*mutations: Mutation) -> Mutation:
    def mutate(job: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(job)

    return mutate


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _nested_dict(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


_CELERY = _set("action", {"type": "Celery", "celeryTask": {"name": "tasks.add"}})
_YEARLY = _set("recurrence", {"frequency": "Year"})
_ERROR_ACTION = _set(
    "action.errorAction",
    {"type": "Http", "request": {"uri": "http://127.0.0.1:9/e", "method": "POST"}},
)
_FIXED = _set("action.retryPolicy", {"retryType": "Fixed", "retryCount": 1})
_CERT = _set(
    "action.request.authentication",
    {"type": "ClientCertificate", "pfx": "cGZ4", "password": "pw"},
)

#: (id, mutation of a valid job, the field the 400 must name without "properties.")
HOSTILE: list[tuple[str, Mutation, str]] = [
    # -- dates
    ("start-9999-minus-14h", _set("startTime", LAST_WALL), "startTime"),
    ("start-9000", _set("startTime", "9000-01-01T00:00:00Z"), "startTime"),
    ("start-year-1-plus-14h", _set("startTime", "0001-01-01T00:00:00+14:00"), "startTime"),
    ("start-before-1970", _set("startTime", "1969-12-31T23:59:59Z"), "startTime"),
    ("start-naive", _set("startTime", "2030-01-01T00:00:00"), "startTime"),
    (
        "end-9999-minus-14h",
        _both(_YEARLY, _set("recurrence.endTime", LAST_WALL)),
        "recurrence.endTime",
    ),
    (
        "certificate-expiration-9999",
        _both(_CERT, _set("action.request.authentication.certificateExpirationDate", LAST_WALL)),
        "action.request.authentication.certificateExpirationDate",
    ),
    # -- durations
    (
        "retry-interval-P99999999Y",
        _both(_FIXED, _set("action.retryPolicy.retryInterval", "P99999999Y")),
        "action.retryPolicy.retryInterval",
    ),
    (
        "retry-interval-huge-days",
        _both(_FIXED, _set("action.retryPolicy.retryInterval", "P99999999999999999999D")),
        "action.retryPolicy.retryInterval",
    ),
    (
        "retry-interval-negative",
        _both(_FIXED, _set("action.retryPolicy.retryInterval", "-PT1M")),
        "action.retryPolicy.retryInterval",
    ),
    (
        "error-action-retry-interval-P99999999Y",
        _both(
            _ERROR_ACTION,
            _set(
                "action.errorAction.retryPolicy",
                {"retryType": "Fixed", "retryInterval": "P99999999Y"},
            ),
        ),
        "action.errorAction.retryPolicy.retryInterval",
    ),
    (
        "timeout-P99999999Y",
        _set("action.request.timeout", "P99999999Y"),
        "action.request.timeout",
    ),
    ("starting-deadline-P99999999Y", _set("startingDeadline", "P99999999Y"), "startingDeadline"),
    # -- counts
    (
        "recurrence-count-1e30",
        _both(_set("recurrence", {"frequency": "Minute"}), _set("recurrence.count", 10**30)),
        "recurrence.count",
    ),
    (
        "recurrence-interval-1e30",
        _both(_YEARLY, _set("recurrence.interval", 10**30)),
        "recurrence.interval",
    ),
    (
        "retry-count-1e30",
        _both(_FIXED, _set("action.retryPolicy.retryCount", 10**30)),
        "action.retryPolicy.retryCount",
    ),
    (
        "schedule-minutes-1e30",
        _both(_set("recurrence", {"frequency": "Hour", "schedule": {"minutes": [10**30]}})),
        "recurrence.schedule.minutes",
    ),
    # -- Celery arguments
    (
        "celery-args-20-deep",
        _both(_CELERY, _set("action.celeryTask.args", _nested(20))),
        "action.celeryTask.args",
    ),
    (
        "celery-kwargs-20-deep",
        _both(_CELERY, _set("action.celeryTask.kwargs", {"k": _nested_dict(20)})),
        "action.celeryTask.kwargs",
    ),
    (
        "celery-args-too-large",
        _both(_CELERY, _set("action.celeryTask.args", ["x" * 1024] * 100)),
        "action.celeryTask.args",
    ),
    # -- URIs
    ("uri-tab", _set("action.request.uri", "http://example.com/a\tb"), "action.request.uri"),
    ("uri-crlf", _set("action.request.uri", "http://example.com/\r\nX: y"), "action.request.uri"),
    ("uri-nul", _set("action.request.uri", "http://example.com/\x00"), "action.request.uri"),
    ("uri-del", _set("action.request.uri", "http://example.com/\x7f"), "action.request.uri"),
    ("uri-space", _set("action.request.uri", "http://example.com/a b"), "action.request.uri"),
    ("uri-no-host", _set("action.request.uri", "http://"), "action.request.uri"),
    ("uri-empty-host", _set("action.request.uri", "http://:80/x"), "action.request.uri"),
    ("uri-space-in-host", _set("action.request.uri", "http://exa mple.com/"), "action.request.uri"),
    ("uri-unclosed-ipv6", _set("action.request.uri", "http://[::1/x"), "action.request.uri"),
    ("uri-bad-port", _set("action.request.uri", "http://example.com:99999/"), "action.request.uri"),
    ("uri-ftp", _set("action.request.uri", "ftp://example.com/"), "action.request.uri"),
    ("uri-bad-host-char", _set("action.request.uri", "http://exa_m<ple/"), "action.request.uri"),
    (
        "error-action-uri-crlf",
        _both(_ERROR_ACTION, _set("action.errorAction.request.uri", "http://e.com/\r\n")),
        "action.errorAction.request.uri",
    ),
    (
        "storage-account-with-a-host",
        _set(
            "action",
            {
                "type": "StorageQueue",
                "queueMessage": {
                    "storageAccount": "evil.example/x?",
                    "queueName": "q",
                    "sasToken": "sv=1&sig=x",
                    "message": "m",
                },
            },
        ),
        "action.queueMessage.storageAccount",
    ),
    (
        "storage-queue-name-with-a-path",
        _set(
            "action",
            {
                "type": "StorageQueue",
                "queueMessage": {
                    "storageAccount": "acct",
                    "queueName": "q/../../x",
                    "sasToken": "sv=1&sig=x",
                    "message": "m",
                },
            },
        ),
        "action.queueMessage.queueName",
    ),
    # -- headers and method
    (
        "header-name-space",
        _set("action.request.headers", {"X Bad": "v"}),
        "action.request.headers",
    ),
    (
        "header-name-colon",
        _set("action.request.headers", {"X-A:b": "v"}),
        "action.request.headers",
    ),
    (
        "header-value-crlf",
        _set("action.request.headers", {"X-A": "v\r\nX-Injected: 1"}),
        "action.request.headers",
    ),
    (
        "header-value-not-ascii",
        _set("action.request.headers", {"X-A": "caf\u00e9"}),
        "action.request.headers",
    ),
    (
        "header-value-nul",
        _set("action.request.headers", {"X-A": "v\x00"}),
        "action.request.headers",
    ),
    ("method-fetch", _set("action.request.method", "FETCH"), "action.request.method"),
]


def hostile(mutation: Mutation) -> dict[str, Any]:
    job = valid_job()
    mutation(job)
    return job


def arm_collection(api: TestClient) -> str:
    path = collection_path(f"vals-{uuid.uuid4().hex[:10]}")
    response = api.put(path, params=API_VERSION, json={"location": "local"})
    assert response.status_code == 201, response.text
    return path


def classic_collection(api: TestClient) -> str:
    service = f"/sub1/cloudservices/cs{uuid.uuid4().hex[:6]}/resources/scheduler"
    response = api.put(f"{service}/jobcollections/coll", json={"location": "local"})
    assert response.status_code == 201, response.text
    return f"{service}/~/jobcollections/coll"


def assert_refused(response: Any, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == "BadRequest", body
    assert field in body["error"]["message"], body


IDS = [case[0] for case in HOSTILE]


@pytest.mark.parametrize(("mutation", "field"), [c[1:] for c in HOSTILE], ids=IDS)
def test_arm_put_refuses_the_value_naming_the_field_and_stores_nothing(
    api: TestClient, mutation: Mutation, field: str
) -> None:
    # Given a collection
    collection = arm_collection(api)

    # When a job with the hostile value is PUT
    response = api.put(
        f"{collection}/jobs/j", params=API_VERSION, json={"properties": hostile(mutation)}
    )

    # Then it is a 400 naming the field, and the collection still has no job and lists
    assert_refused(response, f"properties.{field}")
    assert api.get(f"{collection}/jobs/j", params=API_VERSION).status_code == 404
    listed = api.get(f"{collection}/jobs", params=API_VERSION)
    assert listed.status_code == 200
    assert listed.json()["value"] == []


@pytest.mark.parametrize(("mutation", "field"), [c[1:] for c in HOSTILE], ids=IDS)
def test_arm_patch_refuses_the_value_and_leaves_the_job_as_it_was(
    api: TestClient, mutation: Mutation, field: str
) -> None:
    # Given a stored job
    collection = arm_collection(api)
    job = f"{collection}/jobs/j"
    created = api.put(job, params=API_VERSION, json={"properties": valid_job()})
    assert created.status_code == 201, created.text
    before = api.get(job, params=API_VERSION).json()

    # When a merge patch brings the hostile value
    response = api.patch(job, params=API_VERSION, json={"properties": hostile(mutation)})

    # Then it is a 400 naming the field and the job is unchanged
    assert_refused(response, f"properties.{field}")
    assert api.get(job, params=API_VERSION).json() == before
    assert api.get(f"{collection}/jobs", params=API_VERSION).status_code == 200


@pytest.mark.parametrize(("mutation", "field"), [c[1:] for c in HOSTILE], ids=IDS)
def test_classic_put_refuses_the_value_naming_the_field_and_stores_nothing(
    api: TestClient, mutation: Mutation, field: str
) -> None:
    # Given a collection of the classic API
    collection = classic_collection(api)

    # When the flat job with the hostile value is PUT
    response = api.put(f"{collection}/jobs/j", json=hostile(mutation))

    # Then it is a 400 naming the field, and nothing is stored
    assert_refused(response, field)
    assert api.get(f"{collection}/jobs/j").status_code == 404
    listed = api.get(f"{collection}/jobs")
    assert listed.status_code == 200
    assert listed.json() == []


@pytest.mark.parametrize(
    ("uri", "headers", "method"),
    [
        pytest.param("https://user@example.com:8443/p?q=1#f", {"X-Id": "a b\tc"}, "get", id="full"),
        pytest.param("http://[::1]:8080/x", {"Content-Type": "text/plain"}, "PATCH", id="ipv6"),
        pytest.param("http://127.0.0.1:9/x", {"!#$%&'*+-.^_`|~": "v"}, "OPTIONS", id="token-chars"),
        pytest.param("HTTP://Example.COM", None, "HEAD", id="upper-scheme-no-path"),
        pytest.param("http://xn--bcher-kva.example/", None, "DELETE", id="punycode"),
    ],
)
def test_well_formed_requests_are_still_accepted(
    api: TestClient, uri: str, headers: dict[str, str] | None, method: str
) -> None:
    # Given an Https or Http job with an unusual but valid request
    job = valid_job()
    job["action"]["request"] = {"uri": uri, "method": method}
    if headers is not None:
        job["action"]["request"]["headers"] = headers

    # When it is PUT, then it is stored
    response = api.put(
        f"{arm_collection(api)}/jobs/j", params=API_VERSION, json={"properties": job}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("startTime", "1970-01-01T00:00:00Z", id="start-at-the-epoch"),
        pytest.param("startTime", "8999-12-31T23:59:59.999Z", id="start-just-before-9000"),
        pytest.param("startTime", "2012-08-04", id="start-a-bare-date"),
        pytest.param("startingDeadline", "P2Y", id="deadline-two-years"),
        pytest.param("action.request.timeout", "PT30S", id="timeout-30-s"),
    ],
)
def test_values_at_the_bounds_are_accepted(api: TestClient, path: str, value: str) -> None:
    job = hostile(_set(path, value))
    response = api.put(
        f"{arm_collection(api)}/jobs/j", params=API_VERSION, json={"properties": job}
    )
    assert response.status_code == 201, response.text


def test_eighteen_month_retry_intervals_are_still_accepted(api: TestClient) -> None:
    job = hostile(_both(_FIXED, _set("action.retryPolicy.retryInterval", "P18M")))
    response = api.put(
        f"{arm_collection(api)}/jobs/j", params=API_VERSION, json={"properties": job}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("count", [0, 1001, 10**30])
def test_occurrences_count_is_bounded(api: TestClient, count: int) -> None:
    collection = arm_collection(api)
    api.put(f"{collection}/jobs/j", params=API_VERSION, json={"properties": valid_job()})
    response = api.get(
        f"{collection}/jobs/j/occurrences", params={**API_VERSION, "count": str(count)}
    )
    assert response.status_code == 400, response.text
    assert "count" in response.json()["error"]["message"]


# -- the end of time: occurrences stop at the last instant the engine represents -------------

#: Rules whose occurrences from 8999 reach year 9999 within 1,000 steps (issue row 13).
TO_THE_END = [
    pytest.param({"frequency": "Year", "interval": 2}, id="every-2-years"),
    pytest.param({"frequency": "Week", "interval": 78}, id="every-78-weeks"),
    pytest.param({"frequency": "Day", "interval": 548}, id="every-548-days"),
    pytest.param({"frequency": "Month", "interval": 13}, id="every-13-months"),
    pytest.param(
        {"frequency": "Month", "interval": 18, "timeZone": "Pacific/Kiritimati"},
        id="every-18-months-in-kiritimati",
    ),
    pytest.param(
        {"frequency": "Year", "interval": 2, "timeZone": "America/New_York"},
        id="every-2-years-in-new-york",
    ),
    pytest.param(
        {
            "frequency": "Year",
            "interval": 2,
            "schedule": {"months": [12], "monthDays": [-1], "hours": [23]},
            "timeZone": "Pacific/Pago_Pago",
        },
        id="last-hour-of-the-year-in-pago-pago",
    ),
]


@pytest.mark.parametrize("recurrence", TO_THE_END)
def test_a_reader_previewing_a_rule_to_year_9999_gets_a_list_that_ends(
    api: TestClient, recurrence: dict[str, Any]
) -> None:
    # Given a job whose rule reaches year 9999 in fewer than 1,000 occurrences
    collection = arm_collection(api)
    job = {**valid_job(), "startTime": "8999-06-01T00:00:00Z", "recurrence": recurrence}
    created = api.put(f"{collection}/jobs/j", params=API_VERSION, json={"properties": job})
    assert created.status_code == 201, created.text

    # When its occurrences are read
    response = api.get(f"{collection}/jobs/j/occurrences", params={**API_VERSION, "count": 1000})

    # Then the list ends before year 10000 in UTC, strictly increasing
    assert response.status_code == 200, response.text
    instants = [datetime.fromisoformat(v) for v in response.json()["value"]]
    assert 0 < len(instants) < 1000
    assert instants == sorted(set(instants))
    assert instants[-1] <= datetime(9999, 12, 31, tzinfo=UTC)


# -- the engine and the planning, on values an older version may have stored -----------------


@pytest.mark.parametrize(
    "recurrence", [None, {"frequency": "Day"}, {"frequency": "Week", "interval": 78}]
)
def test_a_job_stored_past_the_bounds_takes_nothing_down(
    api: TestClient, store: JobStore, recurrence: dict[str, Any] | None
) -> None:
    # Given a collection with a good job, and one an older version stored with issue row 5's
    # start time (written into the store directly: this version refuses it)
    collection = arm_collection(api)
    api.put(f"{collection}/jobs/ok", params=API_VERSION, json={"properties": valid_job()})
    start = datetime.fromisoformat(LAST_WALL)
    properties = JobProperties.model_validate({**valid_job(), "recurrence": recurrence})
    stored = properties.model_copy(update={"start_time": start})
    _, _, sub, _, rg, _, _, _, coll = collection.split("/")
    store.put_job(f"{sub}/{rg}/{coll}/old", stored, owner="admin", next_fire_ms=None)

    # When the planning plans it and a reader asks for its occurrences and the list
    planned = first_fire(stored, datetime(2026, 1, 1, tzinfo=UTC))
    occurrences = api.get(f"{collection}/jobs/old/occurrences", params=API_VERSION)
    listed = api.get(f"{collection}/jobs", params=API_VERSION)

    # Then it never fires (past the end of time), and no answer is a server error
    assert planned is None
    assert occurrences.status_code < 500, occurrences.text
    assert set(occurrences.json()) in ({"error"}, {"value"})
    assert listed.status_code == 200, listed.text
    assert "/jobs/ok" in listed.text


STORED_RULES = [
    None,
    {"frequency": "Second"},
    {"frequency": "Minute", "interval": 7},
    {"frequency": "Hour", "timeZone": "Europe/Berlin"},
    {"frequency": "Day", "interval": 7},
    {"frequency": "Week", "schedule": {"weekDays": ["Friday"]}, "timeZone": "America/New_York"},
    {"frequency": "Month", "interval": 5},
    {
        "frequency": "Month",
        "schedule": {"monthlyOccurrences": [{"day": "Friday", "occurrence": -1}]},
    },
    {"frequency": "Year", "count": 3},
    {"cron": "* * * * *", "timeZone": "Pacific/Kiritimati"},
    {"cron": "*/5 * * * *", "timeZone": "Europe/Berlin"},
    {"frequency": "Minute", "count": 10**30},
]
LATE_STARTS = [
    datetime.fromisoformat(LAST_WALL),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime.fromisoformat("9999-12-31T23:59:59+14:00"),
    datetime(9999, 12, 29, tzinfo=UTC),
    datetime(9999, 1, 1, tzinfo=UTC),
    datetime(8999, 6, 1, tzinfo=UTC),
]


def _stored(recurrence: Any, start: datetime, **extra: Any) -> JobProperties:
    """A job as an older version may have stored it: built without validation."""
    properties = JobProperties.model_validate({**valid_job(), **extra})
    # the planning reads a recurrence as a model or as its wire dict
    return properties.model_copy(update={"start_time": start, "recurrence": recurrence})


@given(
    rule=st.sampled_from(STORED_RULES),
    start=st.sampled_from(LATE_STARTS),
    now=st.datetimes(
        min_value=datetime(8990, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_engine_ends_cleanly_at_the_end_of_time(
    rule: Any, start: datetime, now: datetime
) -> None:
    # Given any stored rule anchored near the end of what datetime represents
    compiled = compile_recurrence(rule, start)

    # When the next occurrences are asked for, after any instant up to the last one
    found = compiled.next_after(now)
    seen = []
    while found is not None and len(seen) < 50:
        seen.append(found)
        found = compiled.next_after(found)

    # Then they increase and stay representable (converting each to UTC cannot fail)
    assert seen == sorted(set(seen))
    for moment in seen:
        assert moment.astimezone(UTC) > now


@pytest.mark.parametrize("start", LATE_STARTS, ids=lambda s: s.isoformat())
@pytest.mark.parametrize("rule", STORED_RULES, ids=repr)
def test_the_beats_planning_ends_cleanly_at_the_end_of_time(rule: Any, start: datetime) -> None:
    # Given a job an older version stored with a start near the end of time
    now = datetime(2026, 1, 1, tzinfo=UTC)
    properties = _stored(rule, start)

    # When it is planned for the first time, previewed and dispatched late and on time
    first = first_fire(properties, now)
    preview = list(zip(range(200), upcoming(properties, first, now), strict=False))
    for policy in MissedRunPolicy:
        late = properties.model_copy(update={"missed_run_policy": policy})
        nexts = None if rule is None else compile_recurrence(rule, start).next_after
        for occurrence in [p[1] for p in preview[-2:]]:
            for at in (occurrence, datetime.max.replace(tzinfo=UTC)):
                dispatch = plan_dispatch(late, occurrence, at, nexts)
                # Then each planned instant is representable in UTC
                if dispatch.next_fire is not None:
                    dispatch.next_fire.astimezone(UTC)
    for _, moment in preview:
        moment.astimezone(UTC)


@pytest.mark.parametrize(
    "after",
    [
        datetime.fromisoformat(LAST_WALL),
        datetime.max.replace(tzinfo=UTC),
        datetime.min.replace(tzinfo=UTC),
        datetime.fromisoformat("0001-01-01T00:00:00+14:00"),
    ],
    ids=["past-9999-in-utc", "datetime-max", "datetime-min", "before-year-1-in-utc"],
)
@pytest.mark.parametrize("rule", STORED_RULES, ids=repr)
def test_next_after_any_aware_instant_answers(rule: Any, after: datetime) -> None:
    compiled = compile_recurrence(rule, datetime(2026, 1, 1, tzinfo=UTC))
    found = compiled.next_after(after)
    assert found is None or found.astimezone(UTC) > after


def test_a_stored_count_past_the_engine_end_gives_a_representable_grid() -> None:
    rule = compile_recurrence(
        {"frequency": "Minute", "count": 10**30}, datetime(2026, 1, 1, tzinfo=UTC)
    )
    grid = rule.grid_us()
    assert grid is not None
    _, _, last = grid
    assert last is not None
    assert last == (END_OF_TIME - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@pytest.mark.parametrize("mutation", [c[1] for c in HOSTILE], ids=IDS)
def test_the_model_alone_refuses_the_hostile_table(mutation: Mutation) -> None:
    # every write path (API, console, client, ImportJobs) validates through JobProperties
    with pytest.raises(ValidationError):
        JobProperties.model_validate(hostile(mutation))


@pytest.mark.parametrize(
    "mutation",
    [
        _both(_CELERY, _set("action.celeryTask.args", _nested(500))),
        _both(_CELERY, _set("action.celeryTask.kwargs", {"k": _nested_dict(500)})),
    ],
    ids=["args", "kwargs"],
)
def test_celery_arguments_500_deep_are_a_400_wherever_they_come_from(
    api: TestClient, mutation: Mutation
) -> None:
    # Given a Celery job whose arguments nest 500 deep (issue row 13: a RecursionError)
    job = hostile(mutation)

    # When the model checks it, and when it is PUT (the body's own depth limit may answer)
    with pytest.raises(ValidationError, match=r"celeryTask\.(args|kwargs)"):
        JobProperties.model_validate(job)
    collection = arm_collection(api)
    response = api.put(f"{collection}/jobs/j", params=API_VERSION, json={"properties": job})

    # Then it is a 400 with an ARM error body, and nothing is stored
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}
    assert api.get(f"{collection}/jobs/j", params=API_VERSION).status_code == 404


# -- the console's schedule preview (any signed-in principal, readers too) --------------------


def _console_csrf(api: TestClient) -> str:
    signed_in = api.post("/console/signin", data={"key": ADMIN_TOKEN}, follow_redirects=False)
    assert signed_in.status_code == 303, signed_in.text
    match = re.search(r'data-csrf="([^"]+)"', api.get("/").text)
    assert match
    return match.group(1)


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        pytest.param({"startTime": LAST_WALL}, "startTime", id="start-9999-minus-14h"),
        pytest.param(
            {"startTime": FUTURE, "recurrence": {"frequency": "Day", "endTime": LAST_WALL}},
            "recurrence.endTime",
            id="end-9999-minus-14h",
        ),
    ],
)
def test_the_console_preview_refuses_dates_out_of_range(
    api: TestClient, schedule: dict[str, Any], field: str
) -> None:
    csrf = _console_csrf(api)
    answer = api.post("/console/preview", json=schedule, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"].startswith(field)


def test_the_console_preview_of_a_rule_reaching_year_9999_ends(api: TestClient) -> None:
    # Given a rule whose 51st occurrence would be 10000-01-01T10:00Z
    csrf = _console_csrf(api)
    schedule = {
        "startTime": "8999-06-01T00:00:00Z",
        "recurrence": {
            "frequency": "Year",
            "interval": 20,
            "schedule": {"months": [12], "monthDays": [-1], "hours": [23]},
            "timeZone": "Pacific/Pago_Pago",
        },
    }
    answer = api.post(
        "/console/preview", params={"count": 100}, json=schedule, headers={"X-CSRF-Token": csrf}
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["value"]) == 50


@pytest.mark.parametrize(
    ("quota", "field"),
    [
        pytest.param({"maxJobCount": 10**30}, "maxJobCount", id="max-job-count"),
        pytest.param({"maxJobOccurrence": 10**30}, "maxJobOccurrence", id="max-job-occurrence"),
        pytest.param(
            {"maxRecurrence": {"frequency": "Minute", "interval": 10**30}},
            "maxRecurrence.interval",
            id="max-recurrence-interval",
        ),
    ],
)
def test_collection_quota_counts_are_bounded(
    api: TestClient, quota: dict[str, Any], field: str
) -> None:
    # Given no collection yet
    path = collection_path(f"vals-{uuid.uuid4().hex[:10]}")

    # When one is PUT with a quota count past the bound
    response = api.put(
        path, params=API_VERSION, json={"location": "local", "properties": {"quota": quota}}
    )

    # Then it is a 400 naming the field, and nothing is stored
    assert_refused(response, f"properties.quota.{field}")
    assert api.get(path, params=API_VERSION).status_code == 404


def _refusal(check: Callable[..., object], *args: str) -> str | None:
    """The message of the ValueError ``check`` raises (None: accepted); any other
    exception escapes and fails the test."""
    try:
        check(*args)
    except ValueError as exc:
        return str(exc)
    return None


@given(uri=st.text(max_size=60) | st.builds(lambda rest: "http://" + rest, st.text(max_size=40)))
@settings(max_examples=300, deadline=None)
def test_any_uri_is_accepted_or_refused_with_a_message_never_an_exception(uri: str) -> None:
    refusal = _refusal(check_http_uri, uri)
    if refusal is None:
        assert uri.lower().startswith(("http://", "https://"))
        assert not any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in uri)
    else:
        assert refusal


_NOT_IN_A_TOKEN = set(' \t:\r\n\x00"(),/;<=>?@[\\]{}')


@given(name=st.text(max_size=20), value=st.text(max_size=20))
@settings(max_examples=200, deadline=None)
def test_any_header_is_accepted_or_refused_with_a_message(name: str, value: str) -> None:
    refusal = _refusal(check_header, name, value)
    if refusal is None:
        assert name
        assert not _NOT_IN_A_TOKEN & set(name)
        assert not set("\r\n\x00") & set(value)
        assert value.isascii()
    else:
        assert refusal
