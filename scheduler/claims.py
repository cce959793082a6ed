"""The beat's side of the store: claiming due occurrences, recovering, advancing.

See :mod:`scheduler.scripts` for the Lua behind each step and docs/architecture.md for
why a consumer-group stream holds the claims.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    one-shot and the occurrence it retries is ``occurrence_ms``.
    """

    stream_id: str
    jid: str
    occurrence_ms: int
    gen: str
    retry: Retry | None = None

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
        """Atomically claim up to ``batch`` due occurrences; returns (Redis now ms, claims)."""
        with redis_errors():
            now_ms, entries = self._claim(
                keys=[self.store.keys.due, self.store.keys.claims, self.store.keys.ledger],
                args=[
                    batch,
                    CLAIM_GROUP,
                    consumer,
                    self.store.keys.job_prefix,
                    self.redelivery_ms,
                ],
            )
        return int(now_ms), [_claim(entry) for entry in entries]

    def recover_claims(self, consumer: str, min_idle_ms: int, count: int) -> list[Claim]:
        """Take over claims another beat took and did not acknowledge in ``min_idle_ms``."""
        with redis_errors():
            _, entries, *_ = self.store.redis.xautoclaim(
                self.store.keys.claims, CLAIM_GROUP, consumer, min_idle_ms, count=count
            )
        return [_claim(entry) for entry in entries if entry and entry[1]]

    def load_for_dispatch(self, claims: Sequence[Claim]) -> list[dict[str, str]]:
        """The stored fields (def, state, gen) of each claimed job, in one round trip."""
        with redis_errors():
            pipe = self.store.redis.pipeline(transaction=False)
            for claim in claims:
                pipe.hmget(self.store.keys.job(claim.jid), "def", "state", "gen", "queue")
            rows = pipe.execute()
        fields = ("def", "state", "gen", "queue")
        return [dict(zip(fields, row, strict=True)) if row[0] else {} for row in rows]

    def advance(
        self, done: Sequence[tuple[Claim, int | None]], unpublished: Sequence[Claim] = ()
    ) -> None:
        """Reschedule dispatched jobs at their next occurrence and acknowledge the claims;
        the ``unpublished`` ones (not run: disabled, deleted, missed) leave the ledger."""
        if not done:
            return
        with redis_errors():
            pipe = self.store.redis.pipeline(transaction=False)
            if unpublished:
                pipe.zrem(self.store.keys.ledger, *(claim.ledger_member for claim in unpublished))
            for claim, next_ms in done:
                if claim.retry is not None:
                    continue  # one-shot: nothing to reschedule
                self._advance(
                    keys=[self.store.keys.due, self.store.keys.job(claim.jid)],
                    args=[
                        claim.jid,
                        claim.gen,
                        "" if next_ms is None else next_ms,
                        claim.occurrence_ms,
                    ],
                    client=pipe,
                )
            ids = [claim.stream_id for claim, _ in done]
            pipe.xack(self.store.keys.claims, CLAIM_GROUP, *ids)
            pipe.xdel(self.store.keys.claims, *ids)
            pipe.execute()

    def next_due_ms(self) -> int | None:
        """The earliest score in the due set (None when nothing is scheduled)."""
        with redis_errors():
            head = self.store.redis.zrange(self.store.keys.due, 0, 0, withscores=True)
        return int(head[0][1]) if head else None


def _claim(entry: Sequence[Any]) -> Claim:
    stream_id, flat = entry[0], entry[1]
    fields = dict(zip(flat[::2], flat[1::2], strict=True)) if isinstance(flat, list) else flat
    member, due_ms = fields["j"], int(float(fields["t"]))
    if "|" not in member:
        return Claim(stream_id=stream_id, jid=member, occurrence_ms=due_ms, gen=fields["g"])
    jid, kind, occurrence, attempt = member.split("|")
    return Claim(
        stream_id=stream_id,
        jid=jid,
        occurrence_ms=int(occurrence),
        gen=fields["g"],
        retry=Retry(attempt=int(attempt), error=kind == "e"),
    )
