"""``make bench``: every benchmark in turn, each printing its own table.

Run with ``python bench/run.py`` (``--only beat,api`` for some of them). Each benchmark
runs as its own process with the sizes below, chosen so that the whole run takes about
25 minutes on a 2-core machine (the beat benchmark, with its 1,000,000-job run, is most
of it). The exit status is non-zero if any benchmark failed; the others still run.

``--against REV`` measures a change: it checks REV out beside this tree (a detached git
worktree in a temporary folder) and runs each benchmark from both trees in turn, REV first,
``--rounds`` times, each tree with its own benchmark scripts and code. It ends with every
table row the two share, each figure as the median over the rounds, and new ÷ base.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: name -> script and arguments; the order is the order they run in.
BENCHMARKS: dict[str, list[str]] = {
    "recurrence": ["bench_recurrence.py"],
    "workers": ["bench_workers.py", "2000"],
    "api": ["bench_api.py"],
    "beat": ["bench_beat.py", "--million"],
    "e2e": ["bench_e2e.py", "--jobs", "5000", "--rate", "500", "--seconds", "30"],
}

#: What ``--against`` runs: the same benchmarks without their peers and the million-job
#: run, so that each round of a pair takes a few minutes.
COMPARED: dict[str, list[str]] = {
    "recurrence": ["bench_recurrence.py"],
    "workers": ["bench_workers.py", "2000", "--no-peer"],
    "api": ["bench_api.py", "--jobs", "20000"],
    "beat": ["bench_beat.py", "--only", "takt", "--two-beats", "0", "--metrics-rounds", "0"],
    "e2e": [
        "bench_e2e.py",
        *("--jobs", "2000", "--seconds", "10", "--no-peers"),
        *("--minute-jobs", "0", "--metrics-rounds", "0"),
    ],
}

_NUMBER = re.compile(r"^[~≈]?\s*([\d,]+(?:\.\d+)?)\s*(?:[a-zµ/%×x]+(?:/s)?)?$")


def _run(name: str, argv: list[str], tree: Path = ROOT) -> tuple[int, float, str]:
    """Run one benchmark script of ``tree`` with that tree's code first on the path."""
    print(f"\n## {name}: python bench/{' '.join(argv)}  ({tree})\n", flush=True)
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")])),
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(tree / "bench" / argv[0]), *argv[1:]],
        cwd=tree,
        env=environ,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    return process.wait(), time.monotonic() - started, "".join(lines)


def table_figures(output: str) -> dict[tuple[str, str], float]:
    """Every number in a Markdown table row of ``output``, keyed by (row's first cell,
    column header)."""
    figures: dict[tuple[str, str], float] = {}
    for table in _tables(output):
        headers, rows = table[0], table[1:]
        # A table whose first column repeats (the beat's: "Takt" for each size) is keyed
        # by its first two cells.
        width = 1 if len({row[0] for row in rows}) == len(rows) else 2
        for row in rows:
            label = ", ".join(row[:width])
            for header, cell in zip(headers[width:], row[width:], strict=False):
                match = _NUMBER.match(cell.replace("*", ""))
                if match:
                    figures[(label, header)] = float(match.group(1).replace(",", ""))
    return figures


def _tables(output: str) -> list[list[list[str]]]:
    """The Markdown tables in ``output``: each a header row and its rows of cells."""
    tables: list[list[list[str]]] = []
    previous = ""
    for line in output.splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not previous.startswith("|"):
                tables.append([cells])
            elif not all(set(cell) <= set("-: ") for cell in cells):
                tables[-1].append(cells)
        previous = line
    return tables


@contextmanager
def _checked_out(revision: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="takt-bench-") as folder:
        tree = Path(folder) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(tree), revision],
            cwd=ROOT,
            check=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
            )


def _compare(names: list[str], revision: str, rounds: int) -> int:
    runs: dict[str, dict[str, list[dict[tuple[str, str], float]]]] = {}
    failed = []
    with _checked_out(revision) as base:
        for name in names:
            runs[name] = {"base": [], "new": []}
            for _ in range(rounds):
                for side, tree in (("base", base), ("new", ROOT)):
                    status, _, output = _run(f"{name} ({side})", COMPARED[name], tree)
                    if status:
                        failed.append(f"{name} ({side})")
                    runs[name][side].append(table_figures(output))
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    print(f"\n## {revision} (base) against {head.stdout.strip()} (new), median of {rounds}\n")
    print("| benchmark | row | column | base | new | new ÷ base |")
    print("|---|---|---|---:|---:|---:|")
    for name, sides in runs.items():
        shared = set.intersection(*(set(figures) for side in sides.values() for figures in side))
        for row, column in sorted(shared):
            base_value, new_value = (
                statistics.median(figures[(row, column)] for figures in sides[side])
                for side in ("base", "new")
            )
            ratio = f"{new_value / base_value:.2f}" if base_value else "-"
            print(f"| {name} | {row} | {column} | {base_value:,.6g} | {new_value:,.6g} | {ratio} |")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        type=lambda s: s.split(","),
        default=list(BENCHMARKS),
        help=f"comma-separated, of: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--against", metavar="REV", help="a git revision to compare with")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs with --against")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    names = [name for name in BENCHMARKS if name in args.only]
    if args.against:
        return _compare(names, args.against, args.rounds)
    outcomes = {name: _run(name, BENCHMARKS[name])[:2] for name in names}
    print("\n## Summary\n")
    for name, (status, elapsed) in outcomes.items():
        verdict = "ok" if status == 0 else f"FAILED (exit status {status})"
        print(f"- {name}: {verdict}, {elapsed / 60:.1f} min")
    return 0 if all(status == 0 for status, _ in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
