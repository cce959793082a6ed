"""The beat's pipelined messages are exactly what Celery's own publisher writes."""

from __future__ import annotations

import base64
import json

import redis

from scheduler.dispatch.messages import MessageTemplate, protocol2_message
from scheduler.dispatch.publisher import Outgoing, PipelinePublisher, publish_occurrence
from scheduler.domain.models import ActionType
from scheduler.settings import TaktSettings, load_settings
from workers.app import create_celery_app

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
    app = create_celery_app(
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


def test_a_template_writes_the_bytes_protocol2_message_writes() -> None:
    # Given a template and job ids that need JSON and repr escaping
    template = MessageTemplate("takt.action.http", {}, "p.http", origin="gen1@h", reply_to="r")
    for jid in ("s/rg/c/j", 's/rg/c/it\'s "quoted" \\ é ☃'):
        # When one message is rendered from it and one built in full
        rendered = template.render(jid, 1_763_913_600_123, "task-id", "tag-1")
        built = protocol2_message(
            "takt.action.http",
            "task-id",
            [jid, 1_763_913_600_123],
            {},
            "p.http",
            origin="gen1@h",
            reply_to="r",
            delivery_tag="tag-1",
        )

        # Then they are the same bytes
        assert rendered == built


def test_a_batch_reaches_each_queue_in_order_with_unique_ids(redis_url: str) -> None:
    # Given a batch spread over two queues
    broker_url = f"{redis_url}/7"
    publisher = PipelinePublisher(broker_url, "order")
    batch = [
        Outgoing(f"s/rg/c/j{i}", 1000 + i, ActionType.HTTP if i % 3 else ActionType.STORAGE_QUEUE)
        for i in range(30)
    ]

    # When it is published
    publisher.publish(batch)

    # Then workers (popping from the right) get each queue's messages in batch order,
    # with distinct task ids and delivery tags
    broker = redis.Redis.from_url(broker_url, decode_responses=True)
    for queue, kind in (
        ("order.http", ActionType.HTTP),
        ("order.storage", ActionType.STORAGE_QUEUE),
    ):
        raws = broker.lrange(queue, 0, -1)[::-1]
        messages = [json.loads(raw) for raw in raws]
        bodies = [json.loads(base64.b64decode(m["body"])) for m in messages]
        assert [body[0] for body in bodies] == [
            [item.jid, item.occurrence_ms] for item in batch if item.action_type is kind
        ]
        assert len({m["headers"]["id"] for m in messages}) == len(messages)
    tags = [
        json.loads(raw)["properties"]["delivery_tag"]
        for queue in ("order.http", "order.storage")
        for raw in broker.lrange(queue, 0, -1)
    ]
    assert len(set(tags)) == len(batch)
    publisher.close()
    broker.close()
