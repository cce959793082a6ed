"""The metrics snapshots of a deployment's processes, and what a scrape reads from the store.

Each beat and worker process writes a snapshot of its metrics every few seconds
(:class:`scheduler.observability.MetricsPusher`); the API's ``/metrics`` reads them all
back. Keys (beside :class:`~scheduler.store.keys.KeySchema`'s, with the same hash tag):

=====================================  ======  =========================  ==================
key                                    type    TTL                        written by
=====================================  ======  =========================  ==================
``{p}:metrics:{role}:{process}``       string  3 push intervals           beat, worker
                                                                          (its snapshot, JSON
                                                                          with ``sv``)
``{p}:metrics``                        zset    none; members dropped      beat, worker
                                               when their snapshot has    (score = last push,
                                               expired                    epoch ms; member =
                                                                          ``role:process``);
                                                                          API (drops expired)
=====================================  ======  =========================  ==================

The zset is the index a scrape reads (no ``SCAN`` over a keyspace of jobs); the string's
TTL says who is alive. A reader drops the members whose snapshot expired; a writer drops
members not pushed for a day, so a deployment never scraped does not collect them.
"""

from __future__ import annotations

import time

from scheduler.observability import ProcessId, StoreGauges
from scheduler.store.jobs import JobStore, redis_errors

__all__ = ["STATES_CAP", "STATES_EVERY_S", "DueSample", "MetricsBoard"]

_FORGET_AFTER_MS = 24 * 3600 * 1000
#: Jobs by state are counted at most this often per process (seconds) ...
STATES_EVERY_S = 60.0
#: ... over at most this many jobs, read this many per round trip.
STATES_CAP = 200_000
_STATES_CHUNK = 2_000

#: The due set's size and the age of its oldest overdue entry in seconds (0: none).
DueSample = tuple[int, float]


class MetricsBoard:
    """Where processes leave their metrics for the API to serve."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        tag = "{" + store.keys.prefix + "}"
        self._index = f"{tag}:metrics"
        self._key_prefix = f"{tag}:metrics:"
        self._states: tuple[dict[str, int], int] | None = None
        self._states_at = 0.0

    def snapshot_key(self, process: ProcessId) -> str:
        return self._key_prefix + process.member

    def write(self, process: ProcessId, payload: str, ttl_ms: int) -> None:
        """Leave ``process``'s snapshot for ``ttl_ms`` (one transaction)."""
        now_ms = int(time.time() * 1000)
        with redis_errors():
            pipe = self.store.redis.pipeline(transaction=True)
            pipe.set(self.snapshot_key(process), payload, px=ttl_ms)
            pipe.zadd(self._index, {process.member: now_ms})
            pipe.zremrangebyscore(self._index, "-inf", now_ms - _FORGET_AFTER_MS)
            pipe.execute()

    def snapshots(self) -> list[str]:
        """Every live snapshot (expired ones leave the index)."""
        with redis_errors():
            members = [str(member) for member in self.store.redis.zrange(self._index, 0, -1)]
            if not members:
                return []
            payloads = self.store.redis.mget([self._key_prefix + m for m in members])
            gone = [m for m, payload in zip(members, payloads, strict=True) if payload is None]
            if gone:
                self.store.redis.zrem(self._index, *gone)
        return [str(payload) for payload in payloads if payload is not None]

    def gauges(self) -> StoreGauges:
        """The store's side of a scrape: job counts, the ledger's size and the snapshots
        (a pipeline of ZCARDs: one per collection, which are few beside jobs), and the
        jobs by state (counted at most every :data:`STATES_EVERY_S`, see :meth:`states`)."""
        keys = self.store.keys
        with redis_errors():
            cids = [str(cid) for cid in self.store.redis.zrange(keys.collections, 0, -1)]
            pipe = self.store.redis.pipeline(transaction=False)
            for cid in cids:
                pipe.zcard(keys.jobs(cid))
            pipe.zcard(keys.finished)
            pipe.zcard(keys.ledger)
            pipe.zcard(keys.ledger_taken)
            *per_collection, finished, owed, taken = pipe.execute()
        by_state, counted = self.states(cids)
        return StoreGauges(
            jobs=sum(per_collection),
            finished_jobs=finished,
            ledger_owed=owed,
            ledger_taken=taken,
            snapshots=self.snapshots(),
            jobs_by_state=by_state,
            jobs_counted=counted,
        )

    def states(self, cids: list[str]) -> tuple[dict[str, int], int]:
        """Jobs by state, and how many jobs that covers. No index holds the states, so
        each job's ``state`` field is read (pipelines of :data:`_STATES_CHUNK`), at most
        :data:`STATES_CAP` jobs (a larger store's counts cover that many: the second
        figure says so), and at most once every :data:`STATES_EVERY_S` per process:
        scrapes in between get the last count."""
        now = time.monotonic()
        if self._states is not None and now - self._states_at < STATES_EVERY_S:
            return self._states
        keys = self.store.keys
        counts: dict[str, int] = {}
        counted = 0
        with redis_errors():
            for cid in cids:
                stop = STATES_CAP - counted - 1
                names = [str(name) for name in self.store.redis.zrange(keys.jobs(cid), 0, stop)]
                for start in range(0, len(names), _STATES_CHUNK):
                    pipe = self.store.redis.pipeline(transaction=False)
                    for name in names[start : start + _STATES_CHUNK]:
                        pipe.hget(keys.job(f"{cid}/{name}"), "state")
                    for state in pipe.execute():
                        if state is not None:  # deleted meanwhile
                            counts[str(state)] = counts.get(str(state), 0) + 1
                            counted += 1
                if counted >= STATES_CAP:
                    break
        self._states, self._states_at = (counts, counted), now
        return self._states

    def due_sample(self) -> DueSample:
        """The due set's size and how long its earliest entry is overdue, by Redis's clock."""
        with redis_errors():
            pipe = self.store.redis.pipeline(transaction=False)
            pipe.zcard(self.store.keys.due)
            pipe.zrange(self.store.keys.due, 0, 0, withscores=True)
            pipe.time()
            size, head, (seconds, micros) = pipe.execute()
        if not head:
            return size, 0.0
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return size, max(0.0, (now_ms - float(head[0][1])) / 1000)
