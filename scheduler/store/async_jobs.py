"""The job store's hot write path over a lean asyncio connection, for the API's event loop.

Only what a job creation needs: it queues the same commands as :class:`JobStore` (the
``queue_*`` functions of :mod:`scheduler.store.jobs`) and reads their replies the same way,
so the two stores cannot drift apart; the rules stay in :class:`JobService`. The
commands go over :class:`~scheduler.store.resp.RespConnection` rather than ``redis.asyncio``,
whose per-pipeline overhead was the largest part of a creation's CPU time.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

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
        self._wait: asyncio.Future[Any] | None = None  # the WAIT sent last

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
        replies = await self.connection.execute(batch)
        if self._replicas:
            await self._replicated()
        return saved_job(job, replies)

    async def _replicated(self) -> None:
        """Wait for the required replicas to hold this connection's writes so far.

        WAIT counts the replicas that acknowledged every write sent before it on its
        connection, and blocks that connection meanwhile: one WAIT per write would queue
        each behind the last (with no replica, n writes at once would wait n timeouts).
        So one WAIT at a time serves every write whose reply came before it was sent. A
        WAIT still unanswered now was sent after this write (Redis answers a connection in
        order: one sent before would have been answered first), so it is joined;
        otherwise a new one is sent.
        """
        wait = self._wait
        if wait is None or wait.done():
            command = self.connection.command("WAIT", self._replicas, self._replica_timeout_ms)
            wait = self._wait = asyncio.ensure_future(command)
            wait.add_done_callback(_retrieved)  # its writers may all have gone meanwhile
        # Shielded: a request that goes away does not cancel the others' WAIT.
        acknowledged = await asyncio.shield(wait)
        require_acknowledged(int(acknowledged), self._replicas, self._replica_timeout_ms)


def _retrieved(wait: asyncio.Future[Any]) -> None:
    """Mark a WAIT's failure as seen, so asyncio does not log it when no one awaits it."""
    if not wait.cancelled():
        wait.exception()
