"""Takt's Celery app: ``celery -A workers.app worker`` and ``celery -A workers.app beat``.

Celery's command line finds an app object in a module, so this module holds one; its
settings are read when Celery first needs its configuration (lazily, through
``add_defaults``), never at import time. Tests and embedders build their own with
:func:`create_celery_app`.
"""

from __future__ import annotations

import sys
from functools import cached_property
from typing import Any

from celery.signals import worker_init

from scheduler.dispatch import TaktCelery, UserTaskSender, publish_occurrence
from scheduler.domain.models import ActionType
from scheduler.domain.redaction import quiet_http_logging
from scheduler.settings import TaktSettings
from workers.attempt import RunRequest
from workers.context import WorkerContext
from workers.tasks import register_tasks

__all__ = ["WorkerApp", "app", "create_celery_app"]


class WorkerApp(TaktCelery):
    """Takt's Celery app with the action tasks and the worker context they run in."""

    @cached_property
    def context(self) -> WorkerContext:
        sender = UserTaskSender(self, self.settings.celery_broker_url)
        return WorkerContext(self.settings, publish=self._publish_follow_up, send_task=sender.send)

    def _publish_follow_up(
        self, run: RunRequest, action_type: ActionType, queue: str | None
    ) -> None:
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


def create_celery_app(settings: TaktSettings | None = None) -> WorkerApp:
    """A Celery app with Takt's tasks; settings are read from the environment if omitted."""
    quiet_http_logging()  # every Takt process but the API builds its Celery app here
    celery_app = WorkerApp(settings)
    register_tasks(celery_app, lambda: celery_app.context)
    return celery_app


app = create_celery_app()
