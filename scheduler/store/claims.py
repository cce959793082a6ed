"""The beat's side of the store: claiming due occurrences, recovering, advancing, and
waiting for the next due time or a writer's wake-up.

See :mod:`scheduler.store.scripts` for the Lua behind each step and docs/architecture.md for
why a consumer-group stream holds the claims.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import redis

from scheduler.store.codecs import ClaimValue, LedgerEntry, job_of, retry_of
from scheduler.store.jobs import JobStore, redis_errors
from scheduler.store.keys import CLAIM_GROUP
from scheduler.store.scripts import ADVANCE, CLAIM_DUE

__all__ = [
    "Advance",
    "Claim",
    "ClaimBatch",
    "ClaimQueue",
    "PendingClaim",
    "Retry",
    "Scheduled",
    "WakeChannel",
]


@dataclass(frozen=True, slots=True)
class Retry:
    """A claimed one-shot retry: which attempt, of which action."""

    attempt: int
    error: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """One due occurrence a beat claimed and must plan, publish, then acknowledge.

    A schedule occurrence advances the job to its next one; a retry (``retry`` set) is
    one-shot and the occurrence it retries is ``occurrence_ms``. ``definition``,
    ``state``, ``queue`` and ``start`` are the job's stored fields as the claim read them
    (``definition`` is empty when the job is gone). ``start`` is the job's start time
    (ISO 8601), '' when it has none or was stored before the field (then its definition
    holds it).
    """

    jid: str
    occurrence_ms: int
    gen: str
    retry: Retry | None = None
    definition: str = ""
    state: str = ""
    queue: str = ""
    start: str = ""

    @property
    def ledger_member(self) -> str:
        """The attempt this claim enters in the execution ledger (see CLAIM_DUE)."""
        attempt, error = (self.retry.attempt, self.retry.error) if self.retry else (0, False)
        return LedgerEntry(self.jid, self.occurrence_ms, attempt, error=error).member


class Scheduled(NamedTuple):
    """A scheduled occurrence the claim script already put back at its job's next one
    (the job's cadence, see CLAIM_DUE): the beat only publishes it."""

    jid: str
    occurrence_ms: int
    action_type: str
    queue: str


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    """What one claim took: the claims-stream entries that hold it (to acknowledge once
    published), the occurrences to plan and those only to publish."""

    now_ms: int
    stream_ids: list[str]
    claims: list[Claim]
    scheduled: list[Scheduled]

    def __len__(self) -> int:
        return len(self.claims) + len(self.scheduled)


class Advance(NamedTuple):
    """A planned claim: when its job fires next (None: never), and the cadence the claim
    script may follow from now on ('' = the beat keeps planning it; see ADVANCE)."""

    claim: Claim
    next_ms: int | None
    cadence: str = ""


class PendingClaim:
    """A claim sent and not yet read (see :meth:`ClaimQueue.start_claim`). Read it
    once, with :meth:`result`; claims never read wait in the stream for recovery."""

    def __init__(self, pool: Any, connection: Any, again: Callable[[], Any]) -> None:
        self._pool, self._connection, self._again = pool, connection, again

    def result(self) -> ClaimBatch:
        with redis_errors():
            try:
                reply = self._connection.read_response()
            except redis.exceptions.NoScriptError:  # Redis restarted: load it, claim again
                reply = self._again()
            except BaseException:
                self._connection.disconnect()  # its reply may still be on its way
                raise
            finally:
                self._pool.release(self._connection)
        return _batch(reply)

    def abandon(self) -> None:
        """Drop the claim unread: its occurrences stay pending in the claims stream, and a
        beat recovers them once they have been idle long enough."""
        self._connection.disconnect()
        self._pool.release(self._connection)


class ClaimQueue:
    """Due occurrences, claimed exactly once across any number of beats."""

    def __init__(self, store: JobStore, redelivery_ms: int) -> None:
        self.store = store
        self.redelivery_ms = redelivery_ms
        self._claim = store.redis.register_script(CLAIM_DUE)
        self._advance = store.redis.register_script(ADVANCE)

    def ensure_claim_group(self) -> None:
        with redis_errors():
            try:
                self.store.redis.xgroup_create(
                    self.store.keys.claims, CLAIM_GROUP, id="0", mkstream=True
                )
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def claim_due(self, consumer: str, batch: int) -> ClaimBatch:
        """Atomically claim up to ``batch`` due occurrences with their jobs' fields, in one
        round trip, by Redis's clock."""
        return self.start_claim(consumer, batch).result()

    def start_claim(self, consumer: str, batch: int) -> PendingClaim:
        """Send :meth:`claim_due`'s script and return at once: the beat plans and
        publishes the batch it has while Redis claims the next one."""
        keys = [self.store.keys.due, self.store.keys.claims, self.store.keys.ledger]
        args: list[str | int] = [batch, CLAIM_GROUP, consumer, self.store.keys.job_prefix]
        args += (self.redelivery_ms, _CLAIMS_PER_ENTRY)
        pool = self.store.redis.connection_pool
        with redis_errors():
            connection = pool.get_connection()
            try:
                connection.send_command(  # type: ignore[no-untyped-call]
                    "EVALSHA", self._claim.sha, len(keys), *keys, *args
                )
            except BaseException:
                pool.release(connection)
                raise
        return PendingClaim(pool, connection, partial(self._claim, keys=keys, args=args))

    def recover_claims(self, consumer: str, min_idle_ms: int, count: int) -> ClaimBatch:
        """Take over claims another beat took and did not acknowledge in ``min_idle_ms``
        (up to ``count``, rounded up to whole stream entries), with their jobs' fields."""
        entries = max(1, -(-count // _CLAIMS_PER_ENTRY))
        with redis_errors():
            _, taken, *_ = self.store.redis.xautoclaim(
                self.store.keys.claims, CLAIM_GROUP, consumer, min_idle_ms, count=entries
            )
            found = [
                (member, value) for _, fields in taken if fields for member, value in _pairs(fields)
            ]
            pipe = self.store.redis.pipeline(transaction=False)
            for member, _ in found:
                pipe.hmget(self.store.keys.job(job_of(member)), *_JOB_FIELDS)
            jobs = pipe.execute() if found else []
            now_ms = self.store.time_ms()
        claims: list[Claim] = []
        scheduled: list[Scheduled] = []
        for (member, value), job in zip(found, jobs, strict=True):
            definition, state, queue, start = (field or "" for field in job)
            claimed = ClaimValue.parse(value)
            if claimed.action_type:  # the claim script advanced it already
                scheduled.append(Scheduled(member, claimed.due_ms, claimed.action_type, queue))
            else:
                fields = (definition, state, queue, start)
                claims.append(_claim(member, claimed.due_ms, claimed.gen, *fields))
        return ClaimBatch(now_ms, [stream_id for stream_id, _ in taken], claims, scheduled)

    def advance(
        self,
        stream_ids: Sequence[str],
        done: Sequence[Advance],
        unpublished: Sequence[Claim] = (),
    ) -> None:
        """Reschedule planned jobs at their next occurrence and acknowledge the claims of
        a batch; the ``unpublished`` ones (not run: disabled, deleted, missed) leave the
        ledger."""
        if not stream_ids:
            return
        args: list[str | int] = [self.store.keys.job_prefix]
        for claim, next_ms, cadence in done:
            if claim.retry is None:  # a retry is one-shot: nothing to reschedule
                args += (claim.jid, claim.gen, "" if next_ms is None else next_ms)
                args += (claim.occurrence_ms, cadence)
        with redis_errors():
            pipe = self.store.redis.pipeline(transaction=False)
            if unpublished:
                pipe.zrem(self.store.keys.ledger, *(claim.ledger_member for claim in unpublished))
            if len(args) > 1:
                self._advance(keys=[self.store.keys.due], args=args, client=pipe)
            pipe.xack(self.store.keys.claims, CLAIM_GROUP, *stream_ids)
            pipe.xdel(self.store.keys.claims, *stream_ids)
            pipe.execute()

    def next_due_ms(self) -> int | None:
        """The earliest score in the due set (None when nothing is scheduled)."""
        with redis_errors():
            head = self.store.redis.zrange(self.store.keys.due, 0, 0, withscores=True)
        return int(head[0][1]) if head else None


class WakeChannel:
    """The channel writers publish on when they schedule a job (``{p}:wake``): a beat
    subscribes once and waits on it between batches."""

    def __init__(self, store: JobStore) -> None:
        self._pubsub = store.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        with redis_errors():
            self._pubsub.subscribe(store.keys.wake)

    def wait(self, timeout_s: float) -> None:
        """Block until a writer wakes us, or for ``timeout_s``; the wake-ups queued
        behind the first are drained (one is enough)."""
        with redis_errors():
            if self._pubsub.get_message(timeout=timeout_s) is not None:
                while self._pubsub.get_message(timeout=0) is not None:
                    pass

    def close(self) -> None:
        self._pubsub.close()


#: The job hash fields a claim left to the beat carries (as CLAIM_DUE returns them).
_JOB_FIELDS = ("def", "state", "queue", "startTime")
#: Claims per claims-stream entry: the claim script writes one entry per this many (its
#: ``claims_per_entry``), and recovery reads whole entries.
_CLAIMS_PER_ENTRY = 500


def _batch(reply: Any) -> ClaimBatch:
    now_ms, stream_ids, advanced, planned = reply
    scheduled = [
        Scheduled(advanced[i], int(advanced[i + 1]), advanced[i + 2], advanced[i + 3])
        for i in range(0, len(advanced), 4)
    ]
    size = 3 + len(_JOB_FIELDS)  # member, due ms, gen, then the job's fields
    claims = [_claim(*planned[i : i + size]) for i in range(0, len(planned), size)]
    return ClaimBatch(int(now_ms), stream_ids, claims, scheduled)


def _pairs(fields: Any) -> Iterable[tuple[str, str]]:
    if isinstance(fields, dict):
        return fields.items()
    return zip(fields[::2], fields[1::2], strict=True)


def _claim(
    member: str,
    due_ms: str | int,
    gen: str,
    definition: str,
    state: str,
    queue: str,
    start: str,
) -> Claim:
    retry = retry_of(member)
    if retry is None:
        return Claim(member, int(float(due_ms)), gen, None, definition, state, queue, start)
    again = Retry(attempt=retry.attempt, error=retry.error)
    return Claim(retry.jid, retry.occurrence_ms, gen, again, definition, state, queue, start)
