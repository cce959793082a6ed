"""The Celery tasks of the action kinds; each carries ids only."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, Task

from scheduler.dispatch import ACTION_TASKS
from scheduler.errors import StoreError
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
            verdict = execute(context(), run)
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
