"""The swagger check of tests/support/swagger.py fails what Microsoft's spec refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.swagger import SpecViolation, check_answer

JOB_PATH = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Scheduler/jobCollections/c/jobs/j"
)


def _job(**action: Any) -> bytes:
    properties = {
        "startTime": "2030-01-01T00:00:00Z",
        "state": "Enabled",
        "action": {"type": "Http", "request": {"uri": "https://x/", "method": "GET"}, **action},
        "status": {"executionCount": 0, "failureCount": 0, "faultedCount": 0},
    }
    return json.dumps(
        {"id": JOB_PATH, "type": "t", "name": "c/j", "properties": properties}
    ).encode()


def test_a_job_as_the_spec_describes_it_passes() -> None:
    # Given a job answer with an empty secret; When checked; Then it passes
    auth = {"type": "Basic", "username": "u", "password": ""}
    answer = _job(request={"uri": "https://x/", "method": "GET", "authentication": auth})
    assert check_answer("GET", JOB_PATH, 200, answer)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param(
            _job(
                request={
                    "uri": "https://x/",
                    "method": "GET",
                    "authentication": {"type": "Basic", "username": "u", "password": None},
                }
            ),
            "None is not of type 'string'",
            id="a-null-secret",
        ),
        pytest.param(_job(type="Ftp"), "'Ftp' is not one of", id="an-unknown-action-type"),
        pytest.param(
            _job().replace(b"2030-01-01T00:00:00Z", b"2030-01-01T00:00:00"),
            "is not a 'date-time'",
            id="a-naive-date-time",
        ),
    ],
)
def test_an_answer_the_spec_refuses_fails(body: bytes, words: str) -> None:
    # Given an answer the swagger does not allow; When checked; Then it fails saying why
    with pytest.raises(SpecViolation, match=words):
        check_answer("GET", JOB_PATH, 200, body)


def test_statuses_the_spec_does_not_declare_fail_and_errors_must_be_arm_errors() -> None:
    # Given a 204 (undeclared), a 404 with a non-ARM body, a body on a bodiless 200
    # When checked; Then each fails
    with pytest.raises(SpecViolation, match="declares"):
        check_answer("DELETE", JOB_PATH, 204, b"")
    with pytest.raises(SpecViolation, match="'error' is a required property"):
        check_answer("GET", JOB_PATH, 404, b'{"detail": "not found"}')
    with pytest.raises(SpecViolation, match="declares no body"):
        check_answer("DELETE", JOB_PATH, 200, b"{}")
    # And a path the swagger does not know is not checked
    assert not check_answer("GET", "/principals", 200, b"null")
