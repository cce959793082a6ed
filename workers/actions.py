"""Run one action of any kind and describe the outcome."""

from __future__ import annotations

from scheduler.clock import from_ms, utcnow
from scheduler.errors import TaktError
from scheduler.management import run_command_line
from scheduler.models import ActionType, CeleryTask, JobErrorAction
from workers.auth import ActionAuthFailed
from workers.context import WorkerContext
from workers.http_action import OccurrenceInfo, Outcome, call_http
from workers.storage_queue import put_message

__all__ = ["FAILURE_HEADER", "run_action"]

#: Sent to an HTTP error action: what the main action's last attempt said.
FAILURE_HEADER = "x-takt-failure-message"
_FAILURE_HEADER_CHARS = 1024


def _header_safe(text: str) -> str:
    """One line of printable ASCII, short enough for any server's header limits."""
    flat = " ".join(text.split())
    return flat.encode("ascii", "replace").decode("ascii")[:_FAILURE_HEADER_CHARS]


def _occurrence_info(jid: str, occurrence_ms: int, execution_tag: str) -> OccurrenceInfo:
    cid, _, name = jid.rpartition("/")
    return OccurrenceInfo(
        job_id=name,
        collection_id=cid.rpartition("/")[2],
        expected_time=from_ms(occurrence_ms),
        execution_tag=execution_tag,
    )


def _region(ctx: WorkerContext, jid: str) -> str:
    """The collection's location, which Azure Scheduler wrote into queue messages."""
    try:
        return ctx.store.get_collection(jid.rsplit("/", 1)[0]).collection.location or ""
    except LookupError:
        return ""


def run_action(
    ctx: WorkerContext,
    action: JobErrorAction,
    jid: str,
    occurrence_ms: int,
    execution_tag: str,
    *,
    failure: str | None = None,
    timeout_s: float | None = None,
) -> Outcome:
    """Execute ``action`` for one occurrence of job ``jid``."""
    if action.type in (ActionType.HTTP, ActionType.HTTPS) and action.request is not None:
        info = _occurrence_info(jid, occurrence_ms, execution_tag)
        extra = {FAILURE_HEADER: _header_safe(failure)} if failure else {}
        try:
            with ctx.auth.prepare(action.request.authentication, ctx.http) as prepared:
                return call_http(
                    prepared.client,
                    action.request,
                    info,
                    extra_headers={**extra, **prepared.headers},
                    timeout_s=timeout_s,
                )
        except ActionAuthFailed as exc:
            return Outcome(False, f"Http Action - {exc}")
    if action.type is ActionType.STORAGE_QUEUE and action.queue_message is not None:
        return put_message(
            ctx.http,
            action.queue_message,
            _occurrence_info(jid, occurrence_ms, execution_tag),
            endpoint_template=ctx.settings.storage_queue_endpoint,
            region=_region(ctx, jid),
        )
    if action.type is ActionType.CELERY and action.celery_task is not None:
        return _send_celery_task(ctx, action.celery_task)
    if action.type is ActionType.COMMAND and action.command is not None:
        return _run_command(ctx, action.command)
    return Outcome(False, f"{action.type.value} actions are not supported by this worker")


def _send_celery_task(ctx: WorkerContext, task: CeleryTask) -> Outcome:
    """Success means the broker accepted the message (publisher confirms on AMQP)."""
    queue = task.queue or "celery"
    try:
        ctx.send_task(task.name, task.args or [], task.kwargs or {}, queue)
    except Exception as exc:  # kombu raises many kinds; each one is this attempt's failure
        return Outcome(False, f"Celery Action - sending {task.name!r} to {queue!r} failed: {exc}")
    return Outcome(True, f"Celery Action - task {task.name!r} accepted by the broker on {queue!r}")


def _run_command(ctx: WorkerContext, line: str) -> Outcome:
    """A built-in management command, run here against the store."""
    try:
        result = run_command_line(ctx.store, line, utcnow(), ctx.settings)
    except TaktError as exc:
        return Outcome(False, f"Command Action - {line}: {exc}")
    return Outcome(result.ok, f"Command Action - {line}: {result.report}")
