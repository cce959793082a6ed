"""Which jobs have an attempt in progress: waiting in the broker, running, or due again.

The execution ledger (:mod:`scheduler.store.ledger`) is the source: it holds every attempt that
was handed to the broker and is not yet recorded, from the moment a beat claims an
occurrence, the API starts a job by hand or a worker schedules a retry, until the worker
records the attempt (in the same script that writes the history entry). So a job is in
progress exactly while it has a ledger entry, and the attempt's lease
(``{p}:lease:{jid}:{occ}:{tag}``, ``running`` while a worker holds it) tells whether a
worker is running it now.

Cost: one ``ZSCAN`` pass over the ledger, matched by Redis against the jobs' common id
prefix (for a list of a collection's jobs, the collection), plus one pipelined ``GET`` of
a lease per attempt found. The ledger holds only attempts in flight (at most the broker's
backlog), not the jobs, so the cost does not grow with the number of jobs stored; one call
answers a whole page of jobs.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from scheduler.store.jobs import JobStore, redis_errors
from scheduler.store.ledger import LedgerEntry

__all__ = ["Activity", "in_progress"]

#: How many ledger members Redis looks at per ZSCAN step.
_SCAN_COUNT = 1000
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class Activity(StrEnum):
    """What a job in progress is doing now."""

    QUEUED = "Queued"  # handed to the broker, no worker holds it yet
    RUNNING = "Running"  # a worker holds its lease: the action is running
    RETRYING = "Retrying"  # a failed attempt was recorded; the next one waits for its time


def in_progress(store: JobStore, jids: Iterable[str]) -> dict[str, Activity]:
    """The jobs among ``jids`` with an attempt in progress, and what each is doing.

    Jobs with nothing in progress are left out: ``in_progress(store, [jid]).get(jid)`` is
    None for an idle job.

    Raises:
        StoreError: Redis did not answer.
    """
    wanted = set(jids)
    if not wanted:
        return {}
    entries = [e for e in _ledger_entries(store, _common_prefix(wanted)) if e.jid in wanted]
    if not entries:
        return {}
    with redis_errors():
        pipe = store.redis.pipeline(transaction=False)
        for entry in entries:
            pipe.get(store.keys.lease(entry.jid, entry.occurrence_ms, _tag(entry)))
        leases = pipe.execute()
    found: dict[str, Activity] = {}
    for entry, lease in zip(entries, leases, strict=True):
        activity = _activity(entry, lease)
        if found.get(entry.jid) is not Activity.RUNNING:
            found[entry.jid] = activity
    return found


def _common_prefix(names: set[str]) -> str:
    """The longest start all ``names`` share, character by character (a glob prefix)."""
    first, last = min(names), max(names)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]


def _ledger_entries(store: JobStore, prefix: str) -> list[LedgerEntry]:
    match = prefix.translate(_GLOB_SPECIAL) + "*"
    with redis_errors():
        members = [
            member
            for member, _ in store.redis.zscan_iter(
                store.keys.ledger, match=match, count=_SCAN_COUNT
            )
        ]
    return [LedgerEntry.parse(m if isinstance(m, str) else m.decode()) for m in members]


def _tag(entry: LedgerEntry) -> str:
    """The attempt's name in its lease key (as :attr:`workers.execution.RunRequest.tag`)."""
    return f"{'e' if entry.error else 'm'}{entry.attempt}"


def _activity(entry: LedgerEntry, lease: str | bytes | None) -> Activity:
    if lease in ("running", b"running"):
        return Activity.RUNNING
    if entry.attempt > 0 and not entry.error:
        return Activity.RETRYING
    return Activity.QUEUED
