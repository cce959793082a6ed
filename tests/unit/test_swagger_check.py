"""The swagger check of tests/support/swagger.py fails what Microsoft's spec refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.swagger import SpecViolation, check_answer, validated

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


def test_an_arm_path_the_swagger_does_not_know_is_judged_not_skipped() -> None:
    # Given ARM paths with no operation in the swagger (a wrong method, an unknown child)
    unknown = f"{JOB_PATH}/unknown"

    # When a success and a non-ARM error come back there; Then each fails loudly
    with pytest.raises(SpecViolation, match="no such operation"):
        check_answer("GET", unknown, 200, b"{}")
    with pytest.raises(SpecViolation, match="'error' is a required property"):
        check_answer("POST", JOB_PATH, 405, b'{"detail": "Method Not Allowed"}')

    # And ARM's error body there is checked and passes
    error = b'{"error": {"code": "NotFound", "message": "no such route"}}'
    assert check_answer("GET", unknown, 404, error)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", f"{JOB_PATH}/occurrences", id="takt-occurrences"),
        pytest.param("GET", JOB_PATH.rsplit("/jobs/", 1)[0] + "/templates", id="takt-templates"),
        pytest.param(
            "PUT", "/s/cloudServices/cs/resources/scheduler/jobCollections/c", id="classic"
        ),
        pytest.param("GET", "/providers/Microsoft.Scheduler/jobCollections", id="takt-all-tenants"),
        pytest.param("GET", "/metrics", id="metrics"),
    ],
)
def test_routes_that_are_not_microsofts_are_left_alone(method: str, path: str) -> None:
    # Given a route Microsoft's swagger does not describe; When checked; Then nothing is judged
    assert not check_answer(method, path, 200, b"<not json/>")


def test_a_validated_client_fails_the_call_that_breaks_the_spec() -> None:
    # Given a client whose server answers a job with a null secret, and a console stream
    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/console/events":
            return httpx.Response(200, stream=_Endless())
        auth = {"type": "Basic", "username": "u", "password": None}
        request_ = {"uri": "https://x/", "method": "GET", "authentication": auth}
        return httpx.Response(200, content=_job(request=request_))

    client = validated(httpx.Client(base_url="http://api", transport=httpx.MockTransport(serve)))

    # When it reads the job; Then the call fails saying why
    with pytest.raises(SpecViolation, match="None is not of type 'string'"):
        client.get(JOB_PATH)

    # And a route of Takt's own is not read to its end (it would never end)
    with client.stream("GET", "/console/events") as response:
        assert response.status_code == 200


class _Endless(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        while True:
            yield b"data: tick\n\n"
