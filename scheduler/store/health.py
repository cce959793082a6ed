"""What the console's health panel reads from the store beside the metrics snapshots: the
server's memory (``INFO memory``).

A small read of its own so the console never talks to Redis: the service asks for a
:class:`StoreMemory`, and a store that does not answer is a
:class:`~scheduler.errors.StoreError` like any other read's.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.store.jobs import JobStore, redis_errors

__all__ = ["StoreMemory", "store_memory"]


@dataclass(frozen=True, slots=True)
class StoreMemory:
    """The server's memory as ``INFO memory`` reports it (bytes; ``max_bytes`` 0: no
    ``maxmemory`` set, the server grows until the machine stops it)."""

    used_bytes: int
    used_human: str
    max_bytes: int
    policy: str


def store_memory(store: JobStore) -> StoreMemory:
    """One ``INFO memory`` round trip."""
    with redis_errors():
        info = store.redis.info("memory")
    return StoreMemory(
        used_bytes=int(info.get("used_memory", 0)),
        used_human=str(info.get("used_memory_human", "")),
        max_bytes=int(info.get("maxmemory", 0)),
        policy=str(info.get("maxmemory_policy", "")),
    )
