"""The end-to-end benchmark's tables, ratios and issue 15's targets, as Markdown."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from bench.beat.probes import percentile
from bench.e2e.runs import Run
from bench.e2e.sink import Capacity
from bench.e2e.tracing import profile_split
from bench.machine import describe

__all__ = ["METRICS_OFF", "METRICS_ON", "TAKT_DEFAULTS", "Results", "report"]

TAKT_DEFAULTS = "Takt, `make run` defaults"
METRICS_ON = "Takt, metrics on (the default)"
METRICS_OFF = "Takt, metrics off (TAKT_METRICS=false)"


@dataclass
class Results:
    machine_before: str
    capacity: Capacity
    runs: list[Run]
    #: Bursts with metrics on and off, alternating (``--metrics-rounds``).
    metric_runs: list[Run] = field(default_factory=list)

    def of(self, scenario: str) -> list[Run]:
        return [run for run in self.runs if run.scenario == scenario]


def report(results: Results, options: argparse.Namespace) -> str:
    lines = [
        f"machine: {results.machine_before}",
        f"at the end: load average {describe().rsplit('load average ', 1)[-1]}",
        *_instrumented(options),
        *_burst_table(results.of("burst"), options),
        *_steady_table(results.of("steady"), options),
        *_cpu_table(results.runs),
        *_sink_table(results.capacity),
        "",
        "Valkey commands per job, most frequent (INFO commandstats; scripts' own included):",
        *(f"- {r.pipeline}, {r.scenario}: {r.commands.top(r.executed, 8)}" for r in results.runs),
        *_round_trip_tables(results.runs),
        *_profiles(options.profile),
        *_ratios(results.of("burst")),
        *_minute_table(results.of("minute")),
        *_metrics_cost(results.metric_runs),
        *_targets(results.of("burst"), results.of("steady"), results.of("minute")),
    ]
    notes = [f"- {r.pipeline}, {r.scenario}: {note}" for r in results.runs for note in r.notes]
    return "\n".join([*lines, *(["", "Notes:", *notes] if notes else [])])


def _instrumented(options: argparse.Namespace) -> list[str]:
    """A warning when Takt's processes ran traced or profiled (both cost them CPU)."""
    tools = [
        *(["the round-trip tracer"] if options.round_trips else []),
        *(["py-spy (the worker, during the burst)"] if options.profile else []),
    ]
    if not tools:
        return []
    return [f"Takt's processes ran under {' and '.join(tools)}: their rates and CPU are lower."]


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _lateness(run: Run) -> list[str]:
    late = run.lateness_ms()
    if not late:
        return ["–"] * 3
    return [_ms(percentile(late, 50)), _ms(percentile(late, 99)), _ms(late[-1])]


def _recorded(run: Run) -> str:
    return "–" if run.recorded_once is None else f"{run.recorded_once:,}"


def _burst_table(runs: list[Run], options: argparse.Namespace) -> list[str]:
    return [
        "",
        f"### {options.jobs:,} jobs due at the same instant",
        "",
        "| pipeline | jobs | executed/s, first → last call | executed/s, due → last done "
        "| first call after due | lateness p50 | lateness p99 | lateness max "
        "| recorded exactly once |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.pipeline} | {r.executed:,} | {_rate(r.span_rate())} | {_rate(r.due_rate())} "
            f"| {r.first_after_s():.2f} s | {' | '.join(_lateness(r))} | {_recorded(r)} |"
            for r in runs
        ),
    ]


def _steady_table(runs: list[Run], options: argparse.Namespace) -> list[str]:
    if not runs:
        return []
    return [
        "",
        f"### A steady {options.rate:g} jobs/s for {options.seconds:g} s",
        "",
        # Headers of their own: bench/run.py keys a figure by its row and its column.
        "| pipeline | steady: jobs | steady: executed/s | steady: lateness p50 "
        "| steady: lateness p99 | steady: lateness max | steady: recorded exactly once |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.pipeline} | {r.executed:,} | {_rate(r.span_rate())} "
            f"| {' | '.join(_lateness(r))} | {_recorded(r)} |"
            for r in runs
        ),
    ]


