"""The Celery action (extension): a named task with args/kwargs sent to a named queue."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis

from tests.support.arm import get_job, history, new_collection, put_job
from tests.support.helpers import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def test_a_celery_action_sends_a_standard_task_message_to_its_queue(
    stack: Stack, redis_url: str
) -> None:
    # Given a job whose action is a Celery task for a team's own queue
    queue = f"team-{uuid.uuid4().hex[:8]}"
    collection = new_collection(stack.http)
    put_job(
        stack.http,
        collection,
        "celery",
        {
            "properties": {
                "action": {
                    "type": "celery",
                    "celeryTask": {
                        "name": "billing.tasks.close_day",
                        "args": [2026, 11],
                        "kwargs": {"dry_run": False},
                        "queue": queue,
                    },
                }
            }
        },
    )

    # When it has run
    entries = wait_until(lambda: history(stack.http, collection, "celery"), timeout=5)

    # Then the broker holds one protocol-2 message for that task with those arguments
    assert entries[0]["properties"]["status"] == "Completed", entries
    broker = redis.Redis.from_url(redis_url, decode_responses=True)
    [raw] = broker.lrange(queue, 0, -1)
    broker.delete(queue)
    broker.close()
    message = json.loads(raw)
    assert message["headers"]["task"] == "billing.tasks.close_day"
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([2026, 11], {"dry_run": False})
    assert get_job(stack.http, collection, "celery")["properties"]["state"] == "Completed"
