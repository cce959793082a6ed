"""Takt's Celery app: ``celery -A workers.app worker`` and ``celery -A workers.app beat``.

Celery's command line finds an app object in a module, so this module holds one; its
settings are read when Celery first needs its configuration (lazily, through
``add_defaults``), never at import time. Tests and embedders build their own with
:func:`create_celery_app`.
"""

from __future__ import annotations

import logging
import sys
from functools import cached_property, partial
from typing import Any

from celery.signals import after_setup_logger, worker_init
from celery.worker.consumer import Consumer

from scheduler.dispatch import TaktCelery, UserTaskSender, publish_occurrence
from scheduler.domain.models import ActionType
from scheduler.domain.redaction import quiet_http_logging
from scheduler.settings import TaktSettings
from workers.attempt import RunRequest
from workers.context import WorkerContext
from workers.tasks import register_tasks

__all__ = ["ReconnectingConsumer", "WorkerApp", "app", "create_celery_app"]

log = logging.getLogger(__name__)


#: How a worker's consumer tries a lost broker again: seconds before the first try, added
#: before each next one, and the most between two (kombu's Connection.ensure_connection).
_RECONNECT_INTERVALS = {"interval_start": 0.25, "interval_step": 0.25, "interval_max": 1.0}

#: Task events wait this long to be sent together (Flower shows them that much later) ...
EVENT_FLUSH_S = 0.1
#: ... unless this many are waiting.
EVENT_BATCH = 256


class ReconnectingConsumer(Consumer):
    """Celery's consumer, which reconnects soon, and even when tidying up the lost
    connection fails.

    When the broker goes away, Celery closes the lost connection before it reconnects.
    With messages taken and not yet acknowledged (a worker behind its queue, as under
    load), that close may fail in kombu: ``collect()`` detaches the transport while the
    task channel is still open, and closing that channel then fails with
    ``AttributeError: 'NoneType' object has no attribute 'hostname'`` while giving those
    messages back; so does acknowledging, after the reconnect, a task that came over the
    lost connection. Celery takes either for an unrecoverable error and the worker stops
    consuming for good. The connection is gone either way, and those messages come back
    after the redelivery timeout: reconnect, and leave them unacknowledged
    (tests/e2e/test_broker_restart.py).
    """

    _event_timer: Any = None

    def on_send_event_buffered(self) -> Any:
        """Celery sends the task events it buffers on its loop's next turn, and a pool
        thread's event (each task's ``task-started``) wakes the loop for that: about two
        events per ``PUBLISH``, and a wake-up per task. Here they leave together on the
        loop's timer, every :data:`EVENT_FLUSH_S`, or once :data:`EVENT_BATCH` wait (the
        dispatcher then sends them itself)."""
        consumer: Any = self  # celery-types declares neither its hub nor its dispatcher
        if consumer.event_dispatcher is not None:
            consumer.event_dispatcher.buffer_limit = EVENT_BATCH
        if self._event_timer is None and consumer.hub is not None:
            self._event_timer = True  # one wake-up, to start the timer in the loop
            consumer.hub.call_soon(self._start_event_timer)

    def shutdown(self) -> None:
        """Send the events still waiting (the last tasks' ``task-succeeded``) before Celery
        closes the dispatcher."""
        consumer: Any = self
        try:
            consumer._flush_events()
        except Exception:  # the broker is gone: Flower misses those events, nothing else
            log.warning("consumer: could not send the last task events", exc_info=True)
        super().shutdown()

    def _start_event_timer(self) -> None:
        consumer: Any = self
        self._event_timer = consumer.hub.call_repeatedly(EVENT_FLUSH_S, consumer._flush_events)

    def ensure_connected(self, conn: Any) -> Any:
        """Celery's, trying again sooner: after 0.25 s, then 0.5, 0.75, and every second
        from then on (kombu's default is 2 s, then 4, 6, ... up to 30). A Sentinel failover
        takes about 3 s; a worker whose try came just before it waited 4 s more."""
        ensure = conn.ensure_connection
        conn.ensure_connection = partial(ensure, **_RECONNECT_INTERVALS)
        try:
            return super().ensure_connected(conn)
        finally:
            del conn.ensure_connection  # kombu's method again

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except Exception:
            log.warning("consumer: closing the lost broker connection failed", exc_info=True)

    def call_soon_ack(self, p: Any, *args: Any, **kwargs: Any) -> Any:
        return super().call_soon_ack(_unless_connection_lost, p, *args, **kwargs)  # type: ignore[misc]


def _unless_connection_lost(acknowledge: Any, *args: Any, **kwargs: Any) -> Any:
    """Acknowledge (or reject) a message, unless the connection it came over was lost
    meanwhile: kombu would fail with an ``AttributeError`` on the detached transport,
    which ends the consumer. Such a message is delivered again after the redelivery
    timeout."""
    message = getattr(acknowledge, "__self__", None)
    transport = getattr(getattr(message, "channel", None), "connection", None)
    if message is not None and getattr(transport, "client", None) is None:
        log.warning(
            "consumer: message %s came over a lost broker connection; it is delivered "
            "again after the redelivery timeout",
            getattr(message, "delivery_tag", "?"),
        )
        return None
    return acknowledge(*args, **kwargs)


class WorkerApp(TaktCelery):
    """Takt's Celery app with the action tasks and the worker context they run in."""

    def __init__(self, settings: TaktSettings | None = None) -> None:
        super().__init__(settings)
        self.add_defaults(
            lambda: {
                "worker_consumer": f"{__name__}:ReconnectingConsumer",
                "worker_pool": "workers.pool:TaskPool",
            }
        )

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


#: Celery's lines for every task ("Task … received", "Task … succeeded in …"): two log
#: records per attempt, 4 % of a worker's CPU at INFO (docs/benchmarks.md), saying what
#: the job's history and Flower say already. They show with TAKT_LOG_LEVEL=DEBUG; a
#: failure Celery logs (a task that raised) is an error and always shows.
_PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


@after_setup_logger.connect
def _per_task_lines_at_debug(loglevel: int | str | None = None, **_: Any) -> None:
    level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
    if not isinstance(level, int) or level > logging.DEBUG:
        for name in _PER_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


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
