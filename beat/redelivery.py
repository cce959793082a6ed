"""A beat's second duty: deliver again the attempts whose message was lost.

The execution ledger (:mod:`scheduler.store.ledger`) holds every attempt handed to the broker
and not yet recorded. When an entry's time comes, a beat takes it (exactly once across
beats) and publishes the attempt again, with the same task id, through Celery's own
publisher (this is the rare path; any broker).

An overdue attempt whose queue still holds messages may simply be waiting its turn
behind a backlog; delivering it again would only add to that backlog, so it waits
another period. Once its queue is empty it is either in a worker's hands (running, or
prefetched, and then its lease lets only one delivery run) or lost, and it is sent.
A stalled attempt (taken by a worker whose lease expired without a record: the worker
died mid-attempt) is not in its queue any more, so it is sent at once. So is every
attempt handed out before the store's history changed (a failover, a restart): its
message may be gone with the old primary.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError

from scheduler.dispatch import publish_occurrence, route_for
from scheduler.domain.models import ActionType
from scheduler.observability.recorders import BeatRecorder
from scheduler.store.jobs import JobRecord, JobStore
from scheduler.store.ledger import Ledger, LedgerEntry

__all__ = ["Redelivery"]

log = logging.getLogger(__name__)


class Redelivery:
    """Publishes overdue ledger entries again, a batch at a time."""

    def __init__(
        self,
        app: Celery,
        store: JobStore,
        ledger: Ledger,
        batch: int,
        metrics: BeatRecorder | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.ledger = ledger
        self.batch = batch
        self.metrics = metrics or BeatRecorder(enabled=False)

    def run(self) -> int:
        """Deliver one batch of overdue attempts again; returns how many were sent."""
        stalled, overdue = self.ledger.owed(self.batch)
        if not stalled and not overdue:
            return 0
        # A stalled attempt left its queue; an overdue one may still wait in it.
        sent, sent_stalled = self._send(
            [(entry, False) for entry in stalled] + [(entry, True) for entry in overdue]
        )
        self.metrics.redelivered(sent_stalled, sent - sent_stalled)
        if sent:
            log.warning(
                "delivered %d attempt(s) again: published, never recorded (%d of them "
                "taken by a worker that stopped mid-attempt)",
                sent,
                sent_stalled,
            )
        return sent

    def after_history_change(self, history_id: str) -> int:
        """If the store's history changed (``history_id``, its replication id, is new: a
        failover, or a restart), deliver every attempt of the ledger again at once, queue
        backlog or not: the old primary may have taken their messages with it, and
        nothing tells which. Exactly one beat does, per change; returns how many."""
        entries = self.ledger.history_changed(history_id)
        sent = 0
        for start in range(0, len(entries), self.batch):
            chunk = entries[start : start + self.batch]
            sent += self._send([(entry, False) for entry in chunk])[0]
        self.metrics.redelivered(0, 0, failover=sent)
        if entries:
            log.warning(
                "the store's history changed (a failover, or a restart): delivered the "
                "%d attempt(s) handed out before it again, as their messages may be gone "
                "(a second delivery of one that ran is dropped)",
                sent,
            )
        return sent

    def _send(self, queued: Sequence[tuple[LedgerEntry, bool]]) -> tuple[int, int]:
        """Publish each entry again, unless its job is gone or (when it ``may wait``) its
        queue holds messages; returns how many were sent, and how many of those could not
        wait."""
        records = self._records([entry for entry, _ in queued])
        busy: dict[str, bool] = {}
        gone: list[LedgerEntry] = []
        sent = sent_now = 0
        for entry, may_wait in queued:
            record = records.get(entry.jid)
            action = self._action_type(record, entry)
            if record is None or action is None:
                gone.append(entry)  # deleted, or no error action any more: nothing owed
                continue
            queue = record.queue or route_for(action).queue(self.store.keys.prefix)
            if may_wait:
                if queue not in busy:  # asked once per queue and pass: each is a connection
                    busy[queue] = self._has_backlog(queue)
                if busy[queue]:
                    continue  # perhaps still waiting its turn; looked at again next period
            publish_occurrence(
                self.app,
                self.store.keys.prefix,
                entry.jid,
                entry.occurrence_ms,
                action,
                manual=entry.manual,
                error=entry.error,
                attempt=entry.attempt,
                queue=queue,
            )
            sent += 1
            sent_now += not may_wait
        self.ledger.forget(gone)
        return sent, sent_now

    def _records(self, entries: Sequence[LedgerEntry]) -> dict[str, JobRecord]:
        """The entries' jobs, in one round trip (deleted ones are left out)."""
        jids = sorted({entry.jid for entry in entries})
        return {record.jid: record for record in self.store.get_jobs(jids)}

    @staticmethod
    def _action_type(record: JobRecord | None, entry: LedgerEntry) -> ActionType | None:
        if record is None:
            return None
        action = record.properties.action
        if entry.error:
            return action.error_action.type if action.error_action else None
        return action.type

    def _has_backlog(self, queue: str) -> bool:
        """Whether ``queue`` holds messages waiting for a worker (a passive declare: the
        broker's own count, on Redis and on RabbitMQ alike)."""
        with self.app.connection_for_write() as connection:
            channel: Any = connection.channel()  # kombu's channels are untyped
            try:
                _, count, _ = channel.queue_declare(queue=queue, passive=True)
            except ChannelError:
                return False  # no such queue (Redis deletes an empty list): nothing waits
            finally:
                channel.close()
        return int(count) > 0
