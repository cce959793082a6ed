"""What one pipeline measured in one scenario, and the checks every run gets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import redis

from bench.beat.probes import RedisCounters
from bench.e2e.processes import snapshot
from bench.e2e.sink import Arrival, Sink

__all__ = ["Run", "checked", "discount", "measured"]


@dataclass
class Run:
    """One pipeline in one scenario ("burst" or "steady")."""

    pipeline: str
    scenario: str
    jobs: int
    due_at: float  # the due instant (burst) or the first due time (steady), epoch s
    arrivals: list[Arrival]
    cpu_s: dict[str, float]  # process -> CPU seconds over the run
    commands: RedisCounters
    done_at: float | None = None  # Takt: the last history entry's endTime
    recorded_once: int | None = None  # Takt: jobs with exactly one Completed entry
    notes: list[str] = field(default_factory=list)
    #: (process, commands, sent by, per job), when traced (see bench.e2e.tracing).
    round_trips: list[tuple[str, str, str, float]] = field(default_factory=list)

    @property
    def executed(self) -> int:
        return len({arrival.index for arrival in self.arrivals})

    def span_rate(self) -> float | None:
        """Executed per second, first arrival to last."""
        if len(self.arrivals) < 2:
            return None
        ats = [arrival.at for arrival in self.arrivals]
        return len(self.arrivals) / max(max(ats) - min(ats), 1e-6)

    def due_rate(self) -> float | None:
        """Executed per second, due instant to the last job done (recorded, for Takt)."""
        if not self.arrivals:
            return None
        last = self.done_at or max(arrival.at for arrival in self.arrivals)
        return self.executed / max(last - self.due_at, 1e-6)

    def lateness_ms(self) -> list[float]:
        """Arrival − due time of every call, in order."""
        return sorted(
            1000 * arrival.at - (arrival.due_ms or 1000 * self.due_at) for arrival in self.arrivals
        )

    def first_after_s(self) -> float:
        return min((a.at for a in self.arrivals), default=self.due_at) - self.due_at


def measured(
    pipeline: str,
    scenario: str,
    n: int,
    due_at: float,
    sink: Sink,
    client: redis.Redis,
    pids: dict[str, int],
    before: tuple[RedisCounters, dict[str, float]],
) -> Run:
    """The run that ends now: the sink's calls of ``scenario``, CPU and commands since
    ``before``."""
    counters, cpu = snapshot(client, pids)
    return Run(
        pipeline,
        scenario,
        n,
        due_at,
        [arrival for arrival in sink.take() if arrival.scenario == scenario],
        _by_role({name: cpu[name] - before[1][name] for name in pids}),
        counters.since(before[0]),
    )


def role_of(process: str) -> str:
    """A process's role: ``worker-2`` is a worker."""
    return process.partition("-")[0]


def _by_role(cpu_s: dict[str, float]) -> dict[str, float]:
    """CPU seconds per role (the workers' summed)."""
    total: dict[str, float] = {}
    for name, seconds in cpu_s.items():
        total[role_of(name)] = total.get(role_of(name), 0.0) + seconds
    return total


def checked(run: Run, complete: bool, cap_s: float) -> Run:
    """``run`` with notes on what went wrong: jobs called twice or never, a run cut short."""
    if not complete:
        run.notes.append(f"stopped after {cap_s:.0f} s with {len(run.arrivals):,} calls")
    counts = Counter(arrival.index for arrival in run.arrivals)
    twice = sum(1 for n in counts.values() if n > 1)
    if twice:
        run.notes.append(f"{twice:,} jobs called more than once")
    if len(counts) < run.jobs:
        run.notes.append(f"{run.jobs - len(counts):,} of {run.jobs:,} jobs never called")
    return run


def discount(commands: RedisCounters, name: str, ours: int) -> None:
    """Leave out the benchmark's own ``ours`` calls of ``name``."""
    left = commands.executed.get(name, 0) - ours
    if left > 0:
        commands.executed[name] = left
    else:
        commands.executed.pop(name, None)
