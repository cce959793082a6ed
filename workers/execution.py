"""One attempt of a job's action (or of its error action): load, lease, run, record, follow up.

Tasks carry ids only (job id, occurrence time, attempt, which action); the definition, with
its secrets, is loaded here from Redis, so nothing secret travels through the broker or
shows in Flower. After a failed attempt the follow-up is one of: a short retry through
Celery (``Task.retry`` with a countdown), a long retry put back into the due set as a
one-shot occurrence (a countdown that long would sit in a worker's memory), or, after the
last attempt, the job's error action chained as its own task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from pydantic import ValidationError

from scheduler.clock import from_ms, to_ms, utcnow
from scheduler.domain.credentials import redact, secret_values
from scheduler.domain.models import (
    ConcurrencyPolicy,
    JobErrorAction,
    JobState,
    describe_validation_error,
)
from scheduler.domain.redaction import redact_urls
from scheduler.errors import JobNotFound, StoreError, TaktError
from scheduler.observability import AttemptFields, about_attempt, current_attempt, tracing
from scheduler.service.retries import retry_plan
from scheduler.settings import LEASE_MARGIN_S
from scheduler.store.jobs import JobRecord, JobToRun, Lease
from workers.actions import run_action
from workers.attempt import RunRequest
from workers.context import WorkerContext
from workers.http_action import Outcome
from workers.recording import record_attempt, record_postponed, record_unreadable

__all__ = ["Verdict", "VerdictWord", "execute", "timeout_for"]

log = logging.getLogger(__name__)

#: A lease outlives the action's timeout by this much (recording the attempt); it must
#: expire before the broker delivers the attempt again (see TaktSettings).
_LEASE_MARGIN_MS = int(LEASE_MARGIN_S * 1000)


class VerdictWord(StrEnum):
    """What became of an attempt, in a word: what its task returns."""

    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"  # through Celery: the verdict's retry_in
    RETRY_SCHEDULED = "retry-scheduled"  # through the due set
    POSTPONED = "postponed"  # concurrencyPolicy Forbid
    CANCELLED = "cancelled"  # concurrencyPolicy Replace
    BUSY = "busy"  # another worker holds the lease; looked at again
    DUPLICATE = "duplicate"  # recorded already
    NOT_OWED = "not-owed"  # the execution ledger does not owe it
    NOT_RUN = "not-run"  # the job was deleted or may not run
    NO_ERROR_ACTION = "no-error-action"


@dataclass(frozen=True, slots=True)
class Verdict:
    """How an attempt ended; ``retry_in`` asks the task to retry through Celery."""

    word: VerdictWord
    retry_in: timedelta | None = None
    again: bool = False  # retry the same attempt, not the next one


def execute(ctx: WorkerContext, run: RunRequest, *, traceparent: str | None = None) -> Verdict:
    """Run one attempt and arrange what follows it; every line logged meanwhile is about
    this attempt (JSON logs carry its fields), and the attempt is counted by outcome.
    With tracing on, the attempt is a span, the child of ``traceparent`` (its message's
    header: whoever published it)."""
    fields = AttemptFields(run.jid, run.occurrence_ms, run.tag, lambda: run.execution_tag)
    with (
        tracing.span("takt.attempt", kind="consumer", parent=traceparent) as span,
        about_attempt(fields),
    ):
        try:
            verdict = _execute(ctx, run)
        except StoreError:
            ctx.metrics.store_error()
            raise
        finally:
            if span is not None:
                span.set_attributes(_span_attributes(run, fields))
        if verdict.word in _NOT_OWED:
            ctx.ledger.forget([run.ledger_entry])
        fields.outcome = _OUTCOMES[verdict.word]
        if span is not None:
            span.set_attribute("takt.outcome", fields.outcome)
        ctx.metrics.attempt(
            run.jid, fields.action_type or "unknown", fields.outcome, error=run.error
        )
        log.debug("%s of %s@%s: %s", run.tag, run.jid, run.occurrence_ms, verdict.word.value)
    return verdict


def _span_attributes(run: RunRequest, fields: AttemptFields) -> dict[str, str | int | bool]:
    """What an attempt's span says about it: ids, as its JSON log lines do (never the
    definition: its URI, headers and credentials stay out of traces)."""
    return {
        "takt.job": run.jid,
        "takt.occurrence": fields.as_dict()["occurrence"],
        "takt.attempt": run.tag,
        "takt.execution_tag": run.execution_tag,
        "takt.action_type": fields.action_type or "unknown",
        "takt.manual": run.manual,
    }


#: Verdicts after which the attempt is no longer owed, though nothing was recorded.
_NOT_OWED = frozenset({VerdictWord.NOT_RUN, VerdictWord.NO_ERROR_ACTION, VerdictWord.DUPLICATE})

#: The ``outcome`` of an attempt in metrics and logs: a retry is a failure with another
#: try to come; denied, the attempt was not owed (a forged or stale message).
_OUTCOMES = {
    VerdictWord.COMPLETED: "completed",
    VerdictWord.FAILED: "failed",
    VerdictWord.RETRYING: "retried",
    VerdictWord.RETRY_SCHEDULED: "retried",
    VerdictWord.POSTPONED: "postponed",
    VerdictWord.CANCELLED: "cancelled",
    VerdictWord.BUSY: "busy",
    VerdictWord.DUPLICATE: "duplicate",
    VerdictWord.NOT_OWED: "denied",
    VerdictWord.NOT_RUN: "not_run",
    VerdictWord.NO_ERROR_ACTION: "not_run",
}


def _execute(ctx: WorkerContext, run: RunRequest) -> Verdict:
    leased = _leased_attempt(ctx, run)
    if isinstance(leased, Verdict):
        return leased
    record, action, ttl_ms = leased
    policy = None if run.error else record.properties.concurrency_policy
    if policy in (ConcurrencyPolicy.FORBID, ConcurrencyPolicy.REPLACE):
        assert policy is not None
        other = ctx.store.claim_running(run.jid, run.occurrence_ms, ttl_ms, policy.value)
        if policy is ConcurrencyPolicy.FORBID and other is not None:
            record_postponed(ctx.store, run, other)
            return Verdict(VerdictWord.POSTPONED)
    started = utcnow()
    call = ctx.metrics.call_started()
    try:
        outcome = run_action(
            ctx,
            action,
            run.jid,
            run.occurrence_ms,
            run.execution_tag,
            failure=_failure_of(ctx, run, record),
            timeout_s=timeout_for(ctx, action),
        )
    finally:
        ctx.metrics.call_ended(action.type.value, call)
        if policy is not None:
            ctx.store.release_running(run.jid, run.occurrence_ms)
    replaced = _replaced(ctx, run, policy)
    if replaced is not None:
        outcome = Outcome(
            False,
            f"Cancelled: replaced by the occurrence of "
            f"{from_ms(replaced).isoformat()} (concurrencyPolicy Replace)",
        )
        record_attempt(ctx.store, record, run, started, outcome, last_try=True)
        return Verdict(VerdictWord.CANCELLED)
    wait = None if outcome.succeeded else retry_plan(action.retry_policy).retry_after(run.attempt)
    record_attempt(
        ctx.store,
        record,
        run,
        started,
        outcome,
        last_try=wait is None,
        follow_up=_owed_next(ctx, record, run, outcome, wait),
    )
    return _follow_up(ctx, record, run, action, outcome, wait)


def _leased_attempt(
    ctx: WorkerContext, run: RunRequest
) -> tuple[JobRecord, JobErrorAction, int] | Verdict:
    """The job and the action of an attempt whose lease this worker now holds, with the
    lease's TTL; else the verdict on why the attempt does not run.

    One round trip reads the job and takes the lease (for the default timeout's TTL) when
    the job and its collection are Enabled; an action with a timeout of its own has its
    lease set by it in a second one. What the read cannot decide (a job that is not
    Enabled but still owes this attempt, an error action) takes the lease after the read,
    as it always did, and a job that may not run holds none. A job that cannot be read is
    recorded as such under a lease of the margin alone.
    """
    try:
        read = ctx.store.read_and_lease(
            run.jid, run.occurrence_ms, run.tag, _read_lease_ms(ctx, run), run.ledger_entry.member
        )
    except JobNotFound:
        log.info("job %s was deleted; occurrence %s dropped", run.jid, run.occurrence_ms)
        return Verdict(VerdictWord.NOT_RUN)
    try:
        record = read.record()
    except Exception as exc:  # the job cannot be read (UnreadableJob, a bad field, ...)
        return _unreadable(ctx, run, exc, read)
    if not _may_run(record, read.collection_state, run):
        return Verdict(VerdictWord.NOT_RUN)
    action = record.properties.action.error_action if run.error else record.properties.action
    if action is None:
        return Verdict(VerdictWord.NO_ERROR_ACTION)
    _describe(record, action)
    ttl_ms = _lease_ms(ctx, action)
    refused = _hold_lease(ctx, run, read, ttl_ms)
    return (record, action, ttl_ms) if refused is None else refused


def _describe(record: JobRecord, action: JobErrorAction) -> None:
    """Name the action's type in this attempt's metrics and log lines, and let its lines
    mask the job's credentials (computed only if a line is written)."""
    fields = current_attempt()
    if fields is not None:
        fields.action_type = action.type.value
        fields.secrets = lambda: secret_values(record.properties.to_wire())


def _lease_ms(ctx: WorkerContext, action: JobErrorAction | None) -> int:
    """How long an attempt's lease lasts: its action's timeout (None: the default one)
    and a margin for recording the attempt."""
    return int(timeout_for(ctx, action) * 1000) + _LEASE_MARGIN_MS


def _read_lease_ms(ctx: WorkerContext, run: RunRequest) -> int | None:
    """The TTL of the lease the first read takes, before the action is known: the default
    timeout's. None for an error action, read without a lease: the job may have none, and
    an attempt that does not run must neither hold a lease nor be told apart by one."""
    return None if run.error else _lease_ms(ctx, None)


def _hold_lease(ctx: WorkerContext, run: RunRequest, read: JobToRun, ttl_ms: int) -> Verdict | None:
    """None once this worker holds the attempt's lease for ``ttl_ms`` (the one the read
    took, set to ``ttl_ms`` if it was taken for another TTL, or one taken now); else why
    the attempt does not run."""
    member = run.ledger_entry.member
    if read.lease is None:
        lease = ctx.store.acquire_lease(run.jid, run.occurrence_ms, run.tag, ttl_ms, member)
        return _refusal(run, lease)
    refused = _refusal(run, read.lease)
    if refused is not None or ttl_ms == _read_lease_ms(ctx, run):
        return refused
    if ctx.store.set_lease_ttl(run.jid, run.occurrence_ms, run.tag, ttl_ms, member):
        return None
    # Expired in the meantime (the process stalled for longer than the lease): another
    # worker may hold it now, so look again as a copy delivered while it is held would.
    return Verdict(VerdictWord.BUSY, retry_in=timedelta(milliseconds=100), again=True)


def _refusal(run: RunRequest, lease: Lease) -> Verdict | None:
    """None when ``lease`` was taken; else why the attempt does not run."""
    if lease.taken:
        return None
    if lease.done:
        log.info("%s of %s@%s ran already", run.tag, run.jid, run.occurrence_ms)
        return Verdict(VerdictWord.DUPLICATE)
    if not lease.owed:
        # Nobody handed this attempt out: a message forged into the broker, or one so
        # stale that its record has expired. Either way it must not run.
        log.warning(
            "%s of %s@%s is not owed by the execution ledger; dropped",
            run.tag,
            run.jid,
            run.occurrence_ms,
        )
        return Verdict(VerdictWord.NOT_OWED)
    # Another worker holds it: if that one dies, this copy must still run, so look
    # again once its lease has expired (by then it is done, or free).
    return Verdict(
        VerdictWord.BUSY, retry_in=timedelta(milliseconds=lease.busy_ms + 100), again=True
    )


def _unreadable(ctx: WorkerContext, run: RunRequest, exc: Exception, read: JobToRun) -> Verdict:
    """A stored definition this worker cannot read (written behind the API's back, or
    valid under older rules) fails the attempt with a history entry that says why, under
    a lease of the margin alone. With no readable retry policy or error action, neither
    applies."""
    refused = _hold_lease(ctx, run, read, _LEASE_MARGIN_MS)
    if refused is not None:
        return refused
    message = f"Job definition - the stored definition cannot be run: {_why(exc)}"
    log.warning("job %s cannot be read: %s", run.jid, message)
    record_unreadable(ctx.store, run, utcnow(), message)
    return Verdict(VerdictWord.FAILED)


def _why(exc: BaseException) -> str:
    """One line on why a stored job cannot be read: the fields a validation names (the
    store may wrap it), else the exception; URLs cut down, as in logs."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ValidationError):
        cause = cause.__cause__
    if cause is not None:
        why = describe_validation_error(cause, ("properties",))
    else:
        why = str(exc) if isinstance(exc, TaktError) else f"{type(exc).__name__}: {exc}"
    return " ".join(redact_urls(why).split())


def _owed_next(
    ctx: WorkerContext,
    record: JobRecord,
    run: RunRequest,
    outcome: Outcome,
    wait: timedelta | None,
) -> tuple[str, int] | None:
    """The attempt that follows this one (if any) as it enters the execution ledger: its
    member and when to deliver it again should its message be lost."""
    if outcome.succeeded:
        return None
    if wait is not None:
        follow, after = run.next_attempt(), wait
    elif not run.error and record.properties.action.error_action is not None:
        follow, after = run.error_action(), timedelta(0)
    else:
        return None
    due = utcnow() + after + timedelta(seconds=ctx.settings.redelivery_timeout_s)
    return follow.ledger_entry.member, to_ms(due)


def timeout_for(ctx: WorkerContext, action: JobErrorAction | None) -> float:
    """The action's timeout in seconds: the job's own, else the default, never over the max
    (None: the default)."""
    own = action.request.timeout if action is not None and action.request is not None else None
    seconds = own.total_seconds() if own is not None else ctx.settings.http_timeout_s
    return min(seconds, ctx.settings.http_timeout_max_s)


def _may_run(record: JobRecord, collection_state: str | None, run: RunRequest) -> bool:
    """Whether the attempt may run (a disabled job never runs). Every attempt whose read
    took the lease may (its job and its collection are Enabled), so one that may not
    holds none."""
    if record.state is not JobState.ENABLED and not _handed_out_before_it_finished(record, run):
        log.info("job %s is %s; it does not run", run.jid, record.state.value)
        return False
    if collection_state != "Enabled":
        log.info("collection of %s is %s; its jobs do not run", run.jid, collection_state)
        return False
    return True


def _handed_out_before_it_finished(record: JobRecord, run: RunRequest) -> bool:
    """A Completed or Faulted job still owes what it handed out while it was Enabled: the
    error action of its last occurrence, and retries or redeliveries of earlier ones
    (its last occurrence may well be recorded before an earlier one's late delivery)."""
    if not record.state.is_final:
        return False
    finished_ms = record.finished_at_ms
    return run.error or (finished_ms is not None and run.occurrence_ms < finished_ms)


def _replaced(ctx: WorkerContext, run: RunRequest, policy: ConcurrencyPolicy | None) -> int | None:
    """Under Replace: the occurrence that took over while this one ran, if any."""
    if policy is not ConcurrencyPolicy.REPLACE:
        return None
    return ctx.store.replaced_by(run.jid, run.occurrence_ms)


def _failure_of(ctx: WorkerContext, run: RunRequest, record: JobRecord) -> str | None:
    """For an error action: the message of the main action's last failed attempt, with any
    credential of the job it echoes masked (the error action may go to another host)."""
    if not run.error:
        return None
    try:
        failure = ctx.store.main_failure(run.jid, run.occurrence_ms)
    except (ValueError, KeyError):  # an unreadable history entry: the action runs without it
        log.warning("history of %s cannot be read; error action runs without it", run.jid)
        return None
    return None if failure is None else redact(failure, secret_values(record.properties.to_wire()))


def _follow_up(
    ctx: WorkerContext,
    record: JobRecord,
    run: RunRequest,
    action: JobErrorAction,
    outcome: Outcome,
    wait: timedelta | None,
) -> Verdict:
    if outcome.succeeded:
        return Verdict(VerdictWord.COMPLETED)
    if wait is not None:
        if wait.total_seconds() <= ctx.settings.broker_retry_max_s:
            return Verdict(VerdictWord.RETRYING, retry_in=wait)
        due_ms = to_ms(utcnow() + wait)
        ctx.store.schedule_retry(run.jid, run.occurrence_ms, run.attempt + 1, run.error, due_ms)
        return Verdict(VerdictWord.RETRY_SCHEDULED)
    error_action = record.properties.action.error_action
    if not run.error and error_action is not None:
        ctx.publish(run.error_action(), error_action.type, record.queue)
    del action
    return Verdict(VerdictWord.FAILED)
