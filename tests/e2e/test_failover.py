"""Failover of the store under load: Redis Sentinel promotes the replica, twice, while
100 jobs fire every second, and nothing acknowledged is lost.

The deployment is real processes: a primary, its replica and three Sentinels
(scheduler.cli.ha, what ``takt up --ha`` runs), the API, two beats and two workers, all
finding the primary through ``redis+sentinel://`` (store and broker). 100 jobs created
through the API (each answered 201) fire every second for the window; a producer keeps
creating jobs through the API meanwhile. Twice during the window the primary is SIGKILLed;
the Sentinels promote the replica, everything follows by itself, and the killed node comes
back as the new primary's replica (so the second failover goes back to it).

Then, once the fleet owes nothing (tests.support.deployments.wait_drained):

- every occurrence of the window was executed and recorded Completed exactly once (late
  is allowed: what the killed primary had not passed on to its replica, a claim, a task
  message, a record, is redone from what the replica had: the due set, the execution
  ledger; an attempt is recorded at most once, by its lease);
- every job the API answered 201 for exists (writes wait for a replica's acknowledgement,
  ``TAKT_REDIS_MIN_REPLICAS``; one that got none was answered 503).

The failover gap (the longest pause between two consecutive executions around a kill, by
the workers' clocks) is printed beside the result, and reported in docs/benchmarks.md.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from scheduler.cli.ha import start_sentinel_group
from scheduler.clock import to_ms
from scheduler.store.jobs import JobStore
from tests.support.arm import API_VERSION, collection_path, iso
from tests.support.deployments import wait_drained
from tests.support.helpers import wait_until
from tests.support.stack import Stack, _spawn, start_stack, stop_stack
from tests.support.tally import Tally

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

JOBS = 100
WINDOW_S = 45
#: When, into the window, the primary is SIGKILLed (the second time: the new one).
KILLS_AT_S = (10, 28)
#: How long the fleet has, after the window, to owe nothing. The redelivery timeout is
#: 300 s: an attempt whose task message the killed primary had not passed on is sent
#: again because a beat saw the store's history change, not because its time came.
DRAIN_S = 120
COLLECTION = f"ha-{uuid.uuid4().hex[:6]}"
CID = f"sub1/rg1/{COLLECTION}"


def _job(start: datetime) -> dict[str, object]:
    return {
        "properties": {
            "startTime": iso(start),
            "missedRunPolicy": "RunAll",  # a late occurrence runs, however late
            "recurrence": {
                "frequency": "Second",
                "interval": 1,
                "endTime": iso(start + timedelta(seconds=WINDOW_S - 1)),
            },
            "action": {
                "type": "Celery",
                "celeryTask": {"name": "ha.noop", "queue": "ha-sink"},
                "retryPolicy": {"retryType": "None"},
            },
        }
    }


class Producer(threading.Thread):
    """Creates one-shot jobs far in the future through the API, one after another, and
    keeps the names the API answered 201 for (a 503 says the write is not acknowledged)."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(
            base_url=stack.api_url, timeout=10, headers={"Authorization": f"Bearer {stack.token}"}
        )
        self.created: list[str] = []
        self.answers: Counter[int] = Counter()
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # the test reports it (a thread's error is lost)
            self.error = exc

    def _produce(self) -> None:
        later = iso(datetime.now(UTC) + timedelta(days=30))
        body = {
            "properties": {
                "startTime": later,
                "action": {"type": "Celery", "celeryTask": {"name": "ha.noop", "queue": "ha-sink"}},
            }
        }
        path = collection_path(COLLECTION)
        while not self.halt.is_set():
            name = f"p{len(self.created)}-{uuid.uuid4().hex[:6]}"
            status = self.http.put(f"{path}/jobs/{name}", params=API_VERSION, json=body)
            self.answers[status.status_code] += 1
            if status.status_code == 201:
                self.created.append(name)
            self.halt.wait(0.05)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)
        self.http.close()


def _wait_for(moment: datetime) -> None:
    wait_until(lambda: datetime.now(UTC) >= moment, timeout=WINDOW_S + 30)


def _gap(ends: list[datetime], kill: datetime) -> float:
    """The longest pause, in seconds, between two consecutive executions (their end
    times) from a second before ``kill`` to a minute after it: how long firing stopped."""
    around = [
        end for end in ends if kill - timedelta(seconds=1) <= end <= kill + timedelta(seconds=60)
    ]
    return max((b - a).total_seconds() for a, b in pairwise(around))


