"""The Celery tasks of the action kinds; each carries ids only. Also what a process of the
Celery app does once Celery has started it: a worker pushes its metrics and, with
``TAKT_TRACING=true``, exports traces; with ``TAKT_LOG_FORMAT=json`` Celery's own loggers
write JSON lines (beat and worker alike)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, Task, signals

from scheduler.dispatch import ACTION_TASKS
from scheduler.errors import StoreError
from scheduler.observability import setup_tracing, use_json_logs
from workers.attempt import RunRequest
from workers.context import WorkerContext
from workers.execution import execute

__all__ = ["register_tasks"]

log = logging.getLogger(__name__)

_STORE_RETRY_S = 2.0


def _release_quietly(ctx: WorkerContext, run: RunRequest) -> None:
    # Still away: the lease expires by itself, and the retry waits for that.
    with contextlib.suppress(StoreError):
        ctx.store.release_lease(run.jid, run.occurrence_ms, run.tag)


def register_tasks(app: Celery, context: Callable[[], WorkerContext]) -> None:
    """Define one task per action kind on ``app`` (every app instance gets its own), under
    the names dispatch publishes them by; ``context`` gives the worker context of the
    process that runs a task (built on first use, so after a prefork fork)."""
    for name in ACTION_TASKS:
        _register(app, context, name)
    _on_start(app, context)


def _on_start(app: Celery, context: Callable[[], WorkerContext]) -> None:
    """Hook Celery's start: metrics pushed by each worker process (the pool's children
    too), and Celery's loggers formatted as JSON lines when asked (after Celery set them
    up: its handlers on the root logger and on ``celery.task``). Until a worker's init
    says otherwise, the process is a beat (the beat sends no signal before its logging)."""
    role = ["beat"]
    uid = f"takt-{id(app)}"

    def worker_init(instance: Any = None, **_: Any) -> None:
        if getattr(instance, "app", app) is not app:
            return  # another app's worker, in a process that holds several
        role[0] = "worker"
        setup_tracing("worker", context().settings.tracing)
        if context().settings.log_format == "json":
            # Before Celery sets up logging: its warnings (running as root) come first.
            use_json_logs("worker")
            if instance is not None:
                instance.quiet = True  # its banner is not JSON

    def json_logs(logger: Any = None, **_: Any) -> None:
        if context().settings.log_format == "json":
            use_json_logs(role[0], (logger,) if logger is not None else ())

    def start_metrics(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", app) is app:  # a pool child's signal has no sender
            context().start_metrics()

    signals.celeryd_init.connect(worker_init, weak=False, dispatch_uid=f"{uid}-init")
    signals.after_setup_logger.connect(json_logs, weak=False, dispatch_uid=f"{uid}-log")
    signals.after_setup_task_logger.connect(json_logs, weak=False, dispatch_uid=f"{uid}-tlog")
    signals.worker_ready.connect(start_metrics, weak=False, dispatch_uid=f"{uid}-ready")
    signals.worker_process_init.connect(start_metrics, weak=False, dispatch_uid=f"{uid}-fork")


def _register(app: Celery, context: Callable[[], WorkerContext], name: str) -> None:
    @app.task(
        name=name,
        bind=True,
        shared=False,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        max_retries=None,  # the job's retry policy decides, not Celery
    )
    def action_task(
        task: Task[Any, str],
        jid: str,
        occurrence_ms: int,
        attempt: int = 0,
        manual: bool = False,
        error: bool = False,
    ) -> str:
        run = RunRequest(jid, occurrence_ms, attempt, manual, error)
        try:
            verdict = execute(context(), run, traceparent=_traceparent(task))
        except StoreError as exc:
            # The store is away (restarting?): this attempt has not happened; try it again.
            log.warning("job store unavailable for %s@%s: %s", jid, occurrence_ms, exc)
            _release_quietly(context(), run)
            raise task.retry(
                args=(jid, occurrence_ms), kwargs=run.task_kwargs(), countdown=_STORE_RETRY_S
            ) from exc
        if verdict.retry_in is not None:
            # A short retry waits in the broker (Celery's countdown), carrying the attempt.
            follow = run if verdict.again else run.next_attempt()
            raise task.retry(
                args=(jid, occurrence_ms),
                kwargs=follow.task_kwargs(),
                countdown=verdict.retry_in.total_seconds(),
            )
        return verdict.word.value  # a plain str, as Celery logs and Flower show it


def _traceparent(task: Task[Any, str]) -> str | None:
    """The ``traceparent`` header of the task's message, if it has one (anyone may write
    into the broker: a value that is not a valid header starts a trace of its own)."""
    value = getattr(task.request, "traceparent", None)
    return value if isinstance(value, str) and len(value) <= _TRACEPARENT_MAX else None


#: A ``traceparent`` header is 55 characters (version 00); later versions may add fields.
_TRACEPARENT_MAX = 512