def _cpu_table(runs: list[Run]) -> list[str]:
    return [
        "",
        "### CPU per executed job, ms (/proc utime + stime, children included)",
        "",
        "| pipeline | scenario | beat | worker | Valkey | all three | Valkey commands per job |",
        "|---|---|---:|---:|---:|---:|---:|",
        *(_cpu_row(run) for run in runs),
    ]


def _cpu_row(run: Run) -> str:
    per_job = {name: 1000 * cpu / max(run.executed, 1) for name, cpu in run.cpu_s.items()}
    cells = [f"{per_job[n]:.2f}" if n in per_job else "–" for n in ("beat", "worker", "Valkey")]
    commands = run.commands.total / max(run.executed, 1)
    return (
        f"| {run.pipeline} | {run.scenario} | {' | '.join(cells)} "
        f"| {sum(per_job.values()):.2f} | {commands:.1f} |"
    )


def _sink_table(capacity: Capacity) -> list[str]:
    return [
        "",
        "### The sink alone (the ceiling)",
        "",
        "| sink | requests/s | sink CPU per request | one core's worth |",
        "|---|---:|---:|---:|",
        f"| asyncio (uvloop), 32 keep-alive connections | {capacity.per_s:,.0f} "
        f"| {capacity.cpu_ms * 1000:.0f} µs | {1000 / max(capacity.cpu_ms, 1e-6):,.0f}/s |",
    ]


def _round_trip_tables(runs: list[Run]) -> list[str]:
    lines = []
    for run in (r for r in runs if r.round_trips):
        total = {
            name: sum(r[3] for r in run.round_trips if r[0] == name) for name in ("beat", "worker")
        }
        lines += [
            "",
            f"### Redis round trips per job, {run.pipeline}, {run.scenario} (traced run)",
            "",
            f"{total['worker']:.2f} from the worker, {total['beat']:.2f} from the beat; a "
            "pipeline or a script is one.",
            "",
            "| process | commands | sent by | per job |",
            "|---|---|---|---:|",
            *(
                f"| {process} | {commands} | {site} | {per_job:.2f} |"
                for process, commands, site, per_job in run.round_trips
                if per_job >= 0.005
            ),
        ]
    return lines


def _profiles(folder: Path | None) -> list[str]:
    lines = []
    for path in sorted(folder.glob("worker-*.txt")) if folder else []:
        lines += [
            "",
            f"### Where the worker's CPU goes ({path.name}: py-spy --gil, the burst)",
            "",
            "| part | share of the worker's CPU |",
            "|---|---:|",
            *(f"| {part} | {share * 100:.1f} % |" for part, share in profile_split(path)),
        ]
    return lines


def _ratios(bursts: list[Run]) -> list[str]:
    takt = [r for r in bursts if r.pipeline.startswith("Takt")]
    peers = [r for r in bursts if not r.pipeline.startswith("Takt")]
    lines = [
        f"- {t.pipeline} ÷ {p.pipeline}: {(t.due_rate() or 0) / (p.due_rate() or 1):.2f}×"
        for t in takt
        for p in peers
    ]
    return ["", "Ratios, executed/s from due to last done (burst):", *lines] if lines else []


