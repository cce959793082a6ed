"""What the benchmark reads besides the queues: Redis's counters, a process's memory,
the machine, and percentiles."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.machine import describe

__all__ = ["RedisCounters", "cpu_seconds", "machine", "percentile", "redis_cpu_seconds", "rss_mib"]

#: Commands the benchmark itself sends while it measures (the recorder and these probes).
_OURS = frozenset({"blmpop", "info", "llen"})


@dataclass(frozen=True, slots=True)
class RedisCounters:
    """Commands Redis ran, by name (INFO commandstats): what the commands a Lua script
    runs count as well as the script call itself (so does CLIENT LIST's ``tot-cmds``)."""

    executed: dict[str, int]

    @classmethod
    def read(cls, client: redis.Redis) -> RedisCounters:
        stats = client.info("commandstats")
        return cls(
            {name.removeprefix("cmdstat_"): int(fields["calls"]) for name, fields in stats.items()}
        )

    def since(self, before: RedisCounters) -> RedisCounters:
        return RedisCounters(
            {
                name: calls - before.executed.get(name, 0)
                for name, calls in self.executed.items()
                if name not in _OURS and calls > before.executed.get(name, 0)
            }
        )

    @property
    def total(self) -> int:
        return sum(self.executed.values())

    def top(self, per: int, count: int = 6) -> str:
        """The most frequent commands, per ``per`` (firings), e.g. ``lpush 1.00``."""
        ranked = sorted(self.executed.items(), key=lambda item: -item[1])[:count]
        return ", ".join(f"{name} {calls / max(per, 1):.2f}" for name, calls in ranked)


def rss_mib(pid: int) -> float | None:
    """VmRSS of a live process, in MiB (None once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a live process has used (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds(client: redis.Redis) -> float:
    """User + system CPU seconds the Redis server has used (INFO cpu)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of sorted ``values``."""
    rank = max(1, math.ceil(q / 100 * len(values)))
    return values[rank - 1]


def machine() -> str:
    return describe()
