"""The job store's hot write path over ``redis.asyncio``, for the API's event loop.

Only what a job creation needs: it queues the same commands as :class:`JobStore` (the
``queue_*`` functions of :mod:`scheduler.store`) and reads their replies the same way,
so the two stores cannot drift apart; the rules stay in :class:`JobService`.
"""

from __future__ import annotations

import redis
import redis.asyncio

from scheduler.keys import KeySchema
from scheduler.scripts import PUT_JOB
from scheduler.store import (
    JobRecord,
    NewJob,
    SaveContext,
    queue_put_and_get,
    queue_save_context,
    redis_errors,
    save_context_from,
    saved_job,
)

__all__ = ["AsyncJobStore"]


class AsyncJobStore:
    """A job's save context and its write, one round trip each, without blocking a loop."""

    def __init__(self, client: redis.asyncio.Redis, keys: KeySchema) -> None:
        self.redis = client
        self.keys = keys
        self._put_sha = client.register_script(PUT_JOB).sha

    @classmethod
    def from_url(cls, url: str, keys: KeySchema) -> AsyncJobStore:
        """A store over a new asyncio connection pool to ``url``."""
        client = redis.asyncio.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        return cls(client, keys)

    async def close(self) -> None:
        await self.redis.aclose()

    async def save_context(self, jid: str, owner: str | None) -> SaveContext:
        """As :meth:`JobStore.save_context`."""
        with redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            queue_save_context(pipe, self.keys, jid, owner)
            return save_context_from(jid, await pipe.execute())

    async def put_job_and_get(self, job: NewJob) -> tuple[JobRecord, bool]:
        """As :meth:`JobStore.put_job_and_get`."""
        with redis_errors():
            try:
                return await self._put_job_and_get(job)
            except redis.exceptions.NoScriptError:  # the server restarted or flushed scripts
                await self.redis.script_load(PUT_JOB)
                return await self._put_job_and_get(job)

    async def _put_job_and_get(self, job: NewJob) -> tuple[JobRecord, bool]:
        pipe = self.redis.pipeline(transaction=True)
        queue_put_and_get(pipe, self.keys, self._put_sha, job)
        return saved_job(job.jid, await pipe.execute())
