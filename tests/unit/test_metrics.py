"""The metric definitions (scheduler/observability/metrics.py), the snapshot merge the
API serves (exposition.py) and the hot-path recorders (recorders.py)."""

from __future__ import annotations

import json
import random

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from scheduler.observability import (
    ProcessId,
    StoreGauges,
    encode_snapshot,
    metric_names,
    process_registry,
    render,
)
from scheduler.observability import metrics as definitions
from scheduler.observability.metrics import (
    BEAT_FIRINGS,
    BEAT_LATENESS,
    WORKER_ATTEMPTS,
    BatchHistogram,
    collection_label,
)
from scheduler.observability.recorders import BeatRecorder, WorkerRecorder

#: Labels that would make a series per job or per run.
UNBOUNDED_LABELS = {"job", "jid", "job_id", "occurrence", "execution_tag", "path", "uri"}


def parsed(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


@pytest.mark.parametrize("role", ["api", "beat", "worker"])
def test_every_metric_follows_prometheus_naming_and_has_bounded_labels(role: str) -> None:
    # Given a role's registry
    registry = process_registry(role)  # type: ignore[arg-type]

    # When its families are listed
    families = list(registry.collect())

    # Then each is takt_*, counters are *_total, histograms name their unit, and no
    # label is one value per job
    assert families
    for family in families:
        assert family.name.startswith("takt_"), family.name
        assert family.documentation, family.name
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_size")), family.name
        labels = {key for sample in family.samples for key in sample.labels}
        assert not labels & UNBOUNDED_LABELS, (family.name, labels)
    names = metric_names()
    assert all(name.startswith("takt_") for name in names)
    assert {"takt_beat_firings_total", "takt_worker_attempts_total"} <= names


def test_a_batch_histogram_counts_as_prometheus_client_s_histogram_does() -> None:
    # Given 2,000 random lateness values, some on bucket bounds, observed by both
    rng = random.Random(16)
    values = [rng.choice([0.005, 1.0, 3600.0, 5000.0, rng.expovariate(2)]) for _ in range(2000)]
    buckets = (0.005, 0.1, 1.0, 60.0, 3600.0)
    ours = BatchHistogram("takt_test_seconds", "test", buckets)
    registry = CollectorRegistry()
    theirs = Histogram("takt_test_seconds", "test", buckets=buckets, registry=registry)

    # When ours takes them in three batches and theirs one by one
    for start in range(0, 2000, 700):
        ours.observe_many(values[start : start + 700])
    for value in values:
        theirs.observe(value)

    # Then the buckets, count and sum agree
    _assert_same_histogram(ours, registry)


@pytest.mark.parametrize("seed", range(200))
def test_a_batch_histogram_counts_ages_as_prometheus_client_s_histogram_does(seed: int) -> None:
    # Given a batch of occurrence times (ms) around a publish time: in the past, in the
    # future, on bucket bounds exactly, repeated (a burst due at one instant)
    rng = random.Random(seed)
    now_ms = 1_800_000_000_000
    buckets = BEAT_LATENESS._bounds if seed % 2 else (0.005, 0.01, 0.1, 1.0, 60.0, 3600.0)
    on_bounds = [round(bound * 1000) for bound in buckets]
    times = [
        now_ms - rng.choice([*on_bounds, 0, 17, rng.randint(-5000, 7_200_000)])
        for _ in range(rng.randint(0, 600))
    ]
    ours = BatchHistogram("takt_test_seconds", "test", buckets)
    registry = CollectorRegistry()
    theirs = Histogram("takt_test_seconds", "test", buckets=buckets, registry=registry)

    # When ours takes their ages in one batch and theirs one by one
    ours.observe_ages(times, now_ms)
    for time_ms in times:
        theirs.observe(max(0, now_ms - time_ms) / 1000)

    # Then every bucket, the count and the sum agree
    _assert_same_histogram(ours, registry)


def _assert_same_histogram(ours: BatchHistogram, registry: CollectorRegistry) -> None:
    """Every bucket, the count and the sum of ``ours`` equal the registry's histogram's."""

    def samples(families: object) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for family in families  # type: ignore[attr-defined]
            for s in family.samples
            if not s.name.endswith("_created")
        }

    mine, reference = samples(ours.collect()), samples(registry.collect())
    assert mine.keys() == reference.keys()
    for key, value in reference.items():
        assert mine[key] == pytest.approx(value), key


