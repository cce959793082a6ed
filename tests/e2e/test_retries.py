"""Fixed retries through Celery, long retries through the due set, chained error actions."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from scheduler.store.jobs import JobStore
from scheduler.store.keys import KeySchema
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


def with_retries(body: dict[str, Any], count: int, interval: str = "PT1S") -> dict[str, Any]:
    body["properties"]["action"]["retryPolicy"] = {
        "retryType": "Fixed",
        "retryCount": count,
        "retryInterval": interval,
    }
    return body


def statuses(entries: list[Any]) -> list[tuple[str, str, int]]:
    """(actionName, status, retryCount) of each entry, oldest first."""
    return [
        (e["properties"]["actionName"], e["properties"]["status"], e["properties"]["retryCount"])
        for e in reversed(entries)
    ]


def test_failing_twice_then_succeeding_gives_three_entries_and_stays_enabled(
    stack: Stack, target: HttpTarget
) -> None:
    # Given a recurring job whose endpoint fails twice, then answers 200, retryCount 3
    target.script("/flaky", [500, 500, 200])
    collection = new_collection(stack.http)
    body = with_retries(
        http_job(f"{target.url}/flaky", start=in_seconds(0.2), recurrence={"frequency": "Hour"}),
        count=3,
    )
    put_job(stack.http, collection, "flaky", body)

    # When its first occurrence has run with its retries
    entries = wait_until(
        lambda: len(h := history(stack.http, collection, "flaky")) >= 3 and h,
        timeout=10,
        message="three attempts",
    )

    # Then three attempts are recorded, one second apart, and the job is still Enabled
    assert statuses(entries) == [
        ("MainAction", "Failed", 0),
        ("MainAction", "Failed", 1),
        ("MainAction", "Completed", 2),
    ]
    calls = target.requests_to("/flaky")
    assert len(calls) == 3
    assert all(0.8 < b.at - a.at < 2.5 for a, b in itertools.pairwise(calls))
    assert len({c.headers["x-ms-execution-tag"] for c in calls}) == 1
    job = get_job(stack.http, collection, "flaky")["properties"]
    assert job["state"] == "Enabled"
    assert (
        job["status"]["executionCount"],
        job["status"]["failureCount"],
        job["status"]["faultedCount"],
    ) == (1, 1, 0)


def test_failing_always_runs_every_retry_then_the_error_action(
    stack: Stack, target: HttpTarget
) -> None:
    # Given a one-shot job that always fails, 2 retries, and an HTTP error action
    target.answer("/down", 503, b"service unavailable")
    collection = new_collection(stack.http)
    body = with_retries(http_job(f"{target.url}/down"), count=2)
    body["properties"]["action"]["errorAction"] = {
        "type": "Http",
        "request": {"uri": f"{target.url}/alarm", "method": "POST", "body": "job failed"},
    }
    put_job(stack.http, collection, "doomed", body)

    # When all attempts and the error action have run
    [alarm] = wait_until(
        lambda: target.requests_to("/alarm"), timeout=10, message="the error action"
    )
    entries = wait_until(
        lambda: len(h := history(stack.http, collection, "doomed")) >= 4 and h, timeout=5
    )

    # Then retryCount+1 attempts failed, the error action ran and is recorded, and the job
    # is Faulted once
    assert statuses(entries) == [
        ("MainAction", "Failed", 0),
        ("MainAction", "Failed", 1),
        ("MainAction", "Failed", 2),
        ("ErrorAction", "Completed", 0),
    ]
    assert len(target.requests_to("/down")) == 3
    assert alarm.headers["x-ms-scheduler-jobid"] == "doomed"
    assert "'503'" in alarm.headers["x-takt-failure-message"]
    assert alarm.body == b"job failed"
    job = get_job(stack.http, collection, "doomed")["properties"]
    assert job["state"] == "Faulted"
    assert (
        job["status"]["executionCount"],
        job["status"]["failureCount"],
        job["status"]["faultedCount"],
    ) == (1, 1, 1)


def test_a_long_retry_interval_waits_in_the_due_set_not_in_a_worker(
    stack: Stack, target: HttpTarget, redis_url: str
) -> None:
    # Given a job that fails once, with a retry interval of 10 minutes
    target.script("/later", [500, 200])
    collection = new_collection(stack.http)
    put_job(
        stack.http,
        collection,
        "later",
        with_retries(http_job(f"{target.url}/later"), count=1, interval="PT10M"),
    )
    wait_until(lambda: history(stack.http, collection, "later"), timeout=5)
    store = JobStore.from_url(redis_url, stack.prefix)
    keys = KeySchema(stack.prefix)
    jid = f"sub1/rg1/{collection.rsplit('/', 1)[1]}/later"

    # Then the retry is a one-shot member of the due set, about 10 minutes ahead,
    # and no worker holds an unacknowledged message for it
    [(member, score)] = [
        (m, s)
        for m, s in store.redis.zrange(keys.due, 0, -1, withscores=True)
        if str(m).startswith(jid + "|")
    ]
    assert member.endswith("|1")
    assert 590_000 < score - store.time_ms() <= 600_000
    if "TAKT_BROKER_URL" not in stack.env:  # the Redis broker: nothing held unacknowledged
        # (the worker acknowledges after the task returns, a moment after it recorded)
        wait_until(
            lambda: store.redis.hlen("unacked") == 0,
            timeout=10,
            message="the worker to hold no unacknowledged message",
        )

    # When its time comes (moved forward here instead of waiting ten minutes)
    store.redis.zadd(keys.due, {member: store.time_ms()})
    store.redis.publish(keys.wake, 0)

    # Then the beat publishes attempt 1, which succeeds, and the job completes
    entries = wait_until(
        lambda: len(h := history(stack.http, collection, "later")) >= 2 and h,
        timeout=5,
        message="the retry",
    )
    assert statuses(entries) == [("MainAction", "Failed", 0), ("MainAction", "Completed", 1)]
    assert get_job(stack.http, collection, "later")["properties"]["state"] == "Completed"
    store.close()


def test_retry_intervals_below_a_minute_need_the_self_hosted_default(stack: Stack) -> None:
    path = new_collection(stack.http).rsplit("/", 1)[0] + "/standard-coll"
    stack.http.put(
        path,
        params={"api-version": "2016-03-01"},
        json={"location": "l", "properties": {"sku": {"name": "Standard"}}},
    )
    body = with_retries(http_job("http://127.0.0.1:9/", start=in_seconds(3600)), count=1)
    response = stack.http.put(f"{path}/jobs/j", params={"api-version": "2016-03-01"}, json=body)
    assert response.status_code == 400
    assert "properties.action.retryPolicy.retryInterval" in response.json()["error"]["message"]
