"""The Redis job store: collections, jobs, the due set, status and history.

Every key comes from :mod:`scheduler.store.keys`; every multi-step write is a MULTI transaction
or one of the Lua scripts in :mod:`scheduler.store.scripts`. Redis errors are translated into
:class:`~scheduler.errors.StoreError` at this boundary.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler.clock import from_ms, to_ms
from scheduler.domain.models import (
    STORED,
    HistoryEntry,
    JobCollection,
    JobExecutionStatus,
    JobHistoryActionName,
    JobProperties,
    JobState,
    JobStatus,
)
from scheduler.domain.planning import job_cadence
from scheduler.errors import (
    CollectionNotFound,
    JobNotFound,
    SchemaTooNew,
    StoreError,
    UnreadableJob,
    WriteNotReplicated,
)
from scheduler.store.codecs import RetryMember
from scheduler.store.connections import client_for
from scheduler.store.evalsha import evalsha
from scheduler.store.keys import KeySchema
from scheduler.store.scripts import (
    ACQUIRE_LEASE,
    CLAIM_RUNNING,
    PUT_JOB,
    READ_AND_LEASE,
    RECORD_ATTEMPT,
    RELEASE_RUNNING,
    SET_LEASE_TTL,
)

__all__ = [
    "HISTORY_MAX_ENTRIES",
    "SCHEMA_VERSION",
    "Attempt",
    "CollectionRecord",
    "JobRecord",
    "JobStore",
    "JobToRun",
    "Lease",
    "NewJob",
    "SaveContext",
    "StoredHistoryEntry",
    "queue_put_and_get",
    "queue_save_context",
    "redis_errors",
    "require_acknowledged",
    "save_context_from",
    "saved_job",
]

log = logging.getLogger(__name__)

#: Version of the JSON this code writes; a newer one in Redis is refused.
SCHEMA_VERSION = 1
#: History kept per job (Azure keeps 60 days; the retention job trims by age).
HISTORY_MAX_ENTRIES = 1000
_LEASE_DONE_TTL_MS = 24 * 3600 * 1000
#: Validated job definitions a store keeps for its worker's reads (read_and_lease): a
#: recurring job's attempts then skip pydantic's validation of its definition (37 µs of a
#: minutely Http job's, down to 10). One kept takes about 3.5 kB and twice its stored
#: length; longer ones than ``_DEFINITION_KEPT_MAX_CHARS`` are validated each time, so
#: the cache stays under 50 MB (about 15 MB with definitions of a few hundred characters).
_DEFINITIONS_KEPT = 4096
_DEFINITION_KEPT_MAX_CHARS = 4096


@contextmanager
def redis_errors() -> Iterator[None]:
    """Translate redis-py's exceptions into :class:`StoreError` (the one boundary)."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreError(f"job store: {exc}") from exc


def require_acknowledged(acknowledged: int, required: int, timeout_ms: int) -> None:
    """Raise :class:`WriteNotReplicated` when ``WAIT required timeout_ms`` answered fewer
    replicas than required (shared by the sync and the asyncio store)."""
    if acknowledged < required:
        raise WriteNotReplicated.of(acknowledged, required, timeout_ms)


def _dump(payload: dict[str, Any]) -> str:
    return json.dumps({"sv": SCHEMA_VERSION, **payload}, separators=(",", ":"))


def _load(raw: str | bytes, what: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(raw)
    version = payload.pop("sv", None)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{what} has schema version {version!r}; this Takt knows up to {SCHEMA_VERSION}"
        )
    return payload


def _optional_ms(raw: str | None) -> int | None:
    return int(raw) if raw else None


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    cid: str
    collection: JobCollection


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored: its definition plus the server-controlled state and status."""

    jid: str
    properties: JobProperties
    gen: int
    finished_at_ms: int | None
    last_occurrence_ms: int | None
    queue: str | None = None  # the job's or its collection's worker pool, if any

    @property
    def state(self) -> JobState:
        return self.properties.state or JobState.ENABLED


@dataclass(frozen=True, slots=True)
class Lease:
    """An attempt's lease: taken by us, or recorded already (done), or not owed by the
    execution ledger, or held elsewhere (for ``busy_ms`` more)."""

    taken: bool
    done: bool = False
    owed: bool = True
    busy_ms: int = 0

    @classmethod
    def from_reply(cls, reply: Sequence[Any]) -> Lease:
        """The lease of ``take_lease.lua``'s reply."""
        if int(reply[0]) == 1:
            return cls(taken=True)
        if reply[1] == "done":
            return cls(taken=False, done=True)
        if reply[1] == "not-owed":
            return cls(taken=False, owed=False)
        return cls(taken=False, busy_ms=max(int(reply[2]), 0))