def _metrics_cost(runs: list[Run]) -> list[str]:
    """Metrics on against off: medians of the alternating bursts, and their ratio."""
    on = [r for r in runs if r.pipeline == METRICS_ON]
    off = [r for r in runs if r.pipeline == METRICS_OFF]
    if not on or not off:
        return []

    def rates(side: list[Run]) -> list[float]:
        return [r.due_rate() or 0.0 for r in side]

    def worker_ms(side: list[Run]) -> list[float]:
        return [1000 * r.cpu_s.get("worker", 0.0) / max(r.executed, 1) for r in side]

    rate_on, rate_off = median(rates(on)), median(rates(off))
    cpu_on, cpu_off = median(worker_ms(on)), median(worker_ms(off))
    return [
        "",
        f"### What metrics cost: {len(on)} bursts of {on[0].jobs:,} jobs each way, alternating",
        "",
        "| pipeline | executed/s, each burst | median | worker CPU per job, median |",
        "|---|---|---:|---:|",
        f"| {METRICS_ON} | {', '.join(f'{v:,.0f}' for v in rates(on))} | {rate_on:,.0f} "
        f"| {cpu_on:.2f} ms |",
        f"| {METRICS_OFF} | {', '.join(f'{v:,.0f}' for v in rates(off))} | {rate_off:,.0f} "
        f"| {cpu_off:.2f} ms |",
        "",
        f"Metrics on ÷ off: executed/s {rate_on / max(rate_off, 1e-9):.3f}×, worker CPU per "
        f"job {cpu_on / max(cpu_off, 1e-9):.3f}× (issue 16: they cost less than 3 %).",
    ]


def _minute_table(runs: list[Run]) -> list[str]:
    if not runs:
        return []
    lines = [
        "",
        f"### A minute's burst: {runs[0].jobs:,} jobs due at one instant (Takt)",
        "",
        "| pipeline | executed/s, due → last done | last done after due | lateness p50 "
        "| lateness p99 | recorded exactly once |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        late = run.lateness_ms()
        done = _drained_s(run)
        lines.append(
            f"| {run.pipeline} | {run.due_rate() or 0:,.0f} "
            f"| {'–' if done is None else f'{done:.1f} s'} "
            f"| {_ms(percentile(late, 50)) if late else '–'} "
            f"| {_ms(percentile(late, 99)) if late else '–'} | {run.recorded_once or 0:,} |"
        )
    return lines


def _drained_s(run: Run) -> float | None:
    """Seconds from the due instant to the last job done."""
    if not run.arrivals:
        return None
    last = run.done_at or max(arrival.at for arrival in run.arrivals)
    return last - run.due_at


def _targets(bursts: list[Run], steady: list[Run], minute: list[Run]) -> list[str]:
    takt = next((r for r in bursts if r.pipeline == TAKT_DEFAULTS), None)
    prefork = next((r for r in bursts if "prefork" in r.pipeline), None)
    calm = next((r for r in steady if r.pipeline == TAKT_DEFAULTS), None)
    if takt is None:
        return []
    rate = takt.due_rate() or 0
    lines = ["", "Targets (issue 15, Takt with `make run` defaults):"]
    lines.append(
        f"- ≥ 1,000 jobs/s executed and recorded: {rate:,.0f}/s → {_verdict(rate >= 1000)}"
    )
    if prefork is not None:
        ratio = rate / (prefork.due_rate() or 1)
        lines.append(f"- ≥ 2× the bare prefork worker: {ratio:.2f}× → {_verdict(ratio >= 2)}")
    once = takt.recorded_once == takt.jobs and not takt.notes
    lines.append(f"- every call recorded exactly once: {_verdict(once)}")
    if calm is not None and calm.lateness_ms():
        p99 = percentile(calm.lateness_ms(), 99)
        lines.append(f"- lateness p99 ≤ 1 s at a steady rate: {_ms(p99)} → {_verdict(p99 <= 1000)}")
    burst = next((r for r in minute if r.pipeline == TAKT_DEFAULTS), None)
    if burst is not None:
        done = _drained_s(burst)
        whole = burst.recorded_once == burst.jobs and not burst.notes
        met = done is not None and done <= 60 and whole
        shown = "never" if done is None else f"{done:.1f} s"
        lines.append(
            f"- {burst.jobs:,} jobs due at one instant done within the minute: {shown}"
            f"{'' if whole else ' (not every job recorded once)'} → {_verdict(met)}"
        )
    return lines


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"
