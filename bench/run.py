"""``make bench``: every benchmark in turn, each printing its own table.

Run with ``python bench/run.py`` (``--only beat,api`` for some of them). Each benchmark
runs as its own process with the sizes below, chosen so that the whole run takes about
20 minutes on a 2-core machine (the beat benchmark, with its 1,000,000-job run, is most
of it). The exit status is non-zero if any benchmark failed; the others still run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> script and arguments; the order is the order they run in.
BENCHMARKS: dict[str, list[str]] = {
    "recurrence": ["bench_recurrence.py"],
    "workers": ["bench_workers.py", "2000"],
    "api": ["bench_api.py"],
    "beat": ["bench_beat.py", "--million"],
}


def _run(name: str, argv: list[str]) -> tuple[int, float]:
    print(f"\n## {name}: python bench/{' '.join(argv)}\n", flush=True)
    started = time.monotonic()
    status = subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], check=False)
    return status.returncode, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        type=lambda s: s.split(","),
        default=list(BENCHMARKS),
        help=f"comma-separated, of: {', '.join(BENCHMARKS)}",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    outcomes = {name: _run(name, BENCHMARKS[name]) for name in BENCHMARKS if name in args.only}
    print("\n## Summary\n")
    for name, (status, elapsed) in outcomes.items():
        verdict = "ok" if status == 0 else f"FAILED (exit status {status})"
        print(f"- {name}: {verdict}, {elapsed / 60:.1f} min")
    return 0 if all(status == 0 for status, _ in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
