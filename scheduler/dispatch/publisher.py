"""Every way Takt publishes a task, one function or class each.

- :func:`publish_occurrence`: one attempt of an occurrence, through Celery's own publisher
  (any broker). The API's manual runs, the workers' follow-ups (a job's error action
  after its last failed attempt) and the beat's redeliveries publish this way; a short
  retry is Celery's own ``Task.retry``.
- A :class:`BatchPublisher`: a beat's batch of occurrences (:func:`batch_publisher_for`).
  On a Redis broker, :class:`PipelinePublisher` writes standard Celery protocol-2 messages
  (the exact JSON kombu's Redis transport writes: headers, properties, base64 body), each
  from a pre-serialised template of its task and queue, and pushes a whole batch with one
  LPUSH per queue, instead of one ``send_task`` round trip and the per-message Python of
  kombu's producer each. Any unmodified Celery worker consumes them and Flower shows them
  once a worker receives them (no ``task-sent`` event is sent). On any other broker
  (RabbitMQ), :class:`CeleryPublisher` uses Celery's own publisher.
- :class:`UserTaskSender`: a user's own Celery task, what a Celery action sends.

With tracing on, an attempt's message carries the ``traceparent`` of the span that
published it (the API request's, the beat's batch, the failed attempt's), so the worker's
span of the attempt joins that trace; a beat's batch computes it once for all its messages.
"""

from __future__ import annotations

import itertools
import os
import socket
import uuid
from collections.abc import Sequence
from functools import cached_property
from typing import Any, NamedTuple, Protocol

import redis
from celery import Celery

from scheduler.dispatch.messages import MessageTemplate, is_redis_url, protocol2_message
from scheduler.dispatch.routing import route_for, task_id_for
from scheduler.domain.models import ActionType
from scheduler.observability import tracing
from scheduler.store.connections import client_for

__all__ = [
    "BatchPublisher",
    "CeleryPublisher",
    "Outgoing",
    "PipelinePublisher",
    "UserTaskSender",
    "batch_publisher_for",
    "publish_occurrence",
]


def publish_occurrence(
    app: Celery,
    prefix: str,
    jid: str,
    occurrence_ms: int,
    action_type: ActionType,
    *,
    manual: bool = False,
    error: bool = False,
    attempt: int = 0,
    queue: str | None = None,
    producer: Any = None,
) -> None:
    """Publish one attempt of an occurrence as a standard Celery task carrying ids only.

    ``queue`` is the job's (or its collection's) worker pool, instead of the kind's queue.
    """
    route = route_for(action_type)
    flags = {"manual": manual, "error": error, "attempt": attempt}
    parent = tracing.traceparent()
    app.send_task(
        route.task,
        args=[jid, occurrence_ms],
        kwargs={key: value for key, value in flags.items() if value} or None,
        task_id=task_id_for(jid, occurrence_ms, manual=manual, error=error, attempt=attempt),
        queue=queue or route.queue(prefix),
        producer=producer,
        headers=None if parent is None else {"traceparent": parent},
    )


class Outgoing(NamedTuple):
    """One attempt of one occurrence to publish (a tuple: the beat makes one per firing)."""

    jid: str
    occurrence_ms: int
    action_type: ActionType
    queue: str | None = None
    attempt: int = 0
    error: bool = False


class BatchPublisher(Protocol):
    """How a beat publishes a batch of occurrences."""

    def publish(self, batch: Sequence[Outgoing]) -> None: ...

    def close(self) -> None: ...


