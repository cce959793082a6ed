"""Publishing: one standard Celery message per occurrence, in exactly one queue."""

from __future__ import annotations

import base64
import json

import redis

from scheduler.dispatch import publish_occurrence, queue_names, task_id_for
from scheduler.domain.models import ActionType
from scheduler.settings import TaktSettings, load_settings
from workers.app import create_celery_app


def test_an_occurrence_is_published_once_to_its_kinds_queue_only(
    settings: TaktSettings, redis_url: str
) -> None:
    # Given Takt's Celery app on a broker database of this test's own
    broker_url = f"{redis_url}/5"
    app = create_celery_app(
        load_settings(
            {}, redis_url=redis_url, broker_url=broker_url, key_prefix=settings.key_prefix
        )
    )
    broker = redis.Redis.from_url(broker_url, decode_responses=True)

    # When one HTTP occurrence and one manual Command run are published
    publish_occurrence(app, settings.key_prefix, "s/rg/c/j", 1000, ActionType.HTTP)
    publish_occurrence(app, settings.key_prefix, "s/rg/c/k", 2000, ActionType.COMMAND, manual=True)

    # Then each sits in its own kind's queue, once, as a protocol-2 message with ids only
    lengths = {queue: broker.llen(queue) for queue in queue_names(settings.key_prefix)}
    http, command = f"{settings.key_prefix}.http", f"{settings.key_prefix}.command"
    assert lengths == {**dict.fromkeys(lengths, 0), http: 1, command: 1}
    message = json.loads(broker.lpop(http) or "{}")
    assert message["headers"]["task"] == "takt.action.http"
    assert message["headers"]["id"] == task_id_for("s/rg/c/j", 1000)
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == (["s/rg/c/j", 1000], {})
    manual = json.loads(broker.lpop(command) or "{}")
    assert json.loads(base64.b64decode(manual["body"]))[1] == {"manual": True}
    broker.close()
    app.close()