def test_the_api_serves_every_live_snapshot_labelled_with_its_process() -> None:
    # Given a beat's and two workers' snapshots in the store, one from a newer Takt and
    # one unreadable
    BEAT_FIRINGS.inc(3)
    WORKER_ATTEMPTS.labels("s/rg/c", "Http", "completed").inc()
    beat, api = ProcessId("beat", "b1"), ProcessId("api", "a1")
    workers = [ProcessId("worker", "w1"), ProcessId("worker", "w2")]
    snapshots = [
        encode_snapshot(process_registry("beat"), beat),
        *(encode_snapshot(process_registry("worker"), worker) for worker in workers),
        json.dumps({"sv": 99, "role": "beat", "process": "future", "families": []}),
        "{not json",
    ]

    # When the API renders a scrape
    scrape = parsed(render(process_registry("api"), api, StoreGauges(7, 2, 3, 1, snapshots)))

    # Then each process's series carry its role and name, and the live processes are
    # counted (the unreadable ones are not)
    firings = scrape["takt_beat_firings_total"]
    assert [labels for labels, _ in firings] == [{"role": "beat", "process": "b1"}]
    assert firings[0][1] >= 3
    attempts = scrape["takt_worker_attempts_total"]
    assert {labels["process"] for labels, _ in attempts} == {"w1", "w2"}
    errors = scrape["takt_store_errors_total"]
    assert sorted(labels["process"] for labels, _ in errors) == ["a1", "b1", "w1", "w2"]
    assert scrape["takt_beats_alive"] == [({}, 1.0)]
    assert scrape["takt_workers_alive"] == [({}, 2.0)]
    assert scrape["takt_store_jobs"] == [({}, 7.0)]
    assert sorted(scrape["takt_store_ledger_entries"], key=str) == [
        ({"part": "owed"}, 3.0),
        ({"part": "taken"}, 1.0),
    ]
    assert not any(name.endswith("_created") for name in scrape)


def test_without_the_store_a_scrape_has_the_api_s_own_metrics_and_store_up_0() -> None:
    # Given no answer from the store
    api = ProcessId("api", "a1")

    # When the API renders a scrape
    scrape = parsed(render(process_registry("api"), api, None))

    # Then it says the store is down and does not guess who is alive
    assert scrape["takt_store_up"] == [({}, 0.0)]
    assert "takt_beats_alive" not in scrape
    assert "takt_store_errors_total" in scrape


def test_collections_past_the_cap_are_labelled_other(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a process that has labelled two collections, with a cap of two
    monkeypatch.setattr(definitions, "MAX_COLLECTIONS", 2)
    monkeypatch.setattr(definitions, "_collections", set())
    first, second = collection_label("s/rg/a/job1"), collection_label("s/rg/b/job1")

    # When jobs of a third collection and of the first two are labelled
    third = collection_label("s/rg/c/job1")
    again = collection_label("s/rg/a/job2")

    # Then the first two keep their name and the third is "other"
    assert (first, second, third, again) == ("s/rg/a", "s/rg/b", "other", "s/rg/a")


def test_recorders_that_are_off_count_nothing() -> None:
    # Given recorders with metrics off (TAKT_METRICS=false)
    beat, worker = BeatRecorder(enabled=False), WorkerRecorder(enabled=False)
    firings = BEAT_FIRINGS._value.get()
    attempts = WORKER_ATTEMPTS.labels("s/rg/off", "Http", "completed")._value.get()

    # When they are told of a published batch and an attempt
    beat.published([1_000, 2_000], 3_000)
    worker.attempt("s/rg/off/job", "Http", "completed", error=False)

    # Then nothing moved; turned on, both count
    assert BEAT_FIRINGS._value.get() == firings
    assert WORKER_ATTEMPTS.labels("s/rg/off", "Http", "completed")._value.get() == attempts
    BeatRecorder().published([1_000, 2_000], 3_000)
    WorkerRecorder().attempt("s/rg/off/job", "Http", "completed", error=False)
    assert BEAT_FIRINGS._value.get() == firings + 2
    assert WORKER_ATTEMPTS.labels("s/rg/off", "Http", "completed")._value.get() == attempts + 1
