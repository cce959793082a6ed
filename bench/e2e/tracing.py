"""Where a Takt process's Redis round trips and CPU go: a round-trip tracer installed in the
process, and a py-spy profile split into the parts of an attempt.

**Round trips.** ``traced_argv`` turns ``python -m scheduler ...`` into the same command run
through :func:`run_traced`, which patches redis-py's ``send_packed_command`` (every command,
pipeline and script call leaves through it: one call is one round trip, kombu's broker
connection included) to note when, which commands, and the code that sent them: the
innermost frames of Takt's own code, then of the library below it. The list is written to
``E2E_ROUND_TRIPS`` when the process exits. Noting the stack costs the process some CPU,
so a traced run's other figures are not the untraced ones.

**Profile.** py-spy samples the worker while it holds the GIL (``--gil``: the samples are
its CPU time, not its threads' waits); :func:`profile_split` gives each sample to the first
part of an attempt, in :data:`PARTS` order, that a frame of its stack names.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import runpy
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import redis.connection

from bench.e2e.processes import ROOT

__all__ = [
    "PARTS",
    "profile_split",
    "round_trips",
    "run_traced",
    "start_profile",
    "stop_profile",
    "traced_argv",
]

_OUT = "E2E_ROUND_TRIPS"
_BOOT = "from bench.e2e.tracing import run_traced; run_traced()"
_OURS = tuple(f"{ROOT}/{package}/" for package in ("scheduler", "workers", "beat"))
_NOT_OURS = (f"{ROOT}/scheduler/cli/", f"{ROOT}/scheduler/__main__")


def traced_argv(argv: Sequence[str]) -> list[str]:
    """``[python, -m, scheduler, *rest]`` run with the round-trip tracer."""
    assert list(argv[1:3]) == ["-m", "scheduler"], argv
    return [argv[0], "-c", _BOOT, *argv[3:]]


def run_traced() -> None:
    """``python -m scheduler`` with the tracer on (the process's ``-c`` entry point)."""
    _install(Path(os.environ[_OUT]))
    sys.argv = ["scheduler", *sys.argv[1:]]
    runpy.run_module("scheduler", run_name="__main__", alter_sys=True)


def _install(out: Path) -> None:
    records: list[tuple[float, str, str]] = []
    lock = threading.Lock()
    send = redis.connection.AbstractConnection.send_packed_command

    def traced(self: Any, command: Any, check_health: bool = True) -> None:
        record = (time.time(), " ".join(_names(command)), _site(sys._getframe(1)))
        with lock:
            records.append(record)
        send(self, command, check_health)  # type: ignore[no-untyped-call]

    redis.connection.AbstractConnection.send_packed_command = traced  # type: ignore[method-assign]
    atexit.register(lambda: out.write_text("".join(json.dumps(r) + "\n" for r in records)))


def _names(command: Any) -> list[str]:
    """The command names in a packed RESP request (several for a pipeline)."""
    data = b"".join(map(bytes, command)) if isinstance(command, list | tuple) else bytes(command)
    names, i = [], 0
    while data[i : i + 1] == b"*":
        end = data.index(b"\r\n", i)
        parts, i = int(data[i + 1 : end]), end + 2
        for part in range(parts):
            end = data.index(b"\r\n", i)
            length, i = int(data[i + 1 : end]), end + 2
            if part == 0:
                names.append(data[i : i + length].decode("latin-1").upper())
            i += length + 2
    return names


def _site(frame: FrameType | None) -> str:
    """Takt's innermost three frames, then the library's innermost two below them."""
    frames = []
    while frame is not None:
        frames.append((frame.f_code.co_filename, frame.f_code.co_qualname))
        frame = frame.f_back
    frames.reverse()
    ours = [i for i, (path, _) in enumerate(frames) if path.startswith(_OURS)]
    chain = [_where(*frames[i]) for i in ours if not frames[i][0].startswith(_NOT_OURS)]
    below = frames[ours[-1] + 1 :] if ours else frames
    library = [_where(*f) for f in below if "/redis/" not in f[0]]
    return " > ".join(chain[-3:] + library[-2:])


def _where(path: str, name: str) -> str:
    module = path.removeprefix(f"{ROOT}/").rsplit("site-packages/", 1)[-1]
    return f"{module.removesuffix('.py').replace('/', '.')}:{name}"


def round_trips(path: Path, since: float, until: float) -> Counter[tuple[str, str]]:
    """(commands, sent by) -> how many round trips between ``since`` and ``until``."""
    counts: Counter[tuple[str, str]] = Counter()
    if not path.exists():
        return counts
    for line in path.read_text().splitlines():
        at, commands, site = json.loads(line)
        if since <= at <= until:
            counts[(commands, site)] += 1
    return counts


def start_profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` (100 Hz, while it holds the GIL) into ``out``, raw. It does
    not stop the process to sample it (``--nonblocking``): stopped 250 times a second, a
    worker's consumer slowed five-fold and took twice its share of the samples."""
    venv = ROOT / ".venv" / "bin" / "py-spy"
    argv = [str(venv) if venv.exists() else "py-spy", "record", "--pid", str(pid), "--gil"]
    argv += ["--rate", "100", "--nonblocking", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    spy.wait(timeout=60)


_Test = Callable[[str, str], bool]


def _takt(name: str, path: str) -> bool:
    return (path.startswith("workers/") and not path.startswith("workers/pool")) or (
        path.startswith("scheduler/")
        and not path.startswith(("scheduler/cli", "scheduler/__", _TRANSPORT))
    )


#: Takt's Redis transport (kombu's, batched): the consumer's side, not the task's.
_TRANSPORT = "scheduler/dispatch/transport"


#: The parts of a worker's CPU time; a sample goes to the first whose test a frame of its
#: stack passes (a function's name, its file relative to site-packages or the tree).
PARTS: list[tuple[str, _Test]] = [
    (
        "logging (Celery's received/succeeded lines, Takt's own)",
        lambda n, p: p.startswith("logging/"),
    ),
    (
        "task: read the job and take its lease, `JobStore.read_and_lease`",
        lambda n, p: n == "JobStore.read_and_lease",
    ),
    (
        "task: the lease apart (error actions, own timeouts), `JobStore.acquire_lease`, "
        "`JobStore.set_lease_ttl`",
        lambda n, p: n in ("JobStore.acquire_lease", "JobStore.set_lease_ttl"),
    ),
    ("task: the record, `JobStore.record_attempt`", lambda n, p: n == "JobStore.record_attempt"),
    (
        "task: the record's entry and state, `workers.recording`",
        lambda n, p: p.startswith("workers/recording"),
    ),
    ("task: the HTTP call, `run_action` (workers.wire)", lambda n, p: n == "run_action"),
    ("task: the rest of Takt's `execute`", _takt),
    ("task: Celery's tracer around the task", lambda n, p: p.startswith("celery/app/trace")),
    ("consumer: task events (`celery.events`)", lambda n, p: p.startswith("celery/events/")),
    (
        "consumer: ack (MULTI ZREM HDEL EXEC; batched by Takt's transport)",
        lambda n, p: n in ("Message.ack", "QoS.ack", "QoS.flush_acks", "Transport._flush_acks"),
    ),
    ("consumer: unacked bookkeeping (MULTI ZADD HSET EXEC)", lambda n, p: n == "QoS.append"),
    (
        "consumer: message to request to pool (strategy, Request, submit)",
        lambda n, p: (
            p.startswith(("celery/worker/strategy", "celery/worker/request"))
            or p.startswith(("celery/concurrency/", "workers/pool"))
            or n == "ThreadPoolExecutor.submit"
        ),
    ),
    (
        "consumer: taking messages in batches (take script, Takt's transport)",
        lambda n, p: n == "Channel._take_more",
    ),
    (
        "consumer: BRPOP and the message's decoding (kombu)",
        lambda n, p: p.startswith(("kombu/transport/", _TRANSPORT)),
    ),
    (
        "consumer: event loop, the rest (kombu, celery)",
        lambda n, p: p.startswith(("kombu/", "celery/")),
    ),
]
_FRAME = re.compile(r"(.*) \((.*):\d+\)$")


def profile_split(path: Path) -> list[tuple[str, float]]:
    """Each part's share of the samples in a py-spy raw file, largest first."""
    shares: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [m.groups() if (m := _FRAME.match(f)) else (f, "") for f in stack.split(";")]
        label = next(
            (label for label, test in PARTS if any(test(n, p) for n, p in frames)), "other"
        )
        shares[label] += int(count)
    total = sum(shares.values()) or 1
    return [(label, count / total) for label, count in shares.most_common()]