@dataclass(frozen=True, slots=True)
class JobToRun:
    """A worker's first read of an attempt (:meth:`JobStore.read_and_lease`): its job,
    decoded on demand, so that the lease's outcome is known even when the job cannot be
    read; the collection's state; and the lease, when the read took it or was refused it
    (None: not tried, as the job or its collection is not Enabled, or no TTL was given)."""

    jid: str
    collection_state: str | None
    lease: Lease | None
    _fields: dict[str, str] = field(repr=False)
    _decode: Callable[[str, dict[str, str]], JobRecord] = field(repr=False)

    def record(self) -> JobRecord:
        """The job; the decoder's own errors when it cannot be read (a worker records
        exactly what it cannot read)."""
        return self._decode(self.jid, self._fields)


@dataclass(frozen=True, slots=True)
class NewJob:
    """One job for :meth:`JobStore.put_jobs`."""

    jid: str
    properties: JobProperties
    owner: str
    next_fire_ms: int | None
    queue: str | None = None


def _scheduled(job: NewJob) -> bool:
    return job.next_fire_ms is not None and (job.properties.state or JobState.ENABLED) is (
        JobState.ENABLED
    )


@dataclass(frozen=True, slots=True)
class StoredHistoryEntry:
    entry_id: str
    entry: HistoryEntry


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one attempt, as the worker records it."""

    jid: str
    occurrence_ms: int
    tag: str
    entry_id: str
    entry: HistoryEntry
    first_attempt: bool
    failed: bool
    faulted: bool
    final_state: JobState | None
    finished_ms: int | None
    #: This attempt's execution-ledger member, and the one that follows it (a retry or
    #: the error action) with the time to deliver it again (see scheduler.store.ledger).
    ledger_member: str = ""
    follow_up: tuple[str, int] | None = None


class JobStore:
    """All reads and writes of Takt's data in one Redis (or Valkey) database."""

    #: Replicas every job and collection write waits for, and how long (require_replicas).
    _replicas = 0
    _replica_timeout_ms = 0

    def __init__(self, client: redis.Redis, keys: KeySchema) -> None:
        self.redis = client
        self.keys = keys
        # The worker's scripts, called through evalsha (its hot path); put_job's goes in
        # pipelines.
        self._record = client.register_script(RECORD_ATTEMPT)
        self._put = client.register_script(PUT_JOB)
        self._lease = client.register_script(ACQUIRE_LEASE)
        self._read_and_lease = client.register_script(READ_AND_LEASE)
        self._set_lease_ttl = client.register_script(SET_LEASE_TTL)
        self._claim_running = client.register_script(CLAIM_RUNNING)
        self._release_running = client.register_script(RELEASE_RUNNING)
        self._definitions = functools.lru_cache(maxsize=_DEFINITIONS_KEPT)(_stored_properties)

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "takt", *, socket_timeout_s: float | None = None
    ) -> JobStore:
        """A store over a new connection pool to ``url`` (a server's, or a Sentinel URL:
        :mod:`scheduler.store.connections`).

        With ``socket_timeout_s``, no call waits longer than that on the server (connect,
        or one reply), and a call is retried once, at once, only when its connection turns
        out to be broken (a pooled one from before a restart): a stopped server gives a
        :class:`StoreError` within the timeout instead of a hang. Without it, redis-py's
        defaults (no timeout, ten retries) stay, for processes that block on purpose.
        """
        options: dict[str, Any] = {}
        if socket_timeout_s is not None:
            options = {
                "socket_timeout": socket_timeout_s,
                "socket_connect_timeout": socket_timeout_s,
                "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            }
        client = client_for(url, decode_responses=True, health_check_interval=30, **options)
        return cls(client, KeySchema(prefix))

    def require_replicas(self, count: int, timeout_ms: int) -> None:
        """Have every job and collection write wait until ``count`` replicas hold it, at
        most ``timeout_ms``; when fewer do, it raises :class:`WriteNotReplicated` (the write
        stays on the primary, unconfirmed). 0, the default, waits for none (one server).

        The beat's and the workers' own writes (claims, leases, attempts, retries, the
        execution ledger) never wait: they are the hot path, and the ledger redoes what a
        failover loses of them.
        """
        self._replicas = count
        self._replica_timeout_ms = timeout_ms

    def _replicate(self) -> None:
        """Wait for the required replicas to hold every write this store has made.

        ``WAIT`` counts the replicas that acknowledged the writes of the connection it is
        sent on, and redis-py's pool may hand the next command another connection than the
        write's. So a tiny write of its own and ``WAIT`` go in one pipeline (one connection,
        one round trip): the primary's replication stream is one sequence, so a replica
        that acknowledged this later write holds the job or collection written before it.
        """
        if not self._replicas:
            return
        with redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(self.keys.replicated, "1", px=10_000)
            pipe.wait(self._replicas, self._replica_timeout_ms)
            acknowledged = pipe.execute()[-1]
        require_acknowledged(int(acknowledged), self._replicas, self._replica_timeout_ms)

    def close(self) -> None:
        self.redis.close()

    def ping(self) -> bool:
        """Whether Redis answers; never raises."""
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def health(self) -> tuple[bool, str | None]:
        """Whether the store answers, and why it cannot take a write now (None: it can);
        never raises.

        It writes (a 10 s key of its own), as that is the one sure test: a server out of
        memory under ``noeviction`` and a read-only replica both answer PING.
        """
        try:
            self.redis.set(self.keys.health, "1", px=10_000)
        except redis.exceptions.OutOfMemoryError:
            return True, "the store is out of memory (maxmemory reached) and refuses writes"
        except redis.exceptions.ReadOnlyError:
            return True, "the store is a read-only replica and refuses writes"
        except redis.RedisError as exc:
            return False, f"the store does not answer: {exc}"
        return True, None

    def history_id(self) -> str | None:
        """The server's replication id (``master_replid``): it changes when a failover
        promotes a replica, and when a primary restarts, so a client that sees it change
        knows that writes of the old history may be gone. None when the server does not
        say (a proxy or a managed service that refuses ``INFO`` or leaves the field out):
        then nobody can tell, and the ledger's redelivery timeout is the only net."""
        with redis_errors():
            try:
                info = self.redis.info("replication")
            except redis.exceptions.ResponseError:  # INFO refused (renamed, or an ACL)
                return None
        replid = info.get("master_replid")
        return None if replid is None else str(replid)

    def time_ms(self) -> int:
        """Redis's clock, so processes on skewed machines agree on "now"."""
        with redis_errors():
            seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    # -- collections ---------------------------------------------------------------

    def put_collection(self, cid: str, collection: JobCollection) -> bool:
        """Create or replace a collection; True when it was created.

        The state lives in its own field so workers can check it with one HGET.
        """
        key = self.keys.collection(cid)
        payload = collection.model_dump(mode="json", by_alias=True, exclude_none=True)
        state = (payload.get("properties") or {}).pop("state", None) or "Enabled"
        with redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.exists(key)
            pipe.hset(key, mapping={"def": _dump(payload), "state": state})
            pipe.zadd(self.keys.collections, {cid: 0})
            existed = pipe.execute()[0]
        self._replicate()
        return not existed

    def get_collection(self, cid: str) -> CollectionRecord:
        with redis_errors():
            fields = cast(dict[str, str], self.redis.hgetall(self.keys.collection(cid)))
        if not fields:
            raise CollectionNotFound(f"job collection {cid.rsplit('/', 1)[-1]!r} not found")
        return _collection_from_fields(cid, fields)

    def collection_state(self, cid: str) -> str | None:
        """The collection's state (None when it does not exist), in one round trip."""
        with redis_errors():
            state = self.redis.hget(self.keys.collection(cid), "state")
        return None if state is None else str(state)

    def set_collection_state(self, cid: str, state: str) -> None:
        with redis_errors():
            self.redis.hset(self.keys.collection(cid), "state", state)
        self._replicate()

    def collection_ids(self, prefix: str) -> list[str]:
        """Ids of the collections whose id starts with ``prefix``, in order."""
        with redis_errors():
            ids = self.redis.zrangebylex(self.keys.collections, f"[{prefix}", f"[{prefix}\xff")
        return [str(cid) for cid in ids]

    def delete_collection(self, cid: str) -> None:
        """Delete a collection with all its jobs, their history and their schedule."""
        names = self.job_names(cid)
        with redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            for name in names:
                jid = f"{cid}/{name}"
                pipe.delete(self.keys.job(jid), self.keys.history(jid))
                pipe.zrem(self.keys.due, jid)
                pipe.zrem(self.keys.finished, jid)
            pipe.delete(self.keys.jobs(cid), self.keys.collection(cid))
            pipe.zrem(self.keys.collections, cid)
            pipe.execute()
        self._replicate()

    # -- jobs ------------------------------------------------------------------------

    def put_job(
        self,
        jid: str,
        properties: JobProperties,
        *,
        owner: str,
        next_fire_ms: int | None,
        queue: str | None = None,
    ) -> bool:
        """Create or replace a job and (re)schedule it; True when it was created.

        The server-controlled counters survive a replace; ``gen`` rises so that a beat
        holding a claim of the old definition does not reschedule it.
        """
        return self.put_jobs([NewJob(jid, properties, owner, next_fire_ms, queue)])[0]

    def put_jobs(self, jobs: Sequence[NewJob]) -> list[bool]:
        """Create or replace many jobs, each atomically, in one round trip and one wake-up.

        This is how producers create jobs by the hundred thousand (see bench/).
        """
        with redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for job in jobs:
                self._queue_put(pipe, job)
            earliest = min(
                (j.next_fire_ms for j in jobs if j.next_fire_ms is not None and _scheduled(j)),
                default=None,
            )
            if earliest is not None:
                pipe.publish(self.keys.wake, earliest)
            replies = pipe.execute()
        self._replicate()
        return [not existed for existed in replies[: len(jobs)]]

    def _queue_put(self, pipe: Any, job: NewJob) -> None:
        keys, args = _put_job_call(self.keys, job)
        self._put(keys=keys, args=args, client=pipe)

    def save_context(self, jid: str, owner: str | None) -> SaveContext:
        """The job, its collection, the collection's job count and the named owner's role."""
        with redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            queue_save_context(pipe, self.keys, jid, owner)
            return save_context_from(jid, pipe.execute())

    def put_job_and_get(self, job: NewJob) -> tuple[JobRecord, bool]:
        """Create or replace one job as :meth:`put_jobs` does and read it back, atomically
        and in one round trip; returns the stored job and whether it was created."""
        with redis_errors():
            try:
                saved = self._put_job_and_get(job)
            except redis.exceptions.NoScriptError:  # the server restarted or flushed scripts
                self.redis.script_load(PUT_JOB)
                saved = self._put_job_and_get(job)
        self._replicate()
        return saved

    def _put_job_and_get(self, job: NewJob) -> tuple[JobRecord, bool]:
        pipe = self.redis.pipeline(transaction=True)
        queue_put_and_get(pipe, self.keys, self._put.sha, job)
        return saved_job(job, pipe.execute())

    def set_job_state(self, jid: str, state: JobState, next_fire_ms: int | None) -> None:
        """Enable or disable a job without touching its definition."""
        key = self.keys.job(jid)
        with redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(
                key,
                mapping={
                    "state": state.value,
                    "nextExecutionTime": "" if next_fire_ms is None else next_fire_ms,
                },
            )
            pipe.hincrby(key, "gen", 1)
            if next_fire_ms is not None and state is JobState.ENABLED:
                pipe.zadd(self.keys.due, {jid: next_fire_ms})
                pipe.publish(self.keys.wake, next_fire_ms)
            else:
                pipe.zrem(self.keys.due, jid)
            pipe.execute()
        self._replicate()

    def get_job(self, jid: str) -> JobRecord:
        with redis_errors():
            fields = cast(dict[str, str], self.redis.hgetall(self.keys.job(jid)))
        if not fields:
            raise JobNotFound(f"job {jid.rsplit('/', 1)[-1]!r} not found")
        return self._job_from_fields(jid, fields)

    def _job_from_fields(self, jid: str, fields: dict[str, str]) -> JobRecord:
        return _job_from_fields(jid, fields)

    def job_names(self, cid: str, *, skip: int = 0, top: int | None = None) -> list[str]:
        """Names of the collection's jobs in order; ``skip``/``top`` page through them."""
        stop = -1 if top is None else skip + top - 1
        with redis_errors():
            return [str(name) for name in self.redis.zrange(self.keys.jobs(cid), skip, stop)]

    def set_queue(self, jids: list[str], queue: str | None) -> None:
        """Set the effective worker pool of several jobs (their collection's changed)."""
        with redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for jid in jids:
                pipe.hset(self.keys.job(jid), "queue", queue or "")
            pipe.execute()
        self._replicate()

    def count_jobs(self, cid: str) -> int:
        with redis_errors():
            return int(self.redis.zcard(self.keys.jobs(cid)))

    def get_jobs(self, jids: list[str]) -> list[JobRecord]:
        """Several jobs in one round trip. The ones deleted meanwhile are left out, and so
        are the ones that cannot be read (logged): one damaged job never hides the others."""
        with redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for jid in jids:
                pipe.hgetall(self.keys.job(jid))
            rows = pipe.execute()
        jobs = []
        for jid, row in zip(jids, rows, strict=True):
            if row:
                try:
                    jobs.append(self._job_from_fields(jid, row))
                except UnreadableJob as exc:
                    log.warning("left out of a list: %s", exc)
        return jobs

    def delete_job(self, jid: str) -> None:
        cid, name = jid.rsplit("/", 1)
        with redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(self.keys.job(jid))
            pipe.delete(self.keys.history(jid))
            pipe.zrem(self.keys.due, jid)
            pipe.zrem(self.keys.finished, jid)
            pipe.zrem(self.keys.jobs(cid), name)
            deleted = pipe.execute()[0]
        if not deleted:
            raise JobNotFound(f"job {name!r} not found")
        self._replicate()

    # -- history -----------------------------------------------------------------------

    def history(self, jid: str, *, skip: int = 0, top: int = 100) -> list[StoredHistoryEntry]:
        """History entries, newest first."""
        with redis_errors():
            raws = self.redis.lrange(self.keys.history(jid), skip, skip + top - 1)
        entries = []
        for raw in raws:
            payload = _load(raw, f"history of {jid}")
            entry_id = payload.pop("id")
            entries.append(StoredHistoryEntry(entry_id, HistoryEntry.model_validate(payload)))
        return entries

    def record_attempt(self, attempt: Attempt) -> bool:
        """Write one attempt's history entry, counters, final state and lease atomically,
        once: an attempt recorded already (by a worker that redid it after this one's lease
        expired) is left as it is. False when the job no longer exists."""
        entry = _dump({"id": attempt.entry_id, **attempt.entry.to_wire()})
        flags = "".join(
            "1" if flag else "0"
            for flag in (attempt.first_attempt, attempt.failed, attempt.faulted)
        )
        with redis_errors():
            result = evalsha(
                self._record,
                keys=[
                    self.keys.job(attempt.jid),
                    self.keys.history(attempt.jid),
                    self.keys.due,
                    self.keys.lease(attempt.jid, attempt.occurrence_ms, attempt.tag),
                    self.keys.finished,
                    self.keys.ledger,
                    self.keys.ledger_taken,
                ],
                args=[
                    entry,
                    HISTORY_MAX_ENTRIES,
                    flags,
                    attempt.occurrence_ms,
                    attempt.final_state.value if attempt.final_state else "",
                    attempt.finished_ms or "",
                    attempt.jid,
                    _LEASE_DONE_TTL_MS,
                    attempt.ledger_member,
                    *(attempt.follow_up or ("", "")),
                ],
            )
        return bool(result)

    # -- leases ------------------------------------------------------------------------

    def read_and_lease(
        self, jid: str, occurrence_ms: int, tag: str, ttl_ms: int | None, ledger_member: str
    ) -> JobToRun:
        """A worker's first call for an attempt, in one round trip: the job, its
        collection's state and, when both are Enabled, the attempt's lease for ``ttl_ms``
        (taken as :meth:`acquire_lease` takes it; None: read only). Raises
        :class:`JobNotFound` when the job does not exist (no lease is taken then)."""
        with redis_errors():
            fields, collection_state, lease = evalsha(
                self._read_and_lease,
                keys=[
                    self.keys.job(jid),
                    self.keys.collection(jid.rsplit("/", 1)[0]),
                    self.keys.lease(jid, occurrence_ms, tag),
                    self.keys.ledger,
                    self.keys.ledger_taken,
                ],
                args=["" if ttl_ms is None else ttl_ms, ledger_member],
            )
        if not fields:
            raise JobNotFound(f"job {jid.rsplit('/', 1)[-1]!r} not found")
        return JobToRun(
            jid,
            collection_state,
            Lease.from_reply(lease) if lease else None,
            dict(zip(fields[::2], fields[1::2], strict=True)),
            self._decoded_run_job,
        )

    def _decoded_run_job(self, jid: str, fields: dict[str, str]) -> JobRecord:
        """The job of ``fields``, its definition validated once per process: kept by the
        stored text itself (not by ``gen``, which starts over when a job is deleted and
        created again, and which a write behind the API's back leaves as it was)."""
        short = len(fields.get("def", "")) <= _DEFINITION_KEPT_MAX_CHARS
        return _decoded_job(jid, fields, self._definitions if short else None)

    def set_lease_ttl(
        self, jid: str, occurrence_ms: int, tag: str, ttl_ms: int, ledger_member: str
    ) -> bool:
        """Make a lease this worker holds expire ``ttl_ms`` from now, its taken booking
        with it (the action has a timeout of its own); False when it is no longer held."""
        with redis_errors():
            held = evalsha(
                self._set_lease_ttl,
                keys=[self.keys.lease(jid, occurrence_ms, tag), self.keys.ledger_taken],
                args=[ttl_ms, ledger_member],
            )
        return bool(held)

    def acquire_lease(
        self, jid: str, occurrence_ms: int, tag: str, ttl_ms: int, ledger_member: str
    ) -> Lease:
        """Take the lease of one attempt (``tag``: m0, m1, e0 ...), if the execution ledger
        owes it (``ledger_member``); in one round trip."""
        with redis_errors():
            reply = evalsha(
                self._lease,
                keys=[
                    self.keys.lease(jid, occurrence_ms, tag),
                    self.keys.ledger,
                    self.keys.ledger_taken,
                ],
                args=[ttl_ms, ledger_member],
            )
        return Lease.from_reply(reply)

    def release_lease(self, jid: str, occurrence_ms: int, tag: str) -> None:
        """Give back a lease whose attempt did not happen (the store failed meanwhile)."""
        with redis_errors():
            self.redis.delete(self.keys.lease(jid, occurrence_ms, tag))

    # -- overlap (concurrencyPolicy) ---------------------------------------------------

    def claim_running(self, jid: str, occurrence_ms: int, ttl_ms: int, mode: str) -> int | None:
        """Make this occurrence the job's running one; returns the other running occurrence
        (Forbid: which blocks this one; Replace: which this one cancelled), or None."""
        with redis_errors():
            other = evalsha(
                self._claim_running,
                keys=[self.keys.running(jid)],
                args=[occurrence_ms, ttl_ms, mode, self.keys.cancelled_prefix(jid)],
            )
        return int(other) if other else None

    def release_running(self, jid: str, occurrence_ms: int) -> None:
        with redis_errors():
            evalsha(self._release_running, keys=[self.keys.running(jid)], args=[occurrence_ms])

    def replaced_by(self, jid: str, occurrence_ms: int) -> int | None:
        """The occurrence that replaced this one while it ran (Replace), if any."""
        with redis_errors():
            raw = self.redis.get(f"{self.keys.cancelled_prefix(jid)}{occurrence_ms}")
        return int(str(raw)) if raw else None

    # -- retention ---------------------------------------------------------------------

    def finished_before(self, cutoff_ms: int, limit: int = 1000) -> list[str]:
        """Ids of jobs that finished (Completed/Faulted) before ``cutoff_ms``."""
        with redis_errors():
            ids = self.redis.zrangebyscore(self.keys.finished, "-inf", cutoff_ms, 0, limit)
        return [str(jid) for jid in ids]

    def forget_finished(self, jid: str) -> None:
        """Drop a job from the finished index (it was deleted meanwhile)."""
        with redis_errors():
            self.redis.zrem(self.keys.finished, jid)

    def trim_history(self, jid: str, cutoff_ms: int) -> int:
        """Drop the job's history entries that ended before ``cutoff_ms``; returns how many.

        Entries are newest first and ordered by when they were written, so the old ones
        are a tail of the list.
        """
        entries = self.history(jid, skip=0, top=HISTORY_MAX_ENTRIES)
        keep = next(
            (i for i, e in enumerate(entries) if to_ms(e.entry.end_time) < cutoff_ms),
            len(entries),
        )
        dropped = len(entries) - keep
        if dropped == 0:
            return 0
        with redis_errors():
            # Counted from the tail, so entries pushed meanwhile at the head stay.
            self.redis.ltrim(self.keys.history(jid), 0, -dropped - 1)
        return dropped

    def all_job_ids(self) -> list[str]:
        """Every job id, collection by collection (for maintenance, not for hot paths)."""
        return [f"{cid}/{name}" for cid in self.collection_ids("") for name in self.job_names(cid)]

    # -- retries -----------------------------------------------------------------------

    def schedule_retry(
        self, jid: str, occurrence_ms: int, attempt: int, error: bool, due_ms: int
    ) -> None:
        """Put a long-delayed retry into the due set as a one-shot occurrence."""
        member = RetryMember(jid, occurrence_ms, attempt, error).encode()
        with redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.zadd(self.keys.due, {member: due_ms})
            pipe.publish(self.keys.wake, due_ms)
            pipe.execute()

    def main_failure(self, jid: str, occurrence_ms: int, *, look_back: int = 50) -> str | None:
        """The message of the main action's newest failed attempt for one occurrence."""
        for stored in self.history(jid, skip=0, top=look_back):
            entry = stored.entry
            if (
                entry.action_name is JobHistoryActionName.MAIN_ACTION
                and entry.status is JobExecutionStatus.FAILED
                and to_ms(entry.expected_execution_time) == occurrence_ms
            ):
                return entry.message
        return None


def _maybe_time(raw: str | None) -> Any:
    return from_ms(raw) if raw else None


def _job_from_fields(jid: str, fields: dict[str, str]) -> JobRecord:
    """The job stored in ``fields``; :class:`UnreadableJob` if they do not make one (an
    older Takt or a bug wrote them), :class:`SchemaTooNew` if a newer Takt did."""
    try:
        return _decoded_job(jid, fields)
    except SchemaTooNew:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # ValueError: pydantic's
        raise UnreadableJob.of(jid, exc) from exc


def _decoded_job(
    jid: str,
    fields: dict[str, str],
    properties_of: Callable[[str, str, str, str, str, str], JobProperties] | None = None,
) -> JobRecord:
    """The job of ``fields``: its properties from ``properties_of`` (validated anew by
    default), the status counters, which change with every attempt, from the fields."""
    properties = (properties_of or _stored_properties)(
        jid,
        fields["def"],
        fields.get("startTime", ""),
        fields["state"],
        fields.get("owner", ""),
        fields.get("displayName", ""),
    )
    status = _status_from_fields(fields)
    return _record(jid, properties.model_copy(update={"status": status}), fields)


def _stored_properties(
    jid: str, definition_json: str, start: str, state: str, owner: str, display_name: str
) -> JobProperties:
    """A job's stored properties but its status: what a validation depends on (the
    properties' validators read neither the status nor anything outside these)."""
    definition = _load(definition_json, f"job {jid}")
    if start:  # a job stored before the field has none, and its start in its definition
        definition.setdefault("startTime", start)
    return JobProperties.model_validate(
        {
            **definition,
            "state": state,
            "owner": owner or None,
            "displayName": display_name or None,
        },
        context=STORED,
    )


def _status_from_fields(fields: dict[str, str]) -> JobStatus:
    return JobStatus(
        execution_count=int(fields.get("executionCount", 0)),
        failure_count=int(fields.get("failureCount", 0)),
        faulted_count=int(fields.get("faultedCount", 0)),
        last_execution_time=_maybe_time(fields.get("lastExecutionTime")),
        next_execution_time=_maybe_time(fields.get("nextExecutionTime")),
    )


def _record(jid: str, properties: JobProperties, fields: dict[str, str]) -> JobRecord:
    return JobRecord(
        jid=jid,
        properties=properties,
        gen=int(fields.get("gen", 0)),
        finished_at_ms=_optional_ms(fields.get("finishedAt")),
        last_occurrence_ms=_optional_ms(fields.get("lastOccurrence")),
        queue=fields.get("queue") or None,
    )


def _put_job_call(keys: KeySchema, job: NewJob) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of :data:`~scheduler.store.scripts.PUT_JOB` for one job."""
    cid, name = job.jid.rsplit("/", 1)
    definition = job.properties.model_dump(
        mode="json",
        by_alias=True,
        exclude_none=True,
        # Everything but what lives in hash fields of its own (so new fields persist).
        exclude={"state", "status", "owner", "display_name"},
    )
    # The start in a field of its own: the definition is then what jobs of one shape
    # share, and the beat reads the start without parsing JSON (beat.scheduler._plan).
    start = definition.pop("startTime", "")
    fields: Mapping[Any, str | int] = {
        "def": _dump(definition),
        "startTime": start,
        "state": (job.properties.state or JobState.ENABLED).value,
        "owner": job.owner,
        "displayName": job.properties.display_name or "",
        "queue": job.queue or job.properties.queue or "",
        "nextExecutionTime": "" if job.next_fire_ms is None else job.next_fire_ms,
    }
    next_ms: int | str = job.next_fire_ms if job.next_fire_ms and _scheduled(job) else ""
    pairs = [item for pair in fields.items() for item in pair]
    args = [job.jid, name, next_ms, job_cadence(job.properties), *pairs]
    return [keys.job(job.jid), keys.jobs(cid), keys.due], args


# -- one job's write in two round trips, shared by the sync and the asyncio store -----------


@dataclass(frozen=True, slots=True)
class SaveContext:
    """What the rules need to know before a job is written, read in one round trip."""

    cid: str
    existing: JobRecord | None
    collection: CollectionRecord | None
    job_count: int  # of the collection, this job included if it exists
    owner_role: str | None  # the role of the named owner principal, if it exists

    def require_collection(self) -> CollectionRecord:
        if self.collection is None:
            raise CollectionNotFound(f"job collection {self.cid.rsplit('/', 1)[-1]!r} not found")
        return self.collection


def queue_save_context(pipe: Any, keys: KeySchema, jid: str, owner: str | None) -> None:
    """Queue the reads of :class:`SaveContext` on a (sync or asyncio) pipeline."""
    cid = jid.rsplit("/", 1)[0]
    pipe.hgetall(keys.job(jid))
    pipe.hgetall(keys.collection(cid))
    pipe.zcard(keys.jobs(cid))
    if owner is not None:
        pipe.hget(keys.principal(owner), "role")


def save_context_from(jid: str, replies: Sequence[Any]) -> SaveContext:
    """The :class:`SaveContext` from the replies of :func:`queue_save_context`."""
    cid = jid.rsplit("/", 1)[0]
    job, collection, count, *role = replies
    return SaveContext(
        cid=cid,
        existing=_job_from_fields(jid, job) if job else None,
        collection=_collection_from_fields(cid, collection) if collection else None,
        job_count=int(count),
        owner_role=str(role[0]) if role and role[0] else None,
    )


def queue_put_and_get(pipe: Any, keys: KeySchema, put_sha: str, job: NewJob) -> None:
    """Queue one job's :data:`~scheduler.store.scripts.PUT_JOB`, its wake-up and its read-back
    on a (sync or asyncio) MULTI pipeline whose script ``put_sha`` is loaded."""
    script_keys, args = _put_job_call(keys, job)
    pipe.evalsha(put_sha, len(script_keys), *script_keys, *args)
    if job.next_fire_ms is not None and _scheduled(job):
        pipe.publish(keys.wake, job.next_fire_ms)
    pipe.hgetall(keys.job(job.jid))


def saved_job(job: NewJob, replies: Sequence[Any]) -> tuple[JobRecord, bool]:
    """The stored job and whether it was created, from :func:`queue_put_and_get`'s replies.

    The definition read back is the one just written, from ``job``'s properties, which
    were validated on their way in: only the hash's own fields (state, status, owner,
    display name) are taken from the reply, so a write does not validate the job twice.
    """
    fields = replies[-1]
    properties = job.properties.model_copy(
        update={
            "state": JobState(fields["state"]),
            "status": _status_from_fields(fields),
            "owner": fields.get("owner") or None,
            "display_name": fields.get("displayName") or None,
        }
    )
    return _record(job.jid, properties, fields), not replies[0]


def _collection_from_fields(cid: str, fields: dict[str, str]) -> CollectionRecord:
    payload = _load(fields["def"], f"collection {cid}")
    payload.setdefault("properties", {})["state"] = fields.get("state", "Enabled")
    return CollectionRecord(cid, JobCollection.model_validate(payload, context=STORED))
