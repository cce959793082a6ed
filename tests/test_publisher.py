"""The beat's pipelined messages are exactly what Celery's own publisher writes."""

from __future__ import annotations

import base64
import json

import redis

from beat.publisher import Outgoing, PipelinePublisher
from scheduler.models import ActionType
from scheduler.settings import TaktSettings, load_settings
from workers.app import create_app
from workers.routing import publish_occurrence

#: Members that differ per message or per process by design.
_VARYING = {("properties", "delivery_tag"), ("properties", "reply_to"), ("headers", "origin")}


def comparable(raw: str) -> dict[str, object]:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    for section, key in _VARYING:
        message[section].pop(key)
    return message


def test_pipelined_messages_match_celerys_own(settings: TaktSettings, redis_url: str) -> None:
    broker_url = f"{redis_url}/6"
    prefix = settings.key_prefix
    app = create_app(
        load_settings({}, redis_url=redis_url, broker_url=broker_url, key_prefix=prefix)
    )
    broker = redis.Redis.from_url(broker_url, decode_responses=True)
    pipelined = PipelinePublisher(broker_url, prefix)
    cases = [
        Outgoing("s/rg/c/j", 1000, ActionType.HTTP),
        Outgoing(
            "s/rg/c/k", 2000, ActionType.STORAGE_QUEUE, queue="team-pool", attempt=2, error=True
        ),
    ]
    for case in cases:
        publish_occurrence(
            app,
            prefix,
            case.jid,
            case.occurrence_ms,
            case.action_type,
            queue=case.queue,
            attempt=case.attempt,
            error=case.error,
        )
        pipelined.publish([case])
        queue = (
            case.queue or f"{prefix}.{'http' if case.action_type is ActionType.HTTP else 'storage'}"
        )
        celerys, ours = broker.rpop(queue), broker.rpop(queue)
        assert ours is not None
        assert celerys is not None
        assert comparable(ours) == comparable(celerys)
    pipelined.close()
    broker.close()
    app.close()
