"""One scrape for the whole deployment: each process's snapshot, merged by the API.

A beat or a worker listens on no port of its own: every few seconds it writes a snapshot of
its registry into the store (:func:`encode_snapshot`, JSON with a schema version, written by
:mod:`scheduler.store.metrics` under a TTL), and the API's ``GET /metrics`` serves its own
registry and every live snapshot in Prometheus's text format (:func:`render`). Each series
carries ``role`` (api, beat, worker) and ``process`` (the host, pid and, for a beat, its
consumer name), so two workers' counters stay apart and ``sum()`` adds them up; a process
that stopped drops out once its snapshot expires. ``takt_beats_alive`` and
``takt_workers_alive`` count the live snapshots.

``_created`` samples (prometheus_client's per-series start time) are left out: they double
the size of a scrape and no rule of Takt's reads them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from scheduler.observability.metrics import JOB_STATES, SCRAPE_GAUGES

__all__ = ["SNAPSHOT_VERSION", "ProcessId", "StoreGauges", "encode_snapshot", "render"]

log = logging.getLogger(__name__)

#: Version of the snapshot JSON this code writes; a newer one is skipped, not misread.
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ProcessId:
    """Who a snapshot is from: its role and a name unique while it runs."""

    role: str
    name: str

    @property
    def member(self) -> str:
        """The store's name for it (``role:name``)."""
        return f"{self.role}:{self.name}"

    @property
    def labels(self) -> dict[str, str]:
        return {"role": self.role, "process": self.name}


@dataclass(frozen=True, slots=True)
class StoreGauges:
    """What the API reads from the store for a scrape (None: the store did not answer)."""

    jobs: int
    finished_jobs: int
    ledger_owed: int
    ledger_taken: int
    snapshots: Sequence[str] = field(default_factory=tuple)
    #: Jobs by state (Enabled, Disabled, Completed, Faulted), over ``jobs_counted`` jobs.
    jobs_by_state: Mapping[str, int] = field(default_factory=dict)
    jobs_counted: int = 0


def encode_snapshot(registry: CollectorRegistry, process: ProcessId) -> str:
    """``registry``'s samples now, as the JSON a process pushes into the store."""
    families = [
        {
            "name": family.name,
            "type": family.type,
            "help": family.documentation,
            "samples": [
                [sample.name, sample.labels, sample.value]
                for sample in family.samples
                if not sample.name.endswith("_created")
            ],
        }
        for family in registry.collect()
    ]
    payload = {"sv": SNAPSHOT_VERSION, "role": process.role, "process": process.name}
    return json.dumps({**payload, "families": families}, separators=(",", ":"))


def render(own: CollectorRegistry, process: ProcessId, store: StoreGauges | None) -> bytes:
    """The text a scrape of the API gets: ``own`` registry (labelled as ``process``) and,
    when the store answered, every snapshot and the store's gauges."""
    merged = _Merged()
    for family in own.collect():
        merged.add(family.name, family.type, family.documentation, _own_samples(family), process)
    alive = {"beat": 0, "worker": 0}
    for raw in store.snapshots if store is not None else ():
        decoded = _decode(raw)
        if decoded is None:
            continue
        sender, families = decoded
        alive[sender.role] = alive.get(sender.role, 0) + 1
        for item in families:
            merged.add(item["name"], item["type"], item["help"], item["samples"], sender)
    _add_gauges(merged, store, alive)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(merged)
    return generate_latest(registry)


def _own_samples(family: Metric) -> list[list[Any]]:
    return [
        [sample.name, sample.labels, sample.value]
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


def _decode(raw: str) -> tuple[ProcessId, list[dict[str, Any]]] | None:
    """A snapshot's sender and families; None for one this code cannot read."""
    try:
        payload = json.loads(raw)
        if payload.get("sv", 0) > SNAPSHOT_VERSION:
            return None
        return ProcessId(str(payload["role"]), str(payload["process"])), list(payload["families"])
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("a metrics snapshot in the store cannot be read; skipped")
        return None


def _add_gauges(merged: _Merged, store: StoreGauges | None, alive: Mapping[str, int]) -> None:
    values: dict[str, list[tuple[dict[str, str], float]]] = {
        "takt_store_up": [({}, 0.0 if store is None else 1.0)]
    }
    if store is not None:
        values.update(
            {
                "takt_store_jobs": [({}, store.jobs)],
                "takt_store_finished_jobs": [({}, store.finished_jobs)],
                "takt_store_jobs_by_state": [
                    ({"state": state}, store.jobs_by_state.get(state, 0)) for state in JOB_STATES
                ],
                "takt_store_jobs_counted": [({}, store.jobs_counted)],
                "takt_store_ledger_entries": [
                    ({"part": "owed"}, store.ledger_owed),
                    ({"part": "taken"}, store.ledger_taken),
                ],
                "takt_beats_alive": [({}, alive.get("beat", 0))],
                "takt_workers_alive": [({}, alive.get("worker", 0))],
            }
        )
    for name, samples in values.items():
        documentation, _ = SCRAPE_GAUGES[name]
        merged.add(
            name, "gauge", documentation, [[name, labels, value] for labels, value in samples]
        )


class _Merged(Collector):
    """Families from several processes under one HELP and TYPE each, every sample
    labelled with the process it came from."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def add(
        self,
        name: str,
        kind: str,
        documentation: str,
        samples: Sequence[Sequence[Any]],
        process: ProcessId | None = None,
    ) -> None:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = Metric(name, documentation, kind)
        elif family.type != kind:
            return  # two versions disagree on a metric's type: keep the first
        extra = process.labels if process is not None else {}
        for sample_name, labels, value in samples:
            family.add_sample(str(sample_name), {**labels, **extra}, float(value))

    def collect(self) -> Iterator[Metric]:
        yield from self._families.values()