def test_two_failovers_under_load_lose_no_occurrence_and_no_acknowledged_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a primary, its replica and three Sentinels, and the API, 2 beats and 2 workers
    # on them (through the Sentinels, store and broker)
    group = start_sentinel_group(tmp_path / "data", maxmemory="512mb")
    fleet: list[subprocess.Popen[bytes]] = []
    stack: Stack | None = None
    producer: Producer | None = None
    try:
        stack, _ = start_stack(
            group.connection_url,
            tmp_path,
            extra_env={
                "TAKT_REDELIVERY_TIMEOUT_S": "300",
                "TAKT_HTTP_TIMEOUT_S": "2",
                "TAKT_HTTP_TIMEOUT_MAX_S": "2",
                "TAKT_BEAT_MAX_INTERVAL_S": "1",
                "TAKT_BROKER_RETRY_MAX_S": "1",
                "TAKT_TASK_EVENTS": "false",
            },
        )
        fleet.append(_spawn(["beat"], stack.env, tmp_path / "beat-2.log"))
        worker_args = ["-c", "16", "--without-mingle", "--without-gossip"]
        fleet.append(
            _spawn(
                ["worker", *worker_args, "-n", f"w{uuid.uuid4().hex[:8]}@%h"],
                stack.env,
                tmp_path / "worker-2.log",
            )
        )
        # ... and 100 jobs firing every second, each created with a 201
        path = collection_path(COLLECTION)
        created = stack.http.put(
            path,
            params=API_VERSION,
            json={
                "location": "local",
                "properties": {
                    "sku": {"name": "P20Premium"},
                    "quota": {
                        "maxJobCount": 10_000,
                        "maxRecurrence": {"frequency": "Second", "interval": 1},
                    },
                },
            },
        )
        assert created.status_code == 201, created.text
        start = (datetime.now(UTC) + timedelta(seconds=8)).replace(microsecond=0)
        for i in range(JOBS):
            answer = stack.http.put(f"{path}/jobs/j{i}", params=API_VERSION, json=_job(start))
            assert answer.status_code == 201, answer.text
        producer = Producer(stack)
        producer.start()

        # When the primary is SIGKILLed twice during the window; each time the Sentinels
        # promote the replica, and the killed node comes back as its replica
        kills: list[datetime] = []
        failovers_s: list[float] = []
        for at_s in KILLS_AT_S:
            _wait_for(start + timedelta(seconds=at_s))
            old = group.current_primary()
            kills.append(datetime.now(UTC))
            killed = group.kill_primary()
            group.wait_for_failover(old, timeout=30)
            failovers_s.append((datetime.now(UTC) - kills[-1]).total_seconds())
            group.restart(killed)
        last_due = start + timedelta(seconds=WINDOW_S - 1)
        store = JobStore.from_url(group.connection_url, stack.prefix)
        try:
            wait_drained(store, store.redis, timeout_s=DRAIN_S, last_due=last_due, unacked=False)
            producer.stop()

            # Then every occurrence of the window was recorded Completed exactly once
            tally = Tally.read(store, [f"{CID}/j{i}" for i in range(JOBS)])
            expected = {
                (f"{CID}/j{i}", to_ms(start) + 1000 * s)
                for i in range(JOBS)
                for s in range(WINDOW_S)
            }
            missing = expected - set(tally.completed)
            failed = list(tally.failed.values())[:3]
            assert not missing, f"{len(missing)} not recorded, e.g. {sorted(missing)[:3]}; {failed}"
            assert not tally.doubled(), f"recorded twice: {tally.doubled()[:3]}"
            assert set(tally.completed) == expected

            # ... and every job the API answered 201 for exists
            assert producer.error is None, repr(producer.error)
            assert producer.created, f"no job was created meanwhile: {producer.answers}"
            pipe = store.redis.pipeline(transaction=False)
            for name in producer.created:
                pipe.exists(store.keys.job(f"{CID}/{name}"))
            lost = [
                name
                for name, found in zip(producer.created, pipe.execute(), strict=True)
                if not found
            ]
            assert not lost, f"{len(lost)} of {len(producer.created)} acknowledged jobs lost"
            # (and during the failovers the API answered 503, never a 500)
            assert set(producer.answers) <= {201, 503}, producer.answers
        finally:
            store.close()

        # And firing resumed by itself once the replica was promoted: no pause much longer
        # than the failover itself (the margin: a worker's broker reconnection, a beat's
        # one-second retry, under whatever else loads the machine)
        gaps = [_gap(sorted(tally.ends), kill) for kill in kills]
        for gap, failover in zip(gaps, failovers_s, strict=True):
            assert gap <= failover + 10, f"executions paused {gap:.1f} s, failover {failover:.1f} s"
        report = (
            f"failovers (kill to promotion): {', '.join(f'{s:.1f} s' for s in failovers_s)}; "
            f"longest pause in executions around each kill: "
            f"{', '.join(f'{g:.1f} s' for g in gaps)}; {JOBS * WINDOW_S} occurrences, "
            f"0 lost, 0 recorded twice; API answers meanwhile {dict(producer.answers)}"
        )
        with capsys.disabled():
            print(f"\nfailover: {report}")

        # And no process logged the store's password, failing over or not (the banners and
        # errors name the Sentinels, never it)
        password = group.password_path.read_text().strip()
        logged = [log.name for log in tmp_path.glob("*.log") if password in log.read_text()]
        assert not logged, f"the store's password is in {logged}"
    finally:
        if producer is not None and producer.is_alive():
            producer.stop()
        for process in fleet:
            process.kill()
            process.wait()
        if stack is not None:
            stop_stack(stack)
        group.stop()
