"""Run one action of any kind and describe the outcome."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from scheduler.clock import from_ms, utcnow
from scheduler.domain.models import ActionType, CeleryTask, JobErrorAction
from scheduler.domain.redaction import redact_urls
from scheduler.errors import StoreError, TaktError
from scheduler.service.management import run_command_line
from workers.auth import ActionAuthFailed
from workers.context import WorkerContext
from workers.http_action import OccurrenceInfo, Outcome, call_http
from workers.service_bus import send_message
from workers.storage_queue import put_message

__all__ = ["FAILURE_HEADER", "run_action", "unexpected_failure"]

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
    """Execute ``action`` for one occurrence of job ``jid``.

    Whatever goes wrong while the action is prepared or run is this attempt's failure: an
    exception becomes a failed outcome that says what happened (no traceback, no
    credential), so the retry policy and the error action apply to it. Only the store
    being away is not the action's fault: it reaches the task, which tries the same
    attempt again (a Command action's store errors are its own, though).
    """
    try:
        return _run(ctx, action, jid, occurrence_ms, execution_tag, failure, timeout_s)
    except StoreError:
        raise
    except Exception as exc:  # every other kind is this attempt's failure, reported
        return Outcome(False, unexpected_failure(action, exc))


def unexpected_failure(action: JobErrorAction, exc: BaseException) -> str:
    """A history message for an exception an action raised: its kind and what it says,
    on one line, without any value of the action that may be a credential."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    for value in sorted(_sensitive_values(action), key=len, reverse=True):
        text = text.replace(value, "***")
    flat = " ".join(redact_urls(text).split())
    return f"{_PREFIXES.get(action.type, 'Action - ')}{flat}"[:_UNEXPECTED_CHARS]


_PREFIXES = {
    ActionType.HTTP: "Http Action - ",
    ActionType.HTTPS: "Http Action - ",
    ActionType.STORAGE_QUEUE: "StorageQueue Action - ",
    ActionType.SERVICE_BUS_QUEUE: "ServiceBusQueue Action - ",
    ActionType.SERVICE_BUS_TOPIC: "ServiceBusTopic Action - ",
    ActionType.CELERY: "Celery Action - ",
    ActionType.COMMAND: "Command Action - ",
}
_UNEXPECTED_CHARS = 1024
_SHORTEST_SECRET = 4  # shorter values would mask ordinary words of the message


def _sensitive_values(action: JobErrorAction) -> set[str]:
    """Every value of the action an exception might echo that could be a credential:
    header values, query values and user info of the URI, authentication fields, the
    SAS token's parameters, the Service Bus key."""
    values: set[str] = set()
    if action.request is not None:
        request = action.request
        values.update((request.headers or {}).values())
        values.update(_uri_values(request.uri))
        auth = request.authentication
        if auth is not None:
            values.update(filter(None, (auth.password, auth.pfx, auth.secret)))
    if action.queue_message is not None and action.queue_message.sas_token:
        sas = action.queue_message.sas_token
        values.add(sas)
        values.update(v for _, v in parse_qsl(sas.removeprefix("?"), keep_blank_values=True))
    for message in (action.service_bus_queue_message, action.service_bus_topic_message):
        if message is not None and message.authentication is not None:
            values.add(message.authentication.sas_key or "")
    return {value for value in values if len(value) >= _SHORTEST_SECRET}


def _uri_values(uri: str) -> set[str]:
    try:
        parts = urlsplit(uri)
        users = {parts.username, parts.password}
    except ValueError:  # not even splittable: mask it whole
        return {uri}
    query = {value for _, value in parse_qsl(parts.query, keep_blank_values=True)}
    return query | {user for user in users if user}


def _run(
    ctx: WorkerContext,
    action: JobErrorAction,
    jid: str,
    occurrence_ms: int,
    execution_tag: str,
    failure: str | None,
    timeout_s: float | None,
) -> Outcome:
    http = ctx.http
    if action.type in (ActionType.HTTP, ActionType.HTTPS) and action.request is not None:
        info = _occurrence_info(jid, occurrence_ms, execution_tag)
        extra = {FAILURE_HEADER: _header_safe(failure)} if failure else {}
        try:
            with ctx.auth.prepare(action.request.authentication, http) as prepared:
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
            http,
            action.queue_message,
            _occurrence_info(jid, occurrence_ms, execution_tag),
            endpoint_template=ctx.settings.storage_queue_endpoint,
            region=_region(ctx, jid),
        )
    service_bus = {
        ActionType.SERVICE_BUS_QUEUE: action.service_bus_queue_message,
        ActionType.SERVICE_BUS_TOPIC: action.service_bus_topic_message,
    }.get(action.type)
    if service_bus is not None:
        return send_message(
            http,
            action.type,
            service_bus,
            _occurrence_info(jid, occurrence_ms, execution_tag),
            endpoint_template=ctx.settings.service_bus_endpoint,
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
    except Exception as exc:  # a command's own errors, the store's included, are its failure
        detail = str(exc) if isinstance(exc, TaktError) else f"{type(exc).__name__}: {exc}"
        return Outcome(False, f"Command Action - {line}: {' '.join(detail.split())}")
    return Outcome(result.ok, f"Command Action - {line}: {result.report}")
