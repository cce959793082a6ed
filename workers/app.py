"""Takt's Celery app: ``celery -A workers.app worker`` and ``celery -A workers.app beat``.

Celery's command line finds an app object in a module, so this module holds one; its
settings are read when Celery first needs its configuration (lazily, through
``add_defaults``), never at import time. Tests and embedders build their own with
:func:`create_app`.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from functools import cached_property
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_init

from scheduler.dispatch.messages import is_redis_url, protocol2_message
from scheduler.dispatch.routing import publish_occurrence
from scheduler.domain.models import ActionType
from scheduler.domain.redaction import quiet_http_logging
from scheduler.settings import TaktSettings, load_settings
from workers.config import celery_config
from workers.context import WorkerContext
from workers.execution import RunRequest
from workers.tasks import register_tasks

__all__ = ["TaktCelery", "app", "create_app"]


class TaktCelery(Celery):
    """A Celery app that knows its Takt settings and its worker context."""

    def __init__(self, settings: TaktSettings | None = None) -> None:
        super().__init__("takt", set_as_current=False)
        self._takt_settings = settings
        self.add_defaults(lambda: celery_config(self.settings))

    @cached_property
    def settings(self) -> TaktSettings:
        return self._takt_settings or load_settings()

    @cached_property
    def context(self) -> WorkerContext:
        return WorkerContext(self.settings, publish=self._publish, send_task=self._send_user_task)

    def _send_user_task(
        self, name: str, args: list[Any], kwargs: dict[str, Any], queue: str | None
    ) -> None:
        """On a Redis broker one LPUSH of a standard message on a kept connection (kombu's
        producer builds a client per publish); elsewhere Celery's publisher with confirms."""
        if not is_redis_url(self.settings.celery_broker_url):
            self.send_task(name, args=args, kwargs=kwargs, queue=queue, retry=True)
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
        return redis.Redis.from_url(self.settings.celery_broker_url)

    @cached_property
    def _origin(self) -> str:
        return f"gen{os.getpid()}@{socket.gethostname()}"

    def _publish(self, run: RunRequest, action_type: ActionType, queue: str | None) -> None:
        publish_occurrence(
            self,
            self.settings.key_prefix,
            run.jid,
            run.occurrence_ms,
            action_type,
            manual=run.manual,
            error=run.error,
            attempt=run.attempt,
            queue=queue,
        )


@worker_init.connect
def _responsive_consumer(**_: Any) -> None:
    """With dozens of threads waking on I/O, the consumer thread (which fetches and acks
    messages and sends task events) waits for the GIL up to the switch interval each
    time; 1 ms instead of 5 ms keeps message intake ahead of the HTTP calls."""
    sys.setswitchinterval(0.001)


def create_app(settings: TaktSettings | None = None) -> TaktCelery:
    """A Celery app with Takt's tasks; settings are read from the environment if omitted."""
    quiet_http_logging()  # every Takt process but the API builds its Celery app here
    celery_app = TaktCelery(settings)
    register_tasks(celery_app)
    return celery_app


app = create_app()
