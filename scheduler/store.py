"""The Redis job store: collections, jobs, the due set, status and history.

Every key comes from :mod:`scheduler.keys`; every multi-step write is a MULTI transaction
or one of the Lua scripts in :mod:`scheduler.scripts`. Redis errors are translated into
:class:`~scheduler.errors.StoreError` at this boundary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import redis

from scheduler.clock import from_ms
from scheduler.errors import CollectionNotFound, JobNotFound, SchemaTooNew, StoreError
from scheduler.keys import CLAIM_GROUP, KeySchema
from scheduler.models import (
    HistoryEntry,
    JobCollection,
    JobProperties,
    JobState,
    JobStatus,
)
from scheduler.scripts import ADVANCE, CLAIM_DUE, RECORD_ATTEMPT

__all__ = [
    "HISTORY_MAX_ENTRIES",
    "SCHEMA_VERSION",
    "Attempt",
    "Claim",
    "CollectionRecord",
    "JobRecord",
    "JobStore",
    "StoredHistoryEntry",
]

#: Version of the JSON this code writes; a newer one in Redis is refused.
SCHEMA_VERSION = 1
#: History kept per job (Azure keeps 60 days; the retention job trims by age).
HISTORY_MAX_ENTRIES = 1000
_LEASE_DONE_TTL_MS = 24 * 3600 * 1000


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise StoreError(f"job store: {exc}") from exc


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

    @property
    def state(self) -> JobState:
        return self.properties.state or JobState.ENABLED


@dataclass(frozen=True, slots=True)
class Claim:
    """One due occurrence a beat claimed and must publish, then acknowledge."""

    stream_id: str
    jid: str
    occurrence_ms: int
    gen: str


@dataclass(frozen=True, slots=True)
class StoredHistoryEntry:
    entry_id: str
    entry: HistoryEntry


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one attempt, as the worker records it."""

    jid: str
    occurrence_ms: int
    attempt: int
    entry_id: str
    entry: HistoryEntry
    first_attempt: bool
    failed: bool
    faulted: bool
    final_state: JobState | None
    finished_ms: int | None


