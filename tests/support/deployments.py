"""A deployment of its own for tests that kill processes or use another broker, and
what a deployment still owes (its backlog), to wait on before counting what ran."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from scheduler.clock import to_ms
from scheduler.dispatch.routing import queue_names
from scheduler.store.jobs import JobStore
from scheduler.store.keys import CLAIM_GROUP
from tests.support.helpers import ROOT, wait_until
from tests.support.processes import stop_process

#: kombu's Redis transport books a message a worker took, until it is acknowledged, here
#: (its default ``unacked_key``; one per broker database).
KOMBU_UNACKED = "unacked"
#: ... and a worker puts expired ones back on their queues holding this lock.
KOMBU_RESTORE_LOCK = "unacked_mutex"


@dataclass(frozen=True, slots=True)
class Backlog:
    """What a deployment has handed out and not finished: attempts the execution ledger
    owes, messages waiting in its action queues or taken by a worker and not acknowledged,
    and claims a beat took and has not acknowledged; and what it has not handed out yet:
    jobs due by the time the count is for that no beat claimed. Counting what ran is only
    fair once all of them are zero: before that an occurrence may be late, not lost."""

    owed: int
    queued: int
    unacked: int
    claimed: int
    #: How long kombu's restore lock is still held (ms; -2 when free): no taken message
    #: comes back before it expires.
    restore_lock_ms: int = -2
    #: Jobs in the due set due by the time asked about (0 when none was asked about).
    unclaimed: int = 0

    @property
    def empty(self) -> bool:
        return not (self.owed or self.queued or self.unacked or self.claimed or self.unclaimed)

    @property
    def owes_nothing(self) -> bool:
        """Empty but for kombu's bookings of taken messages: after a failover the promoted
        replica may hold bookings of messages acknowledged on the old primary, which stay
        until the redelivery timeout and are then dropped by their leases. With the ledger
        empty, every attempt handed out was recorded whatever they say."""
        return not (self.owed or self.queued or self.claimed or self.unclaimed)

    def __str__(self) -> str:
        lock = "free" if self.restore_lock_ms < 0 else f"held {self.restore_lock_ms} ms more"
        return (
            f"{self.unclaimed} job(s) due and not claimed, "
            f"{self.owed} attempt(s) owed by the ledger, {self.queued} message(s) queued, "
            f"{self.unacked} taken and unacknowledged, {self.claimed} claim(s) pending, "
            f"kombu's restore lock {lock}"
        )


def backlog(store: JobStore, broker: redis.Redis, due_by_ms: int | None = None) -> Backlog:
    """The backlog of the deployment of ``store`` (a Redis ``broker``), in two round trips;
    with ``due_by_ms``, jobs due by then that no beat claimed count too."""
    with store.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(store.keys.ledger)
        pipe.xpending(store.keys.claims, CLAIM_GROUP)
        if due_by_ms is not None:
            pipe.zcount(store.keys.due, "-inf", due_by_ms)
        owed, pending, *due = pipe.execute(raise_on_error=False)
    with broker.pipeline(transaction=False) as pipe:
        for queue in queue_names(store.keys.prefix):
            pipe.llen(queue)
        pipe.hlen(KOMBU_UNACKED)
        pipe.pttl(KOMBU_RESTORE_LOCK)
        *queued, unacked, lock_ms = pipe.execute()
    # No claims group yet (no beat started): nothing claimed.
    claimed = 0 if isinstance(pending, redis.ResponseError) else int(pending["pending"])
    return Backlog(int(owed), sum(queued), int(unacked), claimed, int(lock_ms), sum(due))


def wait_drained(
    store: JobStore,
    broker: redis.Redis,
    timeout_s: float,
    last_due: datetime | None = None,
    *,
    unacked: bool = True,
) -> None:
    """Wait until the deployment's backlog is empty; fail after ``timeout_s`` naming what
    is left.

    With ``last_due`` (the last occurrence the caller counts), it is not empty before that
    time has come and every job due by then was claimed: a fleet that keeps up owes nothing
    between two occurrences, and an occurrence still to come is not one that was lost.
    With ``unacked=False``, kombu's bookings of taken messages are not waited for (see
    :attr:`Backlog.owes_nothing`).
    """
    left = Backlog(0, 0, 0, 0)
    due_by_ms = None if last_due is None else to_ms(last_due)

    def drained() -> bool:
        nonlocal left
        if last_due is not None and datetime.now(UTC) <= last_due:
            return False
        left = backlog(store, broker, due_by_ms)
        return left.empty if unacked else left.owes_nothing

    try:
        # A backlog drains in seconds; two cheap reads a second are enough.
        wait_until(drained, timeout=timeout_s, interval=0.5, message="the backlog to drain")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; left: {left}") from None


class Deployment:
    """A beat and workers of their own: own key prefix, own broker database."""

    def __init__(self, redis_url: str, logs: Path, broker_url: str) -> None:
        self.prefix = f"dep-{uuid.uuid4().hex[:8]}"
        self.logs = logs
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TAKT_")}
        self.env.update(
            {
                "TAKT_REDIS_URL": redis_url,
                "TAKT_BROKER_URL": broker_url,
                "TAKT_KEY_PREFIX": self.prefix,
                "TAKT_HTTP_TIMEOUT_S": "3",
                "TAKT_HTTP_TIMEOUT_MAX_S": "3",
                "TAKT_BROKER_RETRY_MAX_S": "0",
                "TAKT_REDELIVERY_TIMEOUT_S": "9",
                "TAKT_BEAT_MAX_INTERVAL_S": "1",
                "TAKT_DATA_DIR": str(logs),
            }
        )
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        if role == "worker":
            # Each worker its own node name: on RabbitMQ two "celery@host" collide.
            args = (*args, "-n", f"w{uuid.uuid4().hex[:8]}@%h")
        log = self.logs / f"{role}-{len(self.processes)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "scheduler", role, *args],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        wait_until(
            lambda: "ready" in log.read_text() or "Starting" in log.read_text(),
            timeout=60,
            message=f"{role} to start",
        )
        return process

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            stop_process(process)
