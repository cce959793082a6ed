"""The two measured scenarios, each bounded in time.

Sustained: N jobs every second. The beat starts; once its first message arrived, a
``warm_up_s`` period lets it through the start, then a ``window_s`` window is measured:
firings per second (messages that arrived in the window ÷ its length), dispatch lateness
of those messages, Redis commands per firing over the window, and the beat's RSS at its
end. At N above what a beat can fire per second, firings/s is its throughput.

Burst: N one-shot jobs, all already due when the beat starts. Drain time is from the
first message to the last; the start (beat process started → first message) is reported
on its own. Either stops at ``cap_s`` after the beat started and reports how far it got.

Lateness (firing = the message's arrival at the recorder):
- Takt: arrival − the occurrence the message carries (the task args are job id and
  occurrence ms; occurrences are anchored on each job's start time, they do not drift).
- Peers: their messages carry no due time, and their schedules drift by design (the next
  run of a ``schedule(1 s)`` entry is 1 s after its *last run*). An entry's first due time
  is the one the benchmark stored; each later one is its previous arrival + 1 s, so the
  figure is the delay beyond the entry's own rule, in the peers' favour (it ignores drift).
"""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.beat.arrivals import ArrivalRecorder, Firing
from bench.beat.contenders import Contender, spawn
from bench.beat.populate import first_due_ms
from bench.beat.probes import (
    RedisCounters,
    cpu_seconds,
    percentile,
    redis_cpu_seconds,
    rss_mib,
)
from bench.e2e.processes import stop

__all__ = ["Burst", "Cpu", "Lateness", "Settings", "Sustained", "run_burst", "run_sustained"]

#: Peers' schedule interval in the sustained scenario.
_EVERY_MS = 1000


@dataclass(frozen=True)
class Settings:
    warm_up_s: float = 5.0
    window_s: float = 20.0
    cap_s: float = 60.0  # a run stops this long after the beat started, done or not
    profile: Path | None = None  # py-spy raw output of the Takt beat during the window


@dataclass(frozen=True)
class Lateness:
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, lateness_ms: Sequence[float]) -> Lateness | None:
        if not lateness_ms:
            return None
        ordered = sorted(lateness_ms)
        return cls(percentile(ordered, 50), percentile(ordered, 99), ordered[-1])


@dataclass(frozen=True)
class Sustained:
    scheduler: str
    n: int
    beats: int
    firings_per_s: float | None  # None: no firing before the cap
    lateness: Lateness | None
    rss_mib: list[float]
    commands: RedisCounters | None
    firings: int
    started_after_s: float | None
    notes: list[str] = field(default_factory=list)
    cpu: Cpu | None = None


@dataclass(frozen=True)
class Cpu:
    """CPU used during the window, in % of one core: each beat process's, Redis's."""

    beats_percent: list[float]
    redis_percent: float


@dataclass(frozen=True)
class Burst:
    scheduler: str
    n: int
    fired: int
    drain_s: float | None  # first → last message, when all N fired
    started_after_s: float | None  # beat started → first message
    elapsed_s: float  # beat started → last message (or the cap)
    rss_mib: float | None


def _fresh(url: str) -> redis.Redis:
    control = redis.Redis.from_url(url, client_name="bench-control")
    control.flushall()
    return control


def _wait_first(recorder: ArrivalRecorder, deadline: float) -> float | None:
    while time.monotonic() < deadline:
        if recorder.first_at is not None:
            return recorder.first_at
        time.sleep(0.05)
    return None


def _start(
    contender: Contender, url: str, n: int, recurring: bool, workdir: Path, beats: int
) -> tuple[ArrivalRecorder, list[subprocess.Popen[bytes]], float]:
    recorder = ArrivalRecorder(url, [contender.queue]).start()
    argv, env = contender.command(url, n, recurring, workdir)
    started = time.time()
    processes = [spawn(argv, env, workdir, f"beat-{i}.log") for i in range(beats)]
    return recorder, processes, started


