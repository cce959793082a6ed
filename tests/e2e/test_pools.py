"""Worker pools: per-job and per-collection queues; per-job request timeouts."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis

from tests.support.arm import API_VERSION, collection_path, history, http_job, put_job
from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def messages(redis_url: str, queue: str) -> list[dict[str, object]]:
    broker = redis.Redis.from_url(redis_url, decode_responses=True)
    raw = broker.lrange(queue, 0, -1)
    broker.delete(queue)
    broker.close()
    return [json.loads(item) for item in raw]


def job_of(message: dict[str, object]) -> str:
    """The job id in a protocol-2 task message's arguments."""
    args, _kwargs, _embed = json.loads(base64.b64decode(str(message["body"])))
    return str(args[0])


def test_a_job_or_its_collection_can_name_its_own_worker_pool(stack: Stack, redis_url: str) -> None:
    # Given a collection whose jobs go to pool A, and one job in it that names pool B
    pool_a, pool_b = f"pool-a-{uuid.uuid4().hex[:6]}", f"pool-b-{uuid.uuid4().hex[:6]}"
    path = collection_path(f"pools-{uuid.uuid4().hex[:6]}")
    stack.http.put(
        path, params=API_VERSION, json={"location": "l", "properties": {"queue": pool_a}}
    )
    put_job(stack.http, path, "default", http_job("http://127.0.0.1:9/"))
    put_job(stack.http, path, "own", http_job("http://127.0.0.1:9/", queue=pool_b))

    # Then no Takt worker of the default pools takes them: they wait on their pools' queues
    in_a = wait_until(lambda: messages(redis_url, pool_a), timeout=5, message="pool A")
    in_b = wait_until(lambda: messages(redis_url, pool_b), timeout=5, message="pool B")
    assert [job_of(m) for m in in_a] == [f"sub1/rg1/{path.rsplit('/', 1)[1]}/default"]
    assert [job_of(m) for m in in_b] == [f"sub1/rg1/{path.rsplit('/', 1)[1]}/own"]
    assert in_a[0]["headers"]["task"] == "takt.action.http"  # type: ignore[index]


def test_a_request_timeout_of_its_own_and_its_bounds(stack: Stack, target: HttpTarget) -> None:
    # Given an endpoint that does not answer and a job that waits 1 s for it
    target.hold("/stuck")
    collection = collection_path(f"timeouts-{uuid.uuid4().hex[:6]}")
    stack.http.put(collection, params=API_VERSION, json={"location": "l"})
    body = http_job(f"{target.url}/stuck")
    body["properties"]["action"]["request"]["timeout"] = "PT1S"
    put_job(stack.http, collection, "impatient", body)

    # Then the attempt fails as timed out after about a second
    [entry] = wait_until(lambda: history(stack.http, collection, "impatient"), timeout=6)
    assert entry["properties"]["status"] == "Failed"
    assert "timed out" in entry["properties"]["message"]

    # and a timeout beyond TAKT_HTTP_TIMEOUT_MAX_S is refused
    body["properties"]["action"]["request"]["timeout"] = "PT2H"
    refused = stack.http.put(f"{collection}/jobs/patient", params=API_VERSION, json=body)
    assert refused.status_code == 400
    assert "properties.action.request.timeout" in refused.json()["error"]["message"]