class CeleryPublisher:
    """Celery's own publisher, one message at a time over one producer (any broker)."""

    def __init__(self, app: Celery, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    def publish(self, batch: Sequence[Outgoing]) -> None:
        with self.app.producer_or_acquire() as producer:
            for item in batch:
                publish_occurrence(
                    self.app,
                    self.prefix,
                    item.jid,
                    item.occurrence_ms,
                    item.action_type,
                    error=item.error,
                    attempt=item.attempt,
                    queue=item.queue,
                    producer=producer,
                )

    def close(self) -> None:
        """Celery's connection pool belongs to the app."""


#: Most message templates a publisher keeps (one per task and queue).
_MAX_TEMPLATES = 256


class PipelinePublisher:
    """Protocol-2 messages, one LPUSH per queue per batch, all in one pipeline.

    LPUSH of several values pushes them left to right, so workers (which pop from the
    right) take them in the batch's order, as with one LPUSH each.
    """

    def __init__(self, broker_url: str, prefix: str) -> None:
        self.redis = client_for(broker_url)
        self.prefix = prefix
        self.origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self.reply_to = str(uuid.uuid4())
        # kombu only needs a delivery tag unique per message (it keys its unacked
        # bookkeeping by it): one random uuid per publisher, then a counter in its tail.
        self._tag_stem = str(uuid.uuid4())[:24]
        self._tags = itertools.count()
        #: One template per (task, queue, traced): a handful per deployment (bounded all
        #: the same).
        self._templates: dict[tuple[str, str, bool], MessageTemplate] = {}

    def publish(self, batch: Sequence[Outgoing]) -> None:
        by_queue: dict[str, list[bytes]] = {}
        parent = tracing.traceparent()  # the batch's span's, one for all its messages
        for item in batch:
            queue, payload = self.message(item, parent)
            by_queue.setdefault(queue, []).append(payload)
        pipe = self.redis.pipeline(transaction=False)
        for queue, payloads in by_queue.items():
            pipe.lpush(queue, *payloads)
        pipe.execute()

    def message(self, item: Outgoing, traceparent: str | None = None) -> tuple[str, bytes]:
        """The queue and the exact JSON kombu's Redis transport would have written."""
        route = route_for(item.action_type)
        queue = item.queue or route.queue(self.prefix)
        task_id = task_id_for(item.jid, item.occurrence_ms, error=item.error, attempt=item.attempt)
        tag = f"{self._tag_stem}{next(self._tags):012x}"
        if not item.error and not item.attempt:  # a scheduled occurrence: the hot path
            key = (route.task, queue, traceparent is not None)
            template = self._templates.get(key)
            if template is None:
                if len(self._templates) >= _MAX_TEMPLATES:
                    self._templates.clear()  # jobs naming many pools: stay bounded
                template = self._templates[key] = MessageTemplate(
                    route.task,
                    {},
                    queue,
                    origin=self.origin,
                    reply_to=self.reply_to,
                    traced=traceparent is not None,
                )
            return queue, template.render(item.jid, item.occurrence_ms, task_id, tag, traceparent)
        kwargs: dict[str, Any] = {}
        if item.error:
            kwargs["error"] = True
        if item.attempt:
            kwargs["attempt"] = item.attempt
        payload = protocol2_message(
            route.task,
            task_id,
            [item.jid, item.occurrence_ms],
            kwargs,
            queue,
            origin=self.origin,
            reply_to=self.reply_to,
            delivery_tag=tag,
            traceparent=traceparent,
        )
        return queue, payload

    def close(self) -> None:
        self.redis.close()


def batch_publisher_for(app: Celery, broker_url: str, prefix: str) -> BatchPublisher:
    """The pipelined publisher on a Redis broker, Celery's own on any other."""
    if is_redis_url(broker_url):
        return PipelinePublisher(broker_url, prefix)
    return CeleryPublisher(app, prefix)


class UserTaskSender:
    """Sends a user's own Celery task (a Celery action): on a Redis broker one LPUSH of a
    standard message on a kept connection (kombu's producer builds a client per publish);
    elsewhere Celery's publisher with confirms."""

    def __init__(self, app: Celery, broker_url: str) -> None:
        self.app = app
        self.broker_url = broker_url

    def send(self, name: str, args: list[Any], kwargs: dict[str, Any], queue: str | None) -> None:
        if not is_redis_url(self.broker_url):
            self.app.send_task(name, args=args, kwargs=kwargs, queue=queue, retry=True)
            return
        target = queue or "celery"
        message = protocol2_message(
            name,
            str(uuid.uuid4()),
            args,
            kwargs,
            target,
            origin=self._origin,
            reply_to=self._origin,
        )
        self._broker.lpush(target, message)

    @cached_property
    def _broker(self) -> redis.Redis:
        return client_for(self.broker_url)

    @cached_property
    def _origin(self) -> str:
        return f"gen{os.getpid()}@{socket.gethostname()}"
