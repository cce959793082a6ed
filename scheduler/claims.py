"""The beat's side of the store: claiming due occurrences, recovering, advancing.

See :mod:`scheduler.scripts` for the Lua behind each step and docs/architecture.md for
why a consumer-group stream holds the claims.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from scheduler.keys import CLAIM_GROUP, KeySchema
from scheduler.scripts import ADVANCE, CLAIM_DUE
from scheduler.store import JobStore, redis_errors

__all__ = ["Claim", "ClaimQueue", "Retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """A claimed one-shot retry: which attempt, of which action."""

    attempt: int
    error: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """One due occurrence a beat claimed and must publish, then acknowledge.

    A schedule occurrence advances the job to its next one; a retry (``retry`` set) is
    one-shot and the occurrence it retries is ``occurrence_ms``. ``definition``,
    ``state`` and ``queue`` are the job's stored fields as the claim read them
    (``definition`` is empty when the job is gone). ``stream_id`` is the claims-stream
    entry it came in, which holds the other claims of its batch.
    """

    stream_id: str
    jid: str
    occurrence_ms: int
    gen: str
    retry: Retry | None = None
    definition: str = ""
    state: str = ""
    queue: str = ""

    @property
    def ledger_member(self) -> str:
        """The attempt this claim enters in the execution ledger (see CLAIM_DUE)."""
        attempt, error = (self.retry.attempt, self.retry.error) if self.retry else (0, False)
        return KeySchema.ledger_member(
            self.jid, self.occurrence_ms, attempt, error=error, manual=False
        )


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

    def claim_due(self, consumer: str, batch: int) -> tuple[int, list[Claim]]:
        """Atomically claim up to ``batch`` due occurrences with their jobs' fields, in one
        round trip; returns (Redis now ms, claims)."""
        with redis_errors():
            now_ms, stream_ids, rows = self._claim(
                keys=[self.store.keys.due, self.store.keys.claims, self.store.keys.ledger],
                args=[
                    batch,
                    CLAIM_GROUP,
                    consumer,
                    self.store.keys.job_prefix,
                    self.redelivery_ms,
                ],
            )
        # Claim k came in the stream entry k // _CLAIMS_PER_ENTRY (entries in XADD order).
        return int(now_ms), [
            _claim(stream_ids[i // (6 * _CLAIMS_PER_ENTRY)], *rows[i : i + 6])
            for i in range(0, len(rows), 6)
        ]

    def recover_claims(self, consumer: str, min_idle_ms: int, count: int) -> list[Claim]:
        """Take over claims another beat took and did not acknowledge in ``min_idle_ms``
        (up to ``count``, rounded up to whole stream entries), with their jobs' fields."""
        entries = max(1, -(-count // _CLAIMS_PER_ENTRY))
        with redis_errors():
            _, taken, *_ = self.store.redis.xautoclaim(
                self.store.keys.claims, CLAIM_GROUP, consumer, min_idle_ms, count=entries
            )
            found = [
                (stream_id, member, value)
                for stream_id, fields in taken
                if fields
                for member, value in _pairs(fields)
            ]
            pipe = self.store.redis.pipeline(transaction=False)
            for _, member, _ in found:
                pipe.hmget(self.store.keys.job(member.split("|", 1)[0]), "def", "state", "queue")
            jobs = pipe.execute() if found else []
        claims = []
        for (stream_id, member, value), job in zip(found, jobs, strict=True):
            due_ms, gen = value.split("|")
            claims.append(_claim(stream_id, member, due_ms, gen, *(f or "" for f in job)))
        return claims

    def advance(
        self, done: Sequence[tuple[Claim, int | None]], unpublished: Sequence[Claim] = ()
    ) -> None:
        """Reschedule dispatched jobs at their next occurrence and acknowledge the claims;
        the ``unpublished`` ones (not run: disabled, deleted, missed) leave the ledger."""
        if not done:
            return
        args: list[str | int] = [self.store.keys.job_prefix]
        for claim, next_ms in done:
            if claim.retry is None:  # a retry is one-shot: nothing to reschedule
                args += (claim.jid, claim.gen, "" if next_ms is None else next_ms)
                args.append(claim.occurrence_ms)
        ids = list({claim.stream_id: None for claim, _ in done})
        with redis_errors():
            pipe = self.store.redis.pipeline(transaction=False)
            if unpublished:
                pipe.zrem(self.store.keys.ledger, *(claim.ledger_member for claim in unpublished))
            if len(args) > 1:
                self._advance(keys=[self.store.keys.due], args=args, client=pipe)
            pipe.xack(self.store.keys.claims, CLAIM_GROUP, *ids)
            pipe.xdel(self.store.keys.claims, *ids)
            pipe.execute()

    def next_due_ms(self) -> int | None:
        """The earliest score in the due set (None when nothing is scheduled)."""
        with redis_errors():
            head = self.store.redis.zrange(self.store.keys.due, 0, 0, withscores=True)
        return int(head[0][1]) if head else None


#: Claims per claims-stream entry (see CLAIM_DUE).
_CLAIMS_PER_ENTRY = 500


def _pairs(fields: Any) -> Iterable[tuple[str, str]]:
    if isinstance(fields, dict):
        return fields.items()
    return zip(fields[::2], fields[1::2], strict=True)


def _claim(
    stream_id: str,
    member: str,
    due_ms: str,
    gen: str,
    definition: str,
    state: str,
    queue: str,
) -> Claim:
    if "|" not in member:
        return Claim(stream_id, member, int(float(due_ms)), gen, None, definition, state, queue)
    jid, kind, occurrence, attempt = member.split("|")
    retry = Retry(attempt=int(attempt), error=kind == "e")
    return Claim(stream_id, jid, int(occurrence), gen, retry, definition, state, queue)
