"""The API's rules and error bodies, against the real API process of the test stack."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.arm import (
    API_VERSION,
    collection_path,
    error_code,
    get_job,
    http_job,
    new_collection,
    put_job,
)
from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import Stack
from tests.support.swagger import checked

pytestmark = pytest.mark.e2e


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, str] = body["error"]
    return error


def test_health_needs_no_key_and_says_redis_is_reachable(stack: Stack) -> None:
    response = httpx.get(f"{stack.api_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": True}


def operations(stack: Stack) -> list[tuple[str, str]]:
    """Every (method, concrete path) the API serves, from its own OpenAPI document."""
    spec = stack.http.get("/openapi.json").json()
    found = []
    for template, methods in spec["paths"].items():
        path = re.sub(r"\{(\w+)\}", "x1", template)
        found.extend((method.upper(), path) for method in methods)
    return found


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}],
    ids=["no-key", "wrong-key", "not-bearer"],
)
def test_every_route_answers_401_without_a_valid_key(stack: Stack, headers: dict[str, str]) -> None:
    routes = [op for op in operations(stack) if op[1] != "/healthz"]
    assert len(routes) >= 25
    for method, path in routes:
        response = checked(
            httpx.request(
                method, f"{stack.api_url}{path}", params=API_VERSION, headers=headers, json={}
            )
        )
        assert response.status_code == 401, (method, path, response.text)
        assert error_code(response) == "AuthenticationFailed"  # ARM's, or MSDN's XML
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_create_is_201_and_replace_is_200(stack: Stack, target: HttpTarget) -> None:
    collection = new_collection(stack.http)
    body = http_job(f"{target.url}/x", start=None)
    body["properties"]["startTime"] = "2099-01-01T00:00:00Z"
    first = stack.http.put(f"{collection}/jobs/j", params=API_VERSION, json=body)
    second = stack.http.put(f"{collection}/jobs/j", params=API_VERSION, json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["name"].endswith("/j")
    assert first.json()["type"] == "Microsoft.Scheduler/jobCollections/jobs"
    assert second.json()["properties"]["status"]["nextExecutionTime"] == "2099-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p.update(status={"executionCount": 1}), "properties.status is read-only"),
        (lambda p: p.update(state="Completed"), "only be set to Enabled or Disabled"),
        (lambda p: p["action"]["request"].update(uri="not a uri"), "properties.action.request"),
        (lambda p: p.update(colour="red"), "properties.colour: is not a known field"),
        (lambda p: p["action"].update(type="Carrier pigeon"), "properties.action.type"),
    ],
    ids=["status-sent", "final-state-sent", "bad-uri", "unknown-field", "unknown-type"],
)
def test_bad_jobs_get_a_400_naming_the_field(stack: Stack, mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    collection = new_collection(stack.http)
    body = http_job("http://127.0.0.1:9/x", start=None)
    mutate(body["properties"])
    response = stack.http.put(f"{collection}/jobs/bad", params=API_VERSION, json=body)
    assert response.status_code == 400
    assert expected in error_of(response)["message"]


def test_malformed_json_is_a_400_not_a_500(stack: Stack) -> None:
    collection = new_collection(stack.http)
    response = stack.http.put(
        f"{collection}/jobs/bad",
        params=API_VERSION,
        content=b'{"properties": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "BadRequest"


def test_api_version_is_required_and_checked(stack: Stack) -> None:
    collection = new_collection(stack.http)
    missing = stack.http.get(collection)
    wrong = stack.http.get(collection, params={"api-version": "2014-08-01"})
    assert missing.status_code == wrong.status_code == 400
    assert "api-version" in error_of(missing)["message"]
    assert "2016-03-01" in error_of(wrong)["message"]


def test_missing_collection_and_job_are_404s_with_arm_codes(stack: Stack) -> None:
    nowhere = collection_path("does-not-exist")
    response = stack.http.put(
        f"{nowhere}/jobs/j", params=API_VERSION, json=http_job("http://127.0.0.1:9/")
    )
    assert response.status_code == 404
    assert error_of(response)["code"] == "JobCollectionNotFound"
    collection = new_collection(stack.http)
    response = stack.http.get(f"{collection}/jobs/nope", params=API_VERSION)
    assert response.status_code == 404
    assert error_of(response)["code"] == "JobNotFound"


def test_bad_names_are_400s(stack: Stack) -> None:
    response = stack.http.get(collection_path("bad name!"), params=API_VERSION)
    assert response.status_code == 400
    assert "jobCollectionName" in error_of(response)["message"]


def test_a_finished_job_can_be_deleted_but_not_updated(stack: Stack, target: HttpTarget) -> None:
    # Given a one-shot job that completed
    collection = new_collection(stack.http)
    body = http_job(f"{target.url}/done")
    put_job(stack.http, collection, "done", body)
    wait_until(
        lambda: get_job(stack.http, collection, "done")["properties"]["state"] == "Completed",
        timeout=5,
    )

    # Then an update is a 409 and a delete works
    update = stack.http.put(f"{collection}/jobs/done", params=API_VERSION, json=body)
    assert update.status_code == 409
    assert "Completed" in error_of(update)["message"]
    assert stack.http.delete(f"{collection}/jobs/done", params=API_VERSION).status_code == 200
    assert stack.http.get(f"{collection}/jobs/done", params=API_VERSION).status_code == 404


def test_secrets_are_accepted_and_never_returned(stack: Stack) -> None:
    collection = new_collection(stack.http)
    body = http_job("http://127.0.0.1:9/x")
    body["properties"]["startTime"] = "2099-01-01T00:00:00Z"
    body["properties"]["action"]["request"]["authentication"] = {
        "type": "Basic",
        "username": "u",
        "password": "hunter2",
    }
    created = put_job(stack.http, collection, "secret", body)
    fetched = get_job(stack.http, collection, "secret")
    for job in (created, fetched):
        assert job["properties"]["action"]["request"]["authentication"]["password"] == ""
    assert "hunter2" not in str(created) + str(fetched)
