"""``JobScheduler``: a Celery beat scheduler that reads due jobs from Redis.

Celery's own schedulers keep every entry in memory and look at each one per tick. This
one keeps nothing per job: each tick claims due occurrences from the Redis due set with
one Lua script (exactly once, however many beats run), publishes one task per occurrence
carrying only ids, and puts each job back at its next occurrence. Between ticks it
blocks on a pub/sub channel until the earliest due time, so a job created to fire sooner
wakes it at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import redis
from celery import Celery
from celery.beat import Scheduler
from pydantic import TypeAdapter

from beat.redelivery import Redelivery
from scheduler.clock import from_ms, to_ms, utcnow
from scheduler.dispatch import BatchPublisher, Outgoing, batch_publisher_for
from scheduler.domain.models import ActionType, Duration, JobState, MissedRunPolicy
from scheduler.domain.planning import NextAfter, cadence, plan_dispatch
from scheduler.errors import SchemaTooNew, StoreError
from scheduler.observability import (
    MetricsPusher,
    ProcessId,
    process_registry,
    setup_tracing,
    tracing,
)
from scheduler.observability.recorders import BeatRecorder
from scheduler.recurrence import RuleShape, rule_shape
from scheduler.service.builtin_jobs import ensure_builtin_jobs
from scheduler.settings import TaktSettings, load_settings
from scheduler.store.claims import (
    Advance,
    Claim,
    ClaimBatch,
    ClaimQueue,
    PendingClaim,
    WakeChannel,
)
from scheduler.store.jobs import SCHEMA_VERSION, JobStore
from scheduler.store.ledger import Ledger
from scheduler.store.metrics import MetricsBoard

__all__ = ["JobScheduler"]

log = logging.getLogger(__name__)

#: A claim not acknowledged for this long belongs to a dead beat; another takes it over.
#: A live beat holds a claim for milliseconds (claim, publish, acknowledge in one batch);
#: a slow one that loses a claim only causes a duplicate publish, which workers drop.
_RECOVER_IDLE_MS = 3_000
_RECOVER_EVERY_S = 1.0
#: How long a beat waits before trying again when Redis does not answer.
_STORE_RETRY_S = 1.0
#: The due set's depth and its oldest entry's lag are sampled at most this often.
_SAMPLE_DUE_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class _Shape:
    """A stored job definition as the beat needs it, but for its start time (a
    :class:`DispatchPolicy`): what jobs of the same shape share.

    Read straight from the JSON, not through the pydantic model: the API validated the
    definition before storing it, and validating it again cost the beat a third of its
    time. ``start`` is set only for a job stored before its start had a hash field of its
    own (``startTime``): its definition holds it.
    """

    action_type: ActionType
    error_action_type: ActionType | None
    missed_run_policy: MissedRunPolicy | None
    starting_deadline: timedelta | None
    rule: RuleShape | None
    start: datetime | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """A job definition as the beat needs it: its shape, its rule anchored, and the
    cadence the claim script can follow for it ('' when the beat must plan each run)."""

    shape: _Shape
    next_after: NextAfter | None
    cadence: str = ""


#: Bounded, so a beat's memory does not grow with the number of jobs it serves.
@lru_cache(maxsize=4096)
def _plan(definition: str, start: str) -> _Plan:
    """The plan of a job from its stored ``def`` and ``startTime`` fields (the store keeps
    the start out of the definition, so jobs that differ only in their start share one
    shape)."""
    shape = _shape(definition)
    if shape.rule is None:
        return _Plan(shape, None, cadence(shape, shape.action_type, None))
    anchor = shape.start or (datetime.fromisoformat(start) if start else None)
    rule = shape.rule.at(anchor or utcnow())
    return _Plan(shape, rule.next_after, cadence(shape, shape.action_type, rule) if anchor else "")


@lru_cache(maxsize=1024)
def _shape(raw: str) -> _Shape:
    payload = json.loads(raw)
    if payload.get("sv", 0) > SCHEMA_VERSION:
        raise SchemaTooNew(f"a job definition has schema version {payload['sv']!r}")
    action = payload["action"]
    error_action = action.get("errorAction")
    policy = payload.get("missedRunPolicy")
    deadline = payload.get("startingDeadline")
    recurrence = payload.get("recurrence")
    start = payload.get("startTime")
    return _Shape(
        ActionType(action["type"]),
        ActionType(error_action["type"]) if error_action else None,
        MissedRunPolicy(policy) if policy else None,
        _duration(deadline) if deadline else None,
        None if recurrence is None else rule_shape(recurrence),
        datetime.fromisoformat(start) if start else None,
    )


@lru_cache(maxsize=256)
def _duration(text: str) -> timedelta:
    """An ISO 8601 duration as the model reads it (few distinct values: cached)."""
    return _DURATION.validate_python(text)


_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)
_ENABLED = JobState.ENABLED.value
_ACTIONS = {kind.value: kind for kind in ActionType}


class JobScheduler(Scheduler):
    """Celery beat scheduler over Takt's Redis job store (``-S beat.JobScheduler``)."""

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        self.settings: TaktSettings = getattr(app, "settings", None) or load_settings()
        setup_tracing("beat", self.settings.tracing)
        # Bounded calls: a stopped server is an error the beat logs and retries, not a
        # hang (its wait for the wake channel is a poll, which the timeout does not cut).
        self.store = JobStore.from_url(
            self.settings.store_url,
            self.settings.key_prefix,
            socket_timeout_s=self.settings.redis_socket_timeout_s,
        )
        redelivery_ms = int(self.settings.redelivery_timeout_s * 1000)
        self.claims = ClaimQueue(self.store, redelivery_ms)
        self.metrics = BeatRecorder(self.settings.metrics)
        self.redelivery = Redelivery(
            app,
            self.store,
            Ledger(self.store, redelivery_ms),
            self.settings.beat_batch_size,
            self.metrics,
        )
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._pusher: MetricsPusher | None = None
        self._last_due_sample = float("-inf")
        self._wake: WakeChannel | None = None
        self._last_recovery = 0.0
        self.publisher: BatchPublisher = batch_publisher_for(
            app, self.settings.celery_broker_url, self.settings.key_prefix
        )
        super().__init__(app, *args, **kwargs)

    # -- celery.beat.Scheduler interface ------------------------------------------------

    def setup_schedule(self) -> None:
        """Nothing is loaded into memory; the due set in Redis is the schedule."""
        self.claims.ensure_claim_group()
        ensure_builtin_jobs(self.store, utcnow())
        self._wake = WakeChannel(self.store)
        self._start_metrics()
        log.info("takt beat %s ready (batch %s)", self.consumer, self.settings.beat_batch_size)

    @property
    def schedule(self) -> dict[str, Any]:  # type: ignore[override]
        return {}

    @property
    def info(self) -> str:
        return f"    . redis job store -> {self.store.keys.due} (consumer {self.consumer})"

    def sync(self) -> None:
        """Every change is written to Redis as it happens; there is nothing to flush."""

    def close(self) -> None:
        if self._pusher is not None:
            self._pusher.stop()
        if self._wake is not None:
            self._wake.close()
        self.publisher.close()
        self.store.close()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Dispatch everything due, then wait for the next due time or a wake-up."""
        try:
            self._recover_orphans()
            self._dispatch_due()
            self._wait_for_work()
        except (StoreError, redis.RedisError) as exc:
            # Redis restarting or unreachable: nothing claimed is lost (claims wait in the
            # stream); try again shortly rather than let Celery's beat loop die.
            self.metrics.store_error()
            log.warning("job store unavailable (%s); retrying in %s s", exc, _STORE_RETRY_S)
            return _STORE_RETRY_S
        return 0.0

    # -- the work ----------------------------------------------------------------------

    def _dispatch_due(self) -> None:
        """Dispatch everything due, batch by batch; while the beat publishes one batch,
        Redis is already claiming the next (unless ``beat_claim_ahead`` is off)."""
        size, ahead = self.settings.beat_batch_size, self.settings.beat_claim_ahead
        pending: PendingClaim | None = self.claims.start_claim(self.consumer, size)
        while pending is not None:
            batch = pending.result()
            self.metrics.claimed(len(batch))
            full = len(batch) >= size
            pending = self.claims.start_claim(self.consumer, size) if full and ahead else None
            try:
                self._dispatch(batch)
            except BaseException:
                if pending is not None:
                    pending.abandon()  # its claims wait in the stream for recovery
                raise
            if full and not ahead:
                pending = self.claims.start_claim(self.consumer, size)

    def _recover_orphans(self) -> None:
        if time.monotonic() - self._last_recovery < _RECOVER_EVERY_S:
            return
        self._last_recovery = time.monotonic()
        self._watch_history()
        batch = self.claims.recover_claims(
            self.consumer, _RECOVER_IDLE_MS, self.settings.beat_batch_size
        )
        if batch.stream_ids:
            log.warning("recovered %d occurrence(s) claimed by a stopped beat", len(batch))
            self.metrics.recovered(len(batch))
            self._dispatch(batch)
        self.redelivery.run()

    def _watch_history(self) -> None:
        """After a failover (or a restart of the store), deliver the execution ledger's
        attempts again: the primary that died may have taken the task messages of its
        last moments with it, while the replica kept their ledger entries."""
        history = self.store.history_id()
        if history is not None:
            self.redelivery.after_history_change(history)

    def _dispatch(self, batch: ClaimBatch) -> None:
        """Publish the batch in one go, then put each planned job back at its next fire
        time and acknowledge the batch (the claim script advanced the others)."""
        started = time.monotonic()
        outgoing = [
            Outgoing(jid, occurrence_ms, _ACTIONS[action_type], queue or None)
            for jid, occurrence_ms, action_type, queue in batch.scheduled
        ]
        done: list[Advance] = []
        unpublished: list[Claim] = []  # not run: they leave the execution ledger
        now = from_ms(batch.now_ms)
        for claim in batch.claims:
            queued = len(outgoing)
            done.append(self._plan_one(claim, now, outgoing))
            if len(outgoing) == queued:
                unpublished.append(claim)
        if outgoing:
            # One span per batch, not per occurrence (a beat fires thousands a second):
            # each message carries its traceparent (docs/operations.md, "Traces").
            attributes = {"takt.occurrences": len(outgoing)} if tracing.tracing_on() else None
            with tracing.span("takt.dispatch", kind="producer", attributes=attributes):
                self.publisher.publish(outgoing)
            # Publish time by Redis's clock (the claim's "now" and the time since).
            published_ms = batch.now_ms + int((time.monotonic() - started) * 1000)
            self.metrics.published((item[1] for item in outgoing), published_ms)
        self.claims.advance(batch.stream_ids, done, unpublished)

    def _plan_one(self, claim: Claim, now: datetime, outgoing: list[Outgoing]) -> Advance:
        """Queue this occurrence for publishing if it runs; returns how to advance it."""
        if not claim.definition:
            return Advance(claim, None)  # deleted meanwhile
        plan = _plan(claim.definition, claim.start)
        queue = claim.queue or None
        if claim.retry is not None:
            kind = plan.shape.error_action_type if claim.retry.error else None
            outgoing.append(
                Outgoing(
                    claim.jid,
                    claim.occurrence_ms,
                    kind or plan.shape.action_type,
                    queue,
                    claim.retry.attempt,
                    claim.retry.error,
                )
            )
            return Advance(claim, None)
        decision = plan_dispatch(plan.shape, from_ms(claim.occurrence_ms), now, plan.next_after)
        if decision.run and claim.state == _ENABLED:
            outgoing.append(Outgoing(claim.jid, claim.occurrence_ms, plan.shape.action_type, queue))
        elif not decision.run:
            log.info("%s@%s missed (missedRunPolicy); not run", claim.jid, claim.occurrence_ms)
        next_ms = None if decision.next_fire is None else to_ms(decision.next_fire)
        return Advance(claim, next_ms, plan.cadence)

    def _start_metrics(self) -> None:
        """Push this beat's metrics into the store from a thread of their own, sampling
        the due set before each push (off the claim-and-publish path)."""
        if not self.settings.metrics:
            return
        board = MetricsBoard(self.store)
        self._pusher = MetricsPusher(
            process_registry("beat"),
            ProcessId("beat", self.consumer),
            board.write,
            self.settings.metrics_push_interval_s,
            before=[lambda: self._sample_due(board)],
        )
        self._pusher.start()

    def _sample_due(self, board: MetricsBoard) -> None:
        """The due set's depth and lag, at most once a second (pushes may be more often)."""
        now = time.monotonic()
        if now - self._last_due_sample < _SAMPLE_DUE_EVERY_S:
            return
        self._last_due_sample = now
        self.metrics.due(*board.due_sample())

    def _wait_for_work(self) -> None:
        """Block until the earliest due time (capped), or until a writer wakes us."""
        head = self.claims.next_due_ms()
        wait_s = float(self.max_interval or self.settings.beat_max_interval_s)
        if head is not None:
            wait_s = min(wait_s, max(0.0, (head - self.store.time_ms()) / 1000))
        if wait_s <= 0:
            return
        assert self._wake is not None, "setup_schedule subscribes before the first tick"
        self._wake.wait(wait_s)
