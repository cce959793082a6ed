"""A job travels from the API through Redis, the beat and a worker to a real HTTP server."""

from __future__ import annotations

import base64
import itertools

import pytest

from tests.support.arm import get_job, history, http_job, in_seconds, new_collection, put_job
from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["redis", "rabbitmq"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """This module's tests run once with each broker."""
    name = "redis_stack" if request.param == "redis" else "amqp_stack"
    found: Stack = request.getfixturevalue(name)
    return found


def test_a_one_shot_job_calls_the_target_exactly_and_completes(
    stack: Stack, target: HttpTarget
) -> None:
    # Given a one-shot job one second ahead with a method, headers and a body
    collection = new_collection(stack.http)
    start = in_seconds(1)
    body = http_job(f"{target.url}/hook", start=start, method="POST")
    request = body["properties"]["action"]["request"]
    request["headers"] = {"Content-Type": "application/json", "X-Takt-Test": "exact"}
    request["body"] = '{"hello": "world"}'
    put_job(stack.http, collection, "once", body)

    # When its time comes
    [received] = wait_until(
        lambda: target.requests_to("/hook"), timeout=5, message="the target to receive the call"
    )

    # Then the target got exactly that request within 3 s of startTime, not before it
    assert received.method == "POST"
    assert received.body == b'{"hello": "world"}'
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["X-Takt-Test"] == "exact"
    assert received.headers["x-ms-scheduler-jobid"] == "once"
    assert start.timestamp() - 0.05 <= received.at <= start.timestamp() + 3
    # and the history and the job say Completed
    entries = wait_until(lambda: history(stack.http, collection, "once"), timeout=5)
    assert entries[0]["properties"]["status"] == "Completed"
    assert entries[0]["properties"]["actionName"] == "MainAction"
    assert "'200'" in entries[0]["properties"]["message"]
    job = get_job(stack.http, collection, "once")
    assert job["properties"]["state"] == "Completed"
    assert job["properties"]["status"]["executionCount"] == 1


def test_a_one_shot_job_whose_target_fails_ends_faulted(stack: Stack, target: HttpTarget) -> None:
    # Given a target answering 500 and a one-shot job calling it now
    target.answer("/broken", 500, b"kaputt")
    collection = new_collection(stack.http)
    put_job(stack.http, collection, "doomed", http_job(f"{target.url}/broken"))

    # When it has run
    entries = wait_until(lambda: history(stack.http, collection, "doomed"), timeout=5)

    # Then the attempt is Failed with the status code and body, and the job is Faulted
    assert entries[0]["properties"]["status"] == "Failed"
    assert "'500'" in entries[0]["properties"]["message"]
    assert "kaputt" in entries[0]["properties"]["message"]
    job = wait_until(
        lambda: (
            (j := get_job(stack.http, collection, "doomed"))["properties"]["state"] == "Faulted"
            and j
        ),
        timeout=5,
    )
    assert job["properties"]["status"]["faultedCount"] == 1
    assert job["properties"]["status"]["failureCount"] == 1


def test_a_recurring_job_fires_count_times_then_completes(stack: Stack, target: HttpTarget) -> None:
    collection = new_collection(stack.http)
    put_job(
        stack.http,
        collection,
        "thrice",
        http_job(
            f"{target.url}/tick",
            start=in_seconds(0.5),
            recurrence={"frequency": "Second", "interval": 1, "count": 3},
        ),
    )

    calls = wait_until(
        lambda: len(target.requests_to("/tick")) >= 3 and target.requests_to("/tick"), timeout=8
    )

    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(0.7 < gap < 1.3 for gap in gaps), gaps
    job = wait_until(
        lambda: (
            (j := get_job(stack.http, collection, "thrice"))["properties"]["state"] == "Completed"
            and j
        ),
        timeout=5,
    )
    assert job["properties"]["status"]["executionCount"] == 3
    assert len(target.requests_to("/tick")) == 3


def test_a_job_moved_sooner_wakes_the_sleeping_beat(stack: Stack, target: HttpTarget) -> None:
    # Given a job an hour away (the beat may sleep up to 30 s between looks)
    collection = new_collection(stack.http)
    put_job(
        stack.http, collection, "moved", http_job(f"{target.url}/moved", start=in_seconds(3600))
    )

    # When it is changed to fire in half a second
    start = in_seconds(0.5)
    put_job(stack.http, collection, "moved", http_job(f"{target.url}/moved", start=start))

    # Then it fires on time, not at the beat's next routine look
    [received] = wait_until(lambda: target.requests_to("/moved"), timeout=5)
    assert received.at - start.timestamp() < 1.0


def test_disabled_and_deleted_jobs_do_not_fire(stack: Stack, target: HttpTarget) -> None:
    # Given a disabled job, a job deleted before its time, and a witness, all due together
    collection = new_collection(stack.http)
    start = in_seconds(1)
    put_job(
        stack.http, collection, "off", http_job(f"{target.url}/off", start=start, state="Disabled")
    )
    put_job(stack.http, collection, "gone", http_job(f"{target.url}/gone", start=start))
    put_job(stack.http, collection, "witness", http_job(f"{target.url}/witness", start=start))
    stack.http.delete(f"{collection}/jobs/gone", params={"api-version": "2016-03-01"})

    # When the witness has run
    wait_until(lambda: history(stack.http, collection, "witness"), timeout=6)

    # Then neither of the others did
    assert target.requests_to("/off") == []
    assert target.requests_to("/gone") == []
    off = get_job(stack.http, collection, "off")
    assert off["properties"]["state"] == "Disabled"
    assert "nextExecutionTime" not in off["properties"]["status"]


def test_basic_authentication_reaches_the_target(stack: Stack, target: HttpTarget) -> None:
    # Given a job whose request authenticates with Basic
    collection = new_collection(stack.http)
    body = http_job(f"{target.url}/basic")
    body["properties"]["action"]["request"]["authentication"] = {
        "type": "Basic",
        "username": "scheduler",
        "password": "s3cret:with colon",
    }
    put_job(stack.http, collection, "basic", body)

    # When it runs, then the target gets the credentials the job stored (and never returned)
    [received] = wait_until(lambda: target.requests_to("/basic"), timeout=5)
    expected = base64.b64encode(b"scheduler:s3cret:with colon").decode()
    assert received.headers["Authorization"] == f"Basic {expected}"