def run_sustained(
    contender: Contender, url: str, n: int, workdir: Path, settings: Settings, beats: int = 1
) -> Sustained:
    control = _fresh(url)
    lead_s = 3.0 + n / 20_000  # time to write the jobs and start the beat, roughly
    t0_ms = int((time.time() + lead_s) * 1000)
    contender.populate(url, n, t0_ms, True, workdir)
    recorder, processes, started = _start(contender, url, n, True, workdir, beats)
    notes: list[str] = []
    try:
        first = _wait_first(recorder, time.monotonic() + settings.cap_s)
        if first is None:
            return Sustained(contender.name, n, beats, None, None, [], None, 0, None, notes)
        time.sleep(max(0.0, first + settings.warm_up_s - time.time()))
        before, count_before, window_start = (
            RedisCounters.read(control),
            recorder.count,
            time.time(),
        )
        cpu_before = [cpu_seconds(p.pid) for p in processes], redis_cpu_seconds(control)
        profiler = _profile(settings.profile, processes[0].pid, settings.window_s)
        time.sleep(settings.window_s)
        after, count_after, window_end = RedisCounters.read(control), recorder.count, time.time()
        cpu = _cpu(cpu_before, processes, control, window_end - window_start)
        rss = [value for p in processes if (value := rss_mib(p.pid)) is not None]
        backlog = int(control.llen(contender.queue))
        if profiler is not None:
            profiler.wait()
    finally:
        stop(processes)
        firings = recorder.stop()
    if backlog > 1000:
        notes.append(f"{backlog} messages not yet read at the window's end")
    fired = count_after - count_before
    window = [f for f in firings if window_start <= f.at <= window_end]
    lateness = Lateness.of(_lateness_ms(window, firings, n, t0_ms))
    return Sustained(
        contender.name,
        n,
        beats,
        fired / (window_end - window_start),
        lateness,
        rss,
        after.since(before),
        fired,
        first - started,
        notes,
        cpu,
    )


def _cpu(
    before: tuple[list[float | None], float],
    processes: Sequence[subprocess.Popen[bytes]],
    control: redis.Redis,
    window_s: float,
) -> Cpu | None:
    beats = [cpu_seconds(p.pid) for p in processes]
    if any(value is None for value in [*before[0], *beats]):
        return None
    used = [
        100 * (after - start) / window_s
        for after, start in zip(beats, before[0], strict=True)
        if after is not None and start is not None
    ]
    return Cpu(used, 100 * (redis_cpu_seconds(control) - before[1]) / window_s)


def _profile(path: Path | None, pid: int, seconds: float) -> subprocess.Popen[bytes] | None:
    if path is None:
        return None
    argv = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--output", str(path)]
    argv += ["--duration", str(int(seconds)), "--rate", "200", "--nonblocking"]
    venv_spy = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "py-spy"
    if venv_spy.exists():
        argv[0] = str(venv_spy)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _lateness_ms(
    window: Sequence[Firing], everything: Sequence[Firing], n: int, t0_ms: int
) -> list[float]:
    if window and window[0].occurrence_ms is not None:
        return [f.at * 1000 - f.occurrence_ms for f in window if f.occurrence_ms is not None]
    # Peers: each entry's due time is its previous arrival + 1 s (first: as stored).
    due_ms: dict[str, float] = {}
    lateness: dict[int, float] = {}
    in_window = {id(f) for f in window}
    by_entry: defaultdict[str, list[Firing]] = defaultdict(list)
    for firing in everything:
        by_entry[firing.ident].append(firing)
    for ident, sequence in by_entry.items():
        due_ms[ident] = first_due_ms(int(ident), n, t0_ms, True)
        for firing in sequence:
            if id(firing) in in_window:
                lateness[id(firing)] = firing.at * 1000 - due_ms[ident]
            due_ms[ident] = firing.at * 1000 + _EVERY_MS
    return list(lateness.values())


def run_burst(contender: Contender, url: str, n: int, workdir: Path, settings: Settings) -> Burst:
    _fresh(url)
    contender.populate(url, n, int(time.time() * 1000), False, workdir)
    recorder, processes, started = _start(contender, url, n, False, workdir, 1)
    deadline = time.monotonic() + settings.cap_s
    try:
        while recorder.count < n and time.monotonic() < deadline:
            time.sleep(0.02)
        rss = rss_mib(processes[0].pid)
    finally:
        stop(processes)
        firings = recorder.stop()
    if not firings:
        return Burst(contender.name, n, 0, None, None, settings.cap_s, rss)
    first, last = firings[0].at, firings[-1].at
    drained = len(firings) >= n
    return Burst(
        contender.name,
        n,
        len(firings),
        last - first if drained else None,
        first - started,
        last - started if drained else settings.cap_s,
        rss,
    )
