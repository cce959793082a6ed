"""The execution ledger: every attempt handed to the broker and not yet recorded.

A message can be lost between the broker and a worker: kombu's Redis transport pops a
message (BRPOP) and books it as unacknowledged in a second command, so a worker killed
between the two takes the message with it, and nothing in the broker remembers it. The
ledger is Takt's own memory of what must still happen. Whoever hands an attempt to the
broker enters it first, with a time to deliver it again (now + the redelivery timeout):

- a beat, for each occurrence it claims (in the claim script itself, so before it
  publishes; it removes the ones it then decides not to run);
- the API, for a manual run;
- a worker, for the attempt that follows a failed one (a retry or the error action), in
  the same script that records the failed attempt.

A worker removes an attempt when it records it (in the same script) or finds that it
must not run (job deleted or disabled, recorded already). An entry whose time comes is
still owed: a beat takes it (exactly once, by a script that also pushes its time on by
another period) and publishes it again. Delivering twice is safe, since the attempt's
lease lets only one delivery run (see :mod:`workers.execution`).

When the store's history changes under the deployment (a failover promoted a replica,
or the server restarted from its append-only file), the messages published shortly
before may be gone with it while their entries were kept: the first beat that sees the
change takes every entry and delivers it again at once (:meth:`Ledger.history_changed`),
rather than a redelivery timeout later.

A worker that takes an attempt's lease also books the attempt as *taken* until the lease
expires (the action's timeout plus a margin). A taken attempt whose lease expired without
a record was in the hands of a worker that died: it is stalled, and a beat delivers it
again at once, whatever the redelivery timeout and whatever waits in its queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from scheduler.store.codecs import LedgerEntry
from scheduler.store.jobs import JobStore, redis_errors
from scheduler.store.scripts import HISTORY_CHANGED, REDELIVER

__all__ = ["Ledger", "LedgerEntry", "Owed"]


class Owed(NamedTuple):
    """What a beat must deliver again: attempts a dead worker had taken (``stalled``), and
    attempts published and never taken or recorded in time (``overdue``)."""

    stalled: list[LedgerEntry]
    overdue: list[LedgerEntry]


class Ledger:
    """The ledger of one deployment; ``redelivery_ms`` is how long an entry waits."""

    def __init__(self, store: JobStore, redelivery_ms: int) -> None:
        self.store = store
        self.redelivery_ms = redelivery_ms
        self._redeliver = store.redis.register_script(REDELIVER)
        self._history_changed = store.redis.register_script(HISTORY_CHANGED)

    def expect(self, entry: LedgerEntry, now_ms: int) -> None:
        """Enter an attempt about to be published (before publishing it)."""
        with redis_errors():
            self.store.redis.zadd(
                self.store.keys.ledger, {entry.member: now_ms + self.redelivery_ms}
            )

    def forget(self, entries: Iterable[LedgerEntry]) -> None:
        """Remove attempts that will not run, or ran already."""
        members = [entry.member for entry in entries]
        if members:
            with redis_errors(), self.store.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(self.store.keys.ledger, *members)
                pipe.zrem(self.store.keys.ledger_taken, *members)
                pipe.execute()

    def owed(self, count: int) -> Owed:
        """Take up to ``count`` stalled and ``count`` overdue entries, pushing each one's
        time on by a period."""
        with redis_errors():
            stalled, overdue = self._redeliver(
                keys=[self.store.keys.ledger, self.store.keys.ledger_taken],
                args=[count, self.redelivery_ms],
            )
        return Owed(
            [LedgerEntry.parse(member) for member in stalled],
            [LedgerEntry.parse(member) for member in overdue],
        )

    def history_changed(self, history_id: str) -> list[LedgerEntry]:
        """Every attempt to deliver again because the store's history changed under it
        (``history_id`` differs from the one recorded: see HISTORY_CHANGED), taken by
        exactly one caller; empty when it did not change, or another caller took them."""
        with redis_errors():
            members = self._history_changed(
                keys=[
                    self.store.keys.ledger_history,
                    self.store.keys.ledger,
                    self.store.keys.ledger_taken,
                ],
                args=[history_id, self.redelivery_ms],
            )
        return [LedgerEntry.parse(member) for member in members]

    def due_at(self, entry: LedgerEntry) -> int | None:
        """When the attempt is delivered again (epoch ms), or None when it is not owed."""
        with redis_errors():
            score = self.store.redis.zscore(self.store.keys.ledger, entry.member)
        return None if score is None else int(score)