class JobStore:
    """All reads and writes of Takt's data in one Redis (or Valkey) database."""

    def __init__(self, client: redis.Redis, keys: KeySchema) -> None:
        self.redis = client
        self.keys = keys
        self._claim = client.register_script(CLAIM_DUE)
        self._advance = client.register_script(ADVANCE)
        self._record = client.register_script(RECORD_ATTEMPT)

    @classmethod
    def from_url(cls, url: str, prefix: str = "takt") -> JobStore:
        """A store over a new connection pool to ``url``."""
        client = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        return cls(client, KeySchema(prefix))

    def close(self) -> None:
        self.redis.close()

    def ping(self) -> bool:
        """Whether Redis answers; never raises."""
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def time_ms(self) -> int:
        """Redis's clock, so processes on skewed machines agree on "now"."""
        with _redis_errors():
            seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    # -- collections ---------------------------------------------------------------

    def put_collection(self, cid: str, collection: JobCollection) -> bool:
        """Create or replace a collection; True when it was created."""
        key = self.keys.collection(cid)
        payload = collection.model_dump(mode="json", by_alias=True, exclude_none=True)
        with _redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.exists(key)
            pipe.hset(key, "def", _dump(payload))
            pipe.zadd(self.keys.collections, {cid: 0})
            existed = pipe.execute()[0]
        return not existed

    def get_collection(self, cid: str) -> CollectionRecord:
        with _redis_errors():
            raw = self.redis.hget(self.keys.collection(cid), "def")
        if raw is None:
            raise CollectionNotFound(f"job collection {cid.rsplit('/', 1)[-1]!r} not found")
        payload = _load(raw, f"collection {cid}")
        return CollectionRecord(cid, JobCollection.model_validate(payload))

    # -- jobs ------------------------------------------------------------------------

    def put_job(
        self, jid: str, properties: JobProperties, *, owner: str, next_fire_ms: int | None
    ) -> bool:
        """Create or replace a job and (re)schedule it; True when it was created.

        The server-controlled counters survive a replace; ``gen`` rises so that a beat
        holding a claim of the old definition does not reschedule it.
        """
        cid = jid.rsplit("/", 1)[0]
        name = jid.rsplit("/", 1)[1]
        key = self.keys.job(jid)
        definition = properties.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            include={"start_time", "action", "recurrence"},
        )
        state = (properties.state or JobState.ENABLED).value
        fields: Mapping[Any, str | int] = {
            "def": _dump(definition),
            "state": state,
            "owner": owner,
            "displayName": properties.display_name or "",
            "nextExecutionTime": "" if next_fire_ms is None else next_fire_ms,
        }
        with _redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.exists(key)
            pipe.hset(key, mapping=fields)
            pipe.hincrby(key, "gen", 1)
            pipe.hdel(key, "finishedAt")
            pipe.zadd(self.keys.jobs(cid), {name: 0})
            if next_fire_ms is not None and state == JobState.ENABLED.value:
                pipe.zadd(self.keys.due, {jid: next_fire_ms})
                pipe.publish(self.keys.wake, next_fire_ms)
            else:
                pipe.zrem(self.keys.due, jid)
            existed = pipe.execute()[0]
        return not existed

    def get_job(self, jid: str) -> JobRecord:
        with _redis_errors():
            fields = cast(dict[str, str], self.redis.hgetall(self.keys.job(jid)))
        if not fields:
            raise JobNotFound(f"job {jid.rsplit('/', 1)[-1]!r} not found")
        return self._job_from_fields(jid, fields)

    def _job_from_fields(self, jid: str, fields: dict[str, str]) -> JobRecord:
        definition = _load(fields["def"], f"job {jid}")
        status = JobStatus(
            execution_count=int(fields.get("executionCount", 0)),
            failure_count=int(fields.get("failureCount", 0)),
            faulted_count=int(fields.get("faultedCount", 0)),
            last_execution_time=_maybe_time(fields.get("lastExecutionTime")),
            next_execution_time=_maybe_time(fields.get("nextExecutionTime")),
        )
        properties = JobProperties.model_validate(
            {
                **definition,
                "state": fields["state"],
                "status": status,
                "owner": fields.get("owner") or None,
                "displayName": fields.get("displayName") or None,
            }
        )
        return JobRecord(
            jid=jid,
            properties=properties,
            gen=int(fields.get("gen", 0)),
            finished_at_ms=_optional_ms(fields.get("finishedAt")),
            last_occurrence_ms=_optional_ms(fields.get("lastOccurrence")),
        )

    def job_names(self, cid: str) -> list[str]:
        with _redis_errors():
            return [str(name) for name in self.redis.zrange(self.keys.jobs(cid), 0, -1)]

    def delete_job(self, jid: str) -> None:
        cid, name = jid.rsplit("/", 1)
        with _redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(self.keys.job(jid))
            pipe.delete(self.keys.history(jid))
            pipe.zrem(self.keys.due, jid)
            pipe.zrem(self.keys.jobs(cid), name)
            deleted = pipe.execute()[0]
        if not deleted:
            raise JobNotFound(f"job {name!r} not found")

    # -- history -----------------------------------------------------------------------

    def history(self, jid: str, *, skip: int = 0, top: int = 100) -> list[StoredHistoryEntry]:
        """History entries, newest first."""
        with _redis_errors():
            raws = self.redis.lrange(self.keys.history(jid), skip, skip + top - 1)
        entries = []
        for raw in raws:
            payload = _load(raw, f"history of {jid}")
            entry_id = payload.pop("id")
            entries.append(StoredHistoryEntry(entry_id, HistoryEntry.model_validate(payload)))
        return entries

    def record_attempt(self, attempt: Attempt) -> bool:
        """Write one attempt's history entry, counters, final state and lease atomically."""
        entry = _dump({"id": attempt.entry_id, **attempt.entry.to_wire()})
        flags = "".join(
            "1" if flag else "0"
            for flag in (attempt.first_attempt, attempt.failed, attempt.faulted)
        )
        with _redis_errors():
            result = self._record(
                keys=[
                    self.keys.job(attempt.jid),
                    self.keys.history(attempt.jid),
                    self.keys.due,
                    self.keys.lease(attempt.jid, attempt.occurrence_ms, attempt.attempt),
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
                ],
            )
        return bool(result)

    # -- leases ------------------------------------------------------------------------

    def acquire_lease(self, jid: str, occurrence_ms: int, attempt: int, ttl_ms: int) -> bool:
        """Take the lease of one attempt; False if it runs elsewhere or already ran."""
        with _redis_errors():
            return bool(
                self.redis.set(
                    self.keys.lease(jid, occurrence_ms, attempt), "running", nx=True, px=ttl_ms
                )
            )

    def release_lease(self, jid: str, occurrence_ms: int, attempt: int) -> None:
        """Give a lease back without recording (the attempt did not happen)."""
        with _redis_errors():
            self.redis.delete(self.keys.lease(jid, occurrence_ms, attempt))

    # -- the due set (beat side) -------------------------------------------------------

    def ensure_claim_group(self) -> None:
        with _redis_errors():
            try:
                self.redis.xgroup_create(self.keys.claims, CLAIM_GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def claim_due(self, consumer: str, batch: int) -> tuple[int, list[Claim]]:
        """Atomically claim up to ``batch`` due occurrences; returns (Redis now ms, claims)."""
        with _redis_errors():
            now_ms, entries = self._claim(
                keys=[self.keys.due, self.keys.claims],
                args=[batch, CLAIM_GROUP, consumer, self.keys.job_prefix],
            )
        return int(now_ms), [_claim(entry) for entry in entries]

    def recover_claims(self, consumer: str, min_idle_ms: int, count: int) -> list[Claim]:
        """Take over claims another beat took and did not acknowledge in ``min_idle_ms``."""
        with _redis_errors():
            _, entries, *_ = self.redis.xautoclaim(
                self.keys.claims, CLAIM_GROUP, consumer, min_idle_ms, count=count
            )
        return [_claim(entry) for entry in entries if entry and entry[1]]

    def load_for_dispatch(self, claims: Sequence[Claim]) -> list[dict[str, str]]:
        """The stored fields (def, state, gen) of each claimed job, in one round trip."""
        with _redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for claim in claims:
                pipe.hmget(self.keys.job(claim.jid), "def", "state", "gen")
            rows = pipe.execute()
        return [{"def": row[0], "state": row[1], "gen": row[2]} if row[0] else {} for row in rows]

    def advance(self, done: Sequence[tuple[Claim, int | None]]) -> None:
        """Reschedule dispatched jobs at their next occurrence and acknowledge the claims."""
        if not done:
            return
        with _redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for claim, next_ms in done:
                self._advance(
                    keys=[self.keys.due, self.keys.job(claim.jid)],
                    args=[
                        claim.jid,
                        claim.gen,
                        "" if next_ms is None else next_ms,
                        claim.occurrence_ms,
                    ],
                    client=pipe,
                )
            ids = [claim.stream_id for claim, _ in done]
            pipe.xack(self.keys.claims, CLAIM_GROUP, *ids)
            pipe.xdel(self.keys.claims, *ids)
            pipe.execute()

    def next_due_ms(self) -> int | None:
        """The earliest score in the due set (None when nothing is scheduled)."""
        with _redis_errors():
            head = self.redis.zrange(self.keys.due, 0, 0, withscores=True)
        return int(head[0][1]) if head else None


def _maybe_time(raw: str | None) -> Any:
    return from_ms(raw) if raw else None


def _claim(entry: Sequence[Any]) -> Claim:
    stream_id, flat = entry[0], entry[1]
    fields = dict(zip(flat[::2], flat[1::2], strict=True)) if isinstance(flat, list) else flat
    return Claim(
        stream_id=stream_id,
        jid=fields["j"],
        occurrence_ms=int(float(fields["t"])),
        gen=fields["g"],
    )
