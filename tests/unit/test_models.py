"""The wire models: Azure's casing, the seed job, and clear errors for bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from scheduler.domain.models import (
    ActionType,
    JobProperties,
    JobState,
    RecurrenceFrequency,
    WeekDay,
    without_secrets,
)
from tests.support import jsonc
from tests.support.helpers import ROOT

SEED_JOB = ROOT / "tests" / "data" / "seed_job.jsonc"


def http_job(**request: Any) -> dict[str, Any]:
    return {
        "action": {
            "type": "http",
            "request": {"uri": "http://example.test/x", "method": "GET", **request},
        }
    }


def error_text(payload: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        JobProperties.model_validate(payload)
    return str(caught.value)


def test_the_seed_job_validates_and_is_written_in_azure_casing() -> None:
    # Given the example job of the seed document, comments and trailing commas removed
    payload = jsonc.loads(SEED_JOB.read_text())

    # When it is validated
    job = JobProperties.model_validate(payload)

    # Then every part is understood and written back in Azure's casing
    assert job.start_time == datetime(2012, 8, 4, tzinfo=UTC)
    assert job.action.type is ActionType.HTTP
    assert job.action.request is not None
    assert job.action.request.headers == {"Content-Type": "application/json"}
    assert job.action.error_action is not None
    assert job.action.error_action.request is not None
    assert job.action.error_action.request.uri == "http://contoso.com/notifyError"
    assert job.recurrence is not None
    assert job.recurrence.frequency is RecurrenceFrequency.WEEK
    assert job.recurrence.schedule is not None
    assert job.recurrence.schedule.week_days == [WeekDay.MONDAY, WeekDay.WEDNESDAY, WeekDay.FRIDAY]
    assert job.recurrence.end_time == datetime(2012, 11, 4, tzinfo=UTC)
    assert job.state is JobState.DISABLED
    assert job.status is not None
    assert job.status.execution_count == 3
    wire = job.to_wire()
    assert wire["action"]["type"] == "Http"
    assert wire["action"]["retryPolicy"] == {"retryType": "None"}
    assert wire["recurrence"]["schedule"]["weekDays"] == ["Monday", "Wednesday", "Friday"]
    assert wire["state"] == "Disabled"
    assert wire["status"]["nextExecutionTime"] == "2007-03-01T14:00:00Z"


@pytest.mark.parametrize("spelling", ["http", "Http", "HTTP", "hTtP"])
def test_enum_values_are_accepted_in_any_casing(spelling: str) -> None:
    payload = http_job()
    payload["action"]["type"] = spelling
    assert JobProperties.model_validate(payload).to_wire()["action"]["type"] == "Http"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param({**http_job(), "colour": "red"}, "colour", id="unknown-top-level-field"),
        pytest.param(http_job(verb="GET"), "action.request.verb", id="unknown-nested-field"),
        pytest.param({"action": {"type": "ftp"}}, "action.type", id="unknown-action-type"),
        pytest.param({"action": {"type": "http"}}, "request is required", id="http-no-request"),
        pytest.param(http_job(uri="ftp://example.test/"), "absolute http", id="non-http-uri"),
        pytest.param(
            {**http_job(), "startTime": "2026-01-01T10:00:00"}, "UTC offset", id="naive-start-time"
        ),
        pytest.param(
            {**http_job(), "startTime": "next tuesday"}, "ISO 8601", id="unparseable-start-time"
        ),
        pytest.param(
            http_job(authentication={"type": "basic", "password": "p"}),
            "username required",
            id="basic-without-username",
        ),
        pytest.param(
            http_job(authentication={"type": "basic", "username": "u", "pfx": "x"}),
            "pfx not allowed",
            id="basic-with-pfx",
        ),
        pytest.param(
            {
                "action": {
                    **http_job()["action"],
                    "retryPolicy": {"retryType": "fixed", "retryCount": 21},
                }
            },
            "action.retryPolicy.retryCount",
            id="retry-count-over-20",
        ),
        pytest.param(
            {"action": {**http_job()["action"], "retryPolicy": {"retryInterval": "soon"}}},
            "ISO 8601 duration",
            id="bad-retry-interval",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_the_field(
    payload: dict[str, Any], expected: str
) -> None:
    assert expected in error_text(payload)


def test_https_action_needs_an_https_uri() -> None:
    payload = http_job()
    payload["action"]["type"] = "https"
    assert "https:// uri" in error_text(payload)


def test_retry_interval_reads_iso_8601_durations_with_months() -> None:
    payload = http_job()
    payload["action"]["retryPolicy"] = {"retryType": "fixed", "retryInterval": "P18M"}
    policy = JobProperties.model_validate(payload).action.retry_policy
    assert policy is not None
    assert policy.retry_interval == timedelta(days=540)


def test_monthly_occurrence_accepts_both_spellings_and_writes_azures() -> None:
    payload = {
        **http_job(),
        "recurrence": {
            "frequency": "month",
            "schedule": {
                "monthlyOccurrences": [
                    {"day": "friday", "occurrence": -1},
                    {"day": "monday", "Occurrence": 1},
                ]
            },
        },
    }
    wire = JobProperties.model_validate(payload).to_wire()
    assert wire["recurrence"]["schedule"]["monthlyOccurrences"] == [
        {"day": "Friday", "Occurrence": -1},
        {"day": "Monday", "Occurrence": 1},
    ]


def test_secrets_are_emptied_in_what_leaves_the_server() -> None:
    payload = http_job(authentication={"type": "Basic", "username": "u", "password": "hunter2"})
    wire = without_secrets(JobProperties.model_validate(payload).to_wire())
    assert wire["action"]["request"]["authentication"] == {
        "type": "Basic",
        "username": "u",
        "password": "",
    }
    queue = {
        "action": {
            "type": "storageQueue",
            "queueMessage": {
                "storageAccount": "acct",
                "queueName": "q",
                "sasToken": "sig=abc",
                "message": "m",
            },
        }
    }
    wire = without_secrets(JobProperties.model_validate(queue).to_wire())
    assert wire["action"]["queueMessage"]["sasToken"] == ""
    assert "hunter2" not in str(wire)
