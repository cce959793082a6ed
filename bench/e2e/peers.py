"""The bare Celery 5 peers: ``celery worker`` of :mod:`bench.e2e.peer_app` with a pool of
its own, on its own embedded Valkey; the benchmark publishes their messages."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery

from bench.e2e.peer_app import QUEUE, TASK, make_app
from bench.e2e.processes import (
    clean_environment,
    server_pid,
    signal_tree,
    snapshot,
    spawn,
    stop,
    valkey,
    wait,
)
from bench.e2e.runs import Run, checked, measured
from bench.e2e.sink import Sink

__all__ = ["PeerPipeline"]


@dataclass(frozen=True)
class PeerPipeline:
    """A bare Celery worker with ``pool_args`` (``-P prefork -c 2``...)."""

    name: str
    pool_args: tuple[str, ...]

    def run(self, sink: Sink, workdir: Path, options: argparse.Namespace) -> list[Run]:
        with valkey(workdir) as server:
            broker = server.connection_url.rsplit("/", 1)[0] + "/1"
            argv = [sys.executable, "-m", "celery", "-A", "bench.e2e.peer_app", "worker"]
            argv += [*self.pool_args, "-Q", QUEUE, "-l", "WARNING"]
            argv += ["--without-mingle", "--without-gossip"]
            worker = spawn(argv, clean_environment(E2E_PEER_BROKER=broker), workdir / "peer.log")
            pids = {"worker": worker.pid, "Valkey": server_pid(server)}
            session = _Session(
                self.name, sink, redis.Redis.from_url(broker), make_app(broker), pids
            )
            try:
                session.publish("warm", [(0, 0)])
                if not wait(lambda: sink.count() >= 1, 60):
                    raise SystemExit(f"{self.name}: the warm-up call never arrived; see {workdir}")
                sink.take()
                runs = [session.burst(options.jobs, options.cap_s)]
                if options.seconds > 0:
                    runs.append(session.steady(options.rate, options.seconds, options.cap_s))
            finally:
                stop([worker])
                session.client.close()
        return runs


@dataclass
class _Session:
    name: str
    sink: Sink
    client: redis.Redis
    app: Celery
    pids: dict[str, int]

    def publish(self, scenario: str, calls: Iterable[tuple[int, int]]) -> None:
        """One task per (index, due ms), each sent when ``calls`` yields it."""
        with self.app.producer_or_acquire() as producer:
            for index, due_ms in calls:
                url = f"{self.sink.url}/{scenario}/{index}/{due_ms}"
                self.app.send_task(TASK, args=[url], producer=producer)

    def burst(self, n: int, cap_s: float) -> Run:
        """``n`` messages queued while the worker is stopped; due when it continues."""
        signal_tree(self.pids["worker"], signal.SIGSTOP)
        self.publish("burst", ((i, 0) for i in range(n)))
        before = snapshot(self.client, self.pids)
        due_at = time.time()
        signal_tree(self.pids["worker"], signal.SIGCONT)
        complete = wait(lambda: self.sink.count() >= n, cap_s)
        run = measured(self.name, "burst", n, due_at, self.sink, self.client, self.pids, before)
        return checked(run, complete, cap_s)

    def steady(self, rate: float, seconds: float, cap_s: float) -> Run:
        """``rate`` messages a second, each published at its due time by this process."""
        n = int(rate * seconds)
        before = snapshot(self.client, self.pids)
        start = time.time() + 0.5
        self.publish("steady", _paced(start, rate, n))
        complete = wait(lambda: self.sink.count() >= n, cap_s)
        run = measured(self.name, "steady", n, start, self.sink, self.client, self.pids, before)
        return checked(run, complete, cap_s)


def _paced(start: float, rate: float, n: int) -> Iterator[tuple[int, int]]:
    for i in range(n):
        due = start + i / rate
        if (wait_s := due - time.time()) > 0:
            time.sleep(wait_s)
        yield i, int(due * 1000)
