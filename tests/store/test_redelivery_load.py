"""Redelivery under load: what a beat's pass over overdue ledger entries costs.

When workers fall behind by more than the redelivery timeout (a loaded machine), most
entries of the execution ledger are overdue while their queue still holds a backlog, and
every beat looks at a batch of them each second. Looking must stay cheap: the queue's
backlog is asked once per queue and pass, not once per entry (each ask is a broker
connection of its own), or the beats' own work starves the workers further.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from beat.redelivery import Redelivery
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore
from scheduler.store.ledger import Ledger, LedgerEntry
from workers.app import create_celery_app

CID = "s/rg/c"
PERIOD_MS = 60_000
OVERDUE = 50


@pytest.fixture
def redelivery(settings: TaktSettings, store: JobStore) -> Iterator[Redelivery]:
    app = create_celery_app(settings)
    yield Redelivery(app, store, Ledger(store, PERIOD_MS), batch=100)
    store.redis.delete(f"{settings.key_prefix}.http")


def _connections_received(store: JobStore) -> int:
    return int(store.redis.info("stats")["total_connections_received"])


def test_a_pass_over_overdue_entries_asks_each_queue_for_its_backlog_once(
    store: JobStore, redelivery: Redelivery, settings: TaktSettings
) -> None:
    # Given 50 overdue attempts of 50 jobs on one queue, which holds a backlog
    store.put_collection(CID, JobCollection())
    job = JobProperties.model_validate(
        {"action": {"type": "Http", "request": {"uri": "http://127.0.0.1:9/x", "method": "GET"}}}
    )
    overdue_at = store.time_ms() - PERIOD_MS - 1
    for i in range(OVERDUE):
        store.put_job(f"{CID}/j{i}", job, owner="admin", next_fire_ms=None)
        redelivery.ledger.expect(LedgerEntry(f"{CID}/j{i}", 1_000), now_ms=overdue_at)
    store.redis.lpush(f"{settings.key_prefix}.http", "someone else's message")
    before = _connections_received(store)

    # When a beat passes over them
    sent = redelivery.run()

    # Then none is sent (the backlog may hold them), and the broker was asked once: a
    # connection or two, not one per entry
    assert sent == 0
    assert _connections_received(store) - before <= 2
    assert store.redis.zcount(store.keys.ledger, "-inf", store.time_ms()) == 0
