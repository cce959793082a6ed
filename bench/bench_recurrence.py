"""How fast the recurrence engine answers "what is the next occurrence after t?".

Run with ``python bench/bench_recurrence.py``. For each typical rule it prints the
next-occurrence computations per second on a compiled rule (what the beat holds) and
through ``next_occurrence`` (JSON canonicalisation and the compile cache included),
then the cost of one answer for a minute-frequency job that started a year ago.
Each figure is the best of several rounds over 2,000 different ``after`` instants
spread over a year, so no answer is a repeat of the previous one.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import cpu_model
from scheduler.recurrence import compile_recurrence, next_occurrence

START = datetime(2025, 1, 6, 9, 30, tzinfo=UTC)
AFTERS = [START + timedelta(minutes=263 * i, seconds=i % 60) for i in range(2_000)]
ROUNDS = 7

RULES: dict[str, dict[str, Any]] = {
    "every minute": {"frequency": "Minute"},
    "every 15 minutes": {"frequency": "Minute", "interval": 15},
    "daily 10:00 Europe/Berlin": {
        "frequency": "Day",
        "schedule": {"hours": [10], "minutes": [0]},
        "timeZone": "Europe/Berlin",
    },
    "weekly Mon/Wed/Fri 10:00+22:00": {
        "frequency": "Week",
        "schedule": {
            "weekDays": ["Monday", "Wednesday", "Friday"],
            "hours": [10, 22],
            "minutes": [0],
        },
    },
    "monthly last Friday": {
        "frequency": "Month",
        "schedule": {"monthlyOccurrences": [{"day": "Friday", "Occurrence": -1}]},
    },
    'cron "*/5 * * * *"': {"cron": "*/5 * * * *"},
    'cron "*/5 * * * *" Europe/Berlin': {"cron": "*/5 * * * *", "timeZone": "Europe/Berlin"},
}


def _per_call_s(call: Callable[[datetime], object]) -> float:
    """The best seconds per call over ROUNDS rounds of len(AFTERS) calls."""
    best = float("inf")
    for _ in range(ROUNDS):
        began = time.perf_counter()
        for after in AFTERS:
            call(after)
        best = min(best, (time.perf_counter() - began) / len(AFTERS))
    return best


def main() -> None:
    """Print the table."""
    print(f"CPU: {cpu_model()}; Python {platform.python_version()}")
    print(f"{'rule':34} {'compiled rule':>16} {'next_occurrence()':>18}")
    for name, recurrence in RULES.items():
        rule = compile_recurrence(recurrence, START)
        compiled = _per_call_s(rule.next_after)
        through = _per_call_s(lambda after, r=recurrence: next_occurrence(r, START, after))
        print(f"{name:34} {1 / compiled:>12,.0f} /s {1 / through:>14,.0f} /s")

    year_ago = datetime(2024, 6, 1, 12, 0, 7, tzinfo=UTC)
    now = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
    minutely = {"frequency": "Minute"}
    rule = compile_recurrence(minutely, year_ago)
    warm = _per_call_s(lambda _after: rule.next_after(now))
    cached = _per_call_s(lambda _after: next_occurrence(minutely, year_ago, now))
    began = time.perf_counter()
    compile_recurrence({"frequency": "Minute", "interval": 1}, year_ago).next_after(now)
    cold = time.perf_counter() - began
    print()
    print("minute-frequency job started a year ago, next occurrence after now:")
    print(f"  compiled rule       {warm * 1e6:8.2f} µs")
    print(f"  next_occurrence()   {cached * 1e6:8.2f} µs  (cache hit)")
    print(f"  first call (cold)   {cold * 1e6:8.2f} µs  (parse, compile, answer)")


if __name__ == "__main__":
    main()
