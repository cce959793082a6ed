"""``bench/run.py --against``: the figures it reads off each benchmark's tables."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from tests.support.helpers import ROOT


@pytest.fixture(scope="module")
def run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BEAT = """machine: x

| beat | jobs | firings/s sustained | lateness p50 / p99 / max | beat RSS (MiB) |
|---|---:|---:|---:|---:|
| Takt | 1,000 | 1,000 | 1.0 ms / 3.5 ms / 10 ms | 85 |
| Takt | 100,000 | 34,920 | 2.5 s / 3.5 s / 3.7 s | 86 |

ratio: 51x
| worker | actions/s |
|---|---:|
| Takt, thread pool | 412.5 |
"""


def test_rows_are_keyed_by_their_label_and_numbers_read_with_units(run: ModuleType) -> None:
    # Given a benchmark's output with two tables, the first repeating its first column
    figures = run.table_figures(BEAT)

    # Then a repeated first column is keyed with the second, and each number is read
    assert figures[("Takt, 100,000", "firings/s sustained")] == 34_920
    assert figures[("Takt, 1,000", "beat RSS (MiB)")] == 85
    assert figures[("Takt, thread pool", "actions/s")] == 412.5
    # And a cell holding several figures is not taken for one
    assert ("Takt, 1,000", "lateness p50 / p99 / max") not in figures
    assert len(figures) == 5
