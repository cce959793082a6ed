"""The beat benchmark's one table, the ratios and the issue's targets, as Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median

from bench.beat.scenarios import Burst, Lateness, Sustained

__all__ = ["METRICS_OFF", "METRICS_ON", "Results", "report"]

TAKT = "Takt"
METRICS_ON = "Takt, metrics on (the default)"
METRICS_OFF = "Takt, metrics off (TAKT_METRICS=false)"


@dataclass
class Results:
    machine_before: str
    machine_after: str = ""
    sustained: list[Sustained] = field(default_factory=list)
    bursts: list[Burst] = field(default_factory=list)
    #: Sustained runs with metrics on and off, alternating (``--metrics-rounds``).
    metrics: list[Sustained] = field(default_factory=list)

    def rate(self, scheduler: str, n: int, beats: int = 1) -> float | None:
        return next(
            (
                s.firings_per_s
                for s in self.sustained
                if (s.scheduler, s.n, s.beats) == (scheduler, n, beats)
            ),
            None,
        )

    def run(self, scheduler: str, n: int, beats: int = 1) -> Sustained | None:
        return next(
            (s for s in self.sustained if (s.scheduler, s.n, s.beats) == (scheduler, n, beats)),
            None,
        )


def _duration(ms: float) -> str:
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def _lateness(lateness: Lateness | None) -> str:
    if lateness is None:
        return "–"
    return " / ".join(_duration(v) for v in (lateness.p50_ms, lateness.p99_ms, lateness.max_ms))


def _burst(burst: Burst | None) -> str:
    if burst is None:
        return "–"
    if burst.started_after_s is None:
        return f"capped at {burst.elapsed_s:.0f} s: none fired"
    if burst.drain_s is not None:
        rate = burst.n / burst.drain_s if burst.drain_s > 0 else float("inf")
        return f"{burst.drain_s:.2f} s ({rate:,.0f}/s)"
    firing_s = max(burst.elapsed_s - burst.started_after_s, 1e-3)
    return (
        f"capped at {burst.elapsed_s:.0f} s: {burst.fired:,} of {burst.n:,} "
        f"({burst.fired / firing_s:,.0f}/s)"
    )


def _started(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.1f} s"


def _commands(run: Sustained) -> str:
    if run.commands is None or not run.firings:
        return "–"
    return f"{run.commands.total / run.firings:.1f}"


def _row(run: Sustained, burst: Burst | None) -> str:
    name = run.scheduler if run.beats == 1 else f"{run.scheduler}, {run.beats} beats"
    rate = "none fired" if run.firings_per_s is None else f"{run.firings_per_s:,.0f}"
    rss = " + ".join(f"{v:.0f}" for v in run.rss_mib) or "–"
    cells = [
        name,
        f"{run.n:,}",
        rate,
        _started(run.started_after_s),
        _lateness(run.lateness),
        _burst(burst),
        _started(burst.started_after_s if burst else None),
        rss,
        _commands(run),
    ]
    return "| " + " | ".join(cells) + " |"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.1f}×"


def _ratios(results: Results) -> list[str]:
    lines = []
    peers = {s.scheduler for s in results.sustained if not s.scheduler.startswith(TAKT)}
    for peer in sorted(peers):
        parts = [
            f"N={s.n:,}: {_ratio(results.rate(TAKT, s.n), s.firings_per_s)}"
            for s in results.sustained
            if s.scheduler == peer
        ]
        lines.append(f"- Takt ÷ {peer}, firings/s sustained: " + ", ".join(parts))
        burst_parts = []
        for burst in results.bursts:
            takt = next((b for b in results.bursts if (b.scheduler, b.n) == (TAKT, burst.n)), None)
            if burst.scheduler == peer and takt is not None:
                burst_parts.append(
                    f"N={burst.n:,}: {_ratio(_drain_rate(takt), _drain_rate(burst))}"
                )
        lines.append(f"- Takt ÷ {peer}, burst drain rate: " + ", ".join(burst_parts))
    floors = [f"{run.n:,}" for run in _takt_runs(results) if _fires_all_due(run)]
    if floors:
        lines.append(
            f"- at N = {', '.join(floors)} Takt fires everything due (N/s), so the ratio there"
            " is a floor, not a measure of its capacity"
        )
    for two in (s for s in results.sustained if s.beats == 2):
        lines.append(
            f"- two beats ÷ one ({two.scheduler}) at N={two.n:,}: "
            f"{_ratio(two.firings_per_s, results.rate(two.scheduler, two.n))}"
        )
    return lines


def _takt_runs(results: Results) -> list[Sustained]:
    return [s for s in results.sustained if s.scheduler == TAKT and s.beats == 1]


def _fires_all_due(run: Sustained) -> bool:
    """Whether a sustained run met its whole demand (N jobs every second: N/s), which
    bounds its rate from above: its ratio to a peer is then a floor."""
    return (run.firings_per_s or 0) >= 0.95 * run.n


def _drain_rate(burst: Burst) -> float | None:
    if burst.started_after_s is None:
        return None
    firing_s = (
        burst.drain_s if burst.drain_s is not None else burst.elapsed_s - burst.started_after_s
    )
    return burst.fired / firing_s if firing_s > 0 else None


def _target(
    label: str, value: float | None, unit: str, target: float, higher_is_better: bool = True
) -> str:
    """One target line: the value and whether it is met, or by how much it is missed."""
    if value is None:
        return f"- {label}: not measured"
    met = value >= target if higher_is_better else value <= target
    shown = unit.format(value)
    if met:
        return f"- {label}: {shown} → met"
    short = (1 - value / target) if higher_is_better else (value / target - 1)
    return f"- {label}: {shown} → missed by {short * 100:.0f} %"


def _targets(results: Results) -> list[str]:
    takt = _takt_runs(results)
    best = max((s.firings_per_s or 0 for s in takt if s.n >= 10_000), default=None)
    redbeat = [s for s in results.sustained if s.scheduler.startswith("redbeat")]
    # Where Takt fired all that was due, the ratio is a floor: judge it where it did not.
    capacity_bound = {s.n for s in takt if not _fires_all_due(s)}
    ratios = [
        (results.rate(TAKT, s.n) or 0) / s.firings_per_s
        for s in redbeat
        if s.firings_per_s and s.n in capacity_bound
    ]
    scaling = {
        two.scheduler: two.firings_per_s / one
        for two in results.sustained
        if two.beats == 2 and two.firings_per_s and (one := results.rate(two.scheduler, two.n))
    }
    at_1k = results.run(TAKT, 1_000)
    p99 = at_1k.lateness.p99_ms if at_1k is not None and at_1k.lateness is not None else None
    small, big = results.run(TAKT, 10_000), results.run(TAKT, 1_000_000)
    growth = None
    if small is not None and big is not None and small.rss_mib and big.rss_mib:
        growth = big.rss_mib[0] / small.rss_mib[0]
    return [
        _target(
            "≥ 5,000 firings/s sustained from one beat (best N ≥ 10k)", best, "{:,.0f}/s", 5000
        ),
        _target(
            "≥ 20× redbeat (lowest ratio at an N where Takt does not fire all that is due)",
            min(ratios, default=None),
            "{:.1f}×",
            20,
        ),
        *(
            _target(f"two beats ≥ 1.7× one ({name})", value, "{:.2f}×", 1.7)
            for name, value in (scaling.items() or [(TAKT, None)])
        ),
        _target("lateness p99 ≤ 50 ms at 1,000 firings/s", p99, "{:.1f} ms", 50, False),
        _target("RSS with 1M jobs ≤ 1.2 × RSS with 10k", growth, "{:.2f}×", 1.2, False),
    ]


def _command_mix(results: Results) -> list[str]:
    lines = []
    for run in results.sustained:
        if (
            run.commands is not None
            and run.firings
            and run.n == max(s.n for s in results.sustained if s.scheduler == run.scheduler)
        ):
            beats = "" if run.beats == 1 else f", {run.beats} beats"
            lines.append(f"- {run.scheduler}{beats}, N={run.n:,}: {run.commands.top(run.firings)}")
    return lines


def _cpu_lines(results: Results) -> list[str]:
    """Where the CPU went in each sustained window: whether a beat is bound by its own
    core (near 100 %) or waits on Redis, and what one firing costs each side."""
    lines = []
    for run in results.sustained:
        if run.cpu is None or not run.firings_per_s:
            continue
        beats = " + ".join(f"{v:.0f} %" for v in run.cpu.beats_percent)
        per_firing = 1e4 / run.firings_per_s  # µs per firing for 1 % of a core
        beat_us = sum(run.cpu.beats_percent) * per_firing
        redis_us = run.cpu.redis_percent * per_firing
        name = run.scheduler if run.beats == 1 else f"{run.scheduler}, {run.beats} beats"
        lines.append(
            f"- {name}, N={run.n:,}: beat {beats}, Redis {run.cpu.redis_percent:.0f} % of a core;"
            f" per firing: beat {beat_us:.0f} µs, Redis {redis_us:.0f} µs"
        )
    return lines


def _metrics_cost(runs: list[Sustained]) -> list[str]:
    """Metrics on against off: each side's sustained firings/s, their medians and ratio."""
    on = [r.firings_per_s or 0.0 for r in runs if r.scheduler == METRICS_ON]
    off = [r.firings_per_s or 0.0 for r in runs if r.scheduler == METRICS_OFF]
    if not on or not off:
        return []
    n = runs[0].n
    return [
        "",
        f"What metrics cost: one beat, N={n:,} (capacity-bound), {len(on)} sustained runs each "
        "way, alternating:",
        f"- {METRICS_ON}: {', '.join(f'{v:,.0f}' for v in on)} firings/s, median {median(on):,.0f}",
        f"- {METRICS_OFF}: {', '.join(f'{v:,.0f}' for v in off)} firings/s, median "
        f"{median(off):,.0f}",
        f"- on ÷ off: {median(on) / max(median(off), 1e-9):.3f}× (issue 16: they cost less "
        "than 3 %)",
    ]


def report(results: Results) -> str:
    bursts = {(b.scheduler, b.n): b for b in results.bursts}
    header = (
        "| beat | jobs | firings/s sustained | first firing after | lateness p50 / p99 / max "
        "| burst: first → last firing | burst: first firing after | beat RSS (MiB) "
        "| Redis commands per firing |"
    )
    notes = [
        f"- {run.scheduler} N={run.n:,}: {note}" for run in results.sustained for note in run.notes
    ]
    return "\n".join(
        [
            f"machine: {results.machine_before}",
            f"at the end: load average {results.machine_after.rsplit('load average ', 1)[-1]}",
            "",
            header,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *(
                _row(run, bursts.get((run.scheduler, run.n)) if run.beats == 1 else None)
                for run in results.sustained
            ),
            "",
            "Ratios:",
            *_ratios(results),
            "",
            "Targets (Takt):",
            *_targets(results),
            "",
            "Redis commands run per firing, most frequent (Lua scripts' own calls included):",
            *_command_mix(results),
            "",
            "CPU during the sustained window (% of one core; 2 cores in all):",
            *_cpu_lines(results),
            *_metrics_cost(results.metrics),
            *(["", "Notes:", *notes] if notes else []),
        ]
    )
