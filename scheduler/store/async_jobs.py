"""The job store's hot write path over a lean asyncio connection, for the API's event loop.

Only what a job creation needs: it queues the same commands as :class:`JobStore` (the
``queue_*`` functions of :mod:`scheduler.store.jobs`) and reads their replies the same way,
so the two stores cannot drift apart; the rules stay in :class:`JobService`. The
commands go over :class:`~scheduler.store.resp.RespConnection` rather than ``redis.asyncio``,
whose per-pipeline overhead was the largest part of a creation's CPU time.
"""

from __future__ import annotations

import hashlib

import redis

from scheduler.store.jobs import (
    JobRecord,
    NewJob,
    SaveContext,
    queue_put_and_get,
    queue_save_context,
    redis_errors,
    require_acknowledged,
    save_context_from,
    saved_job,
)
from scheduler.store.keys import KeySchema
from scheduler.store.resp import Batch, RespConnection
from scheduler.store.scripts import PUT_JOB

__all__ = ["AsyncJobStore"]


class AsyncJobStore:
    """A job's save context and its write, one round trip each, without blocking a loop."""

    def __init__(self, connection: RespConnection, keys: KeySchema) -> None:
        self.connection = connection
        self.keys = keys
        self._put_sha = hashlib.sha1(PUT_JOB.encode()).hexdigest()
        self._replicas = 0
        self._replica_timeout_ms = 0

    @classmethod
    def from_url(
        cls, url: str, keys: KeySchema, *, socket_timeout_s: float | None = None
    ) -> AsyncJobStore:
        """A store over a new connection to ``url`` (opened on first use); with
        ``socket_timeout_s``, no call waits on the server longer than that."""
        return cls(RespConnection(url, timeout_s=socket_timeout_s), keys)

    def require_replicas(self, count: int, timeout_ms: int) -> None:
        """As :meth:`JobStore.require_replicas`, for :meth:`put_job_and_get`."""
        self._replicas = count
        self._replica_timeout_ms = timeout_ms

    async def close(self) -> None:
        await self.connection.close()

    async def save_context(self, jid: str, owner: str | None) -> SaveContext:
        """As :meth:`JobStore.save_context`."""
        with redis_errors():
            batch = Batch(transaction=False)
            queue_save_context(batch, self.keys, jid, owner)
            return save_context_from(jid, await self.connection.execute(batch))

    async def put_job_and_get(self, job: NewJob) -> tuple[JobRecord, bool]:
        """As :meth:`JobStore.put_job_and_get`."""
        with redis_errors():
            try:
                return await self._put_job_and_get(job)
            except redis.exceptions.NoScriptError:  # the server restarted or flushed scripts
                await self.connection.command("SCRIPT", "LOAD", PUT_JOB)
                return await self._put_job_and_get(job)

    async def _put_job_and_get(self, job: NewJob) -> tuple[JobRecord, bool]:
        batch = Batch(transaction=True)
        queue_put_and_get(batch, self.keys, self._put_sha, job)
        if not self._replicas:
            return saved_job(job, await self.connection.execute(batch))
        # WAIT right after EXEC, in the same write on the same connection: it counts the
        # replicas that have every write this connection sent so far, this job's included.
        # Other requests' batches share the connection and queue behind it meanwhile.
        batch.wait(self._replicas, self._replica_timeout_ms)
        *replies, acknowledged = await self.connection.execute(batch)
        require_acknowledged(int(acknowledged), self._replicas, self._replica_timeout_ms)
        return saved_job(job, replies)
