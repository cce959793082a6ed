"""kombu's Redis transport with one client per connection pool.

kombu's Redis channel builds a new ``redis.Redis`` for every command it sends outside
its consumer connection (``Channel._create_client``): the unacknowledged bookkeeping of
each message a worker takes, each acknowledgement, each batch of task events. Building
one copies redis-py's table of response callbacks, and that was 7.5–13.7 % of a worker's
CPU (docs/benchmarks.md, "Where an attempt's CPU goes"). A ``redis.Redis`` holds no
connection of its own (it checks one out of its pool for each command) and may be shared
by threads, so this channel keeps one per pool and builds another only when kombu
replaces the pool (after a fork or a lost connection). Everything else is kombu's.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

__all__ = ["REDIS_SCHEMES", "Transport"]

#: The broker URL schemes this transport serves (kombu's Redis transport's own).
REDIS_SCHEMES = ("redis", "rediss")


class Channel(kombu_redis.Channel):
    """kombu's Redis channel; its synchronous client is built once per connection pool."""

    _shared: tuple[Any, Any] | None = None  # (the pool, its client)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the consumer's own connection (BRPOP): kombu builds it once
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        shared = self._shared
        if shared is None or shared[0] is not pool:
            shared = self._shared = (pool, super()._create_client())  # type: ignore[misc]
        return shared[1]


class Transport(kombu_redis.Transport):
    """kombu's Redis transport on :class:`Channel`."""

    Channel = Channel
