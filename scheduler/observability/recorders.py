"""What the beat and the workers call on their hot paths: cheap, and nothing when off.

Each call is one method call when metrics are off (``TAKT_METRICS=false``, which the
benchmark compares against) and a few pre-bound counter or histogram updates when on:
label children are looked up once and kept (prometheus_client's ``labels()`` costs a few
microseconds), the beat updates its firings and lateness once per batch, not per firing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from scheduler.observability.metrics import (
    BEAT_CLAIM_BATCH_SIZE,
    BEAT_DUE_SET_SIZE,
    BEAT_FIRINGS,
    BEAT_LATENESS,
    BEAT_OLDEST_OVERDUE,
    BEAT_RECOVERED_CLAIMS,
    BEAT_REDELIVERIES,
    STORE_ERRORS,
    WORKER_ACTION_DURATION,
    WORKER_ATTEMPTS,
    WORKER_CALLS_IN_FLIGHT,
    WORKER_ERROR_ACTIONS,
    collection_label,
)

__all__ = ["BeatRecorder", "WorkerRecorder"]


class BeatRecorder:
    """A beat's metrics (one beat thread records; the metrics thread samples)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._stalled = BEAT_REDELIVERIES.labels("stalled")
        self._overdue = BEAT_REDELIVERIES.labels("overdue")
        self._failover = BEAT_REDELIVERIES.labels("failover")

    def claimed(self, size: int) -> None:
        """A claim from the due set came back with ``size`` occurrences."""
        if self.enabled and size:
            BEAT_CLAIM_BATCH_SIZE.observe(size)

    def published(self, occurrences_ms: Iterable[int], published_ms: int) -> None:
        """A batch was published at ``published_ms``: one firing per occurrence, each as
        late as its scheduled time is old."""
        if not self.enabled:
            return
        occurrences = list(occurrences_ms)
        BEAT_FIRINGS.inc(len(occurrences))
        BEAT_LATENESS.observe_ages(occurrences, published_ms)

    def recovered(self, count: int) -> None:
        if self.enabled and count:
            BEAT_RECOVERED_CLAIMS.inc(count)

    def redelivered(self, stalled: int, overdue: int, failover: int = 0) -> None:
        if not self.enabled:
            return
        if stalled:
            self._stalled.inc(stalled)
        if overdue:
            self._overdue.inc(overdue)
        if failover:
            self._failover.inc(failover)

    def due(self, size: int, oldest_overdue_s: float) -> None:
        BEAT_DUE_SET_SIZE.set(size)
        BEAT_OLDEST_OVERDUE.set(oldest_overdue_s)

    def store_error(self) -> None:
        if self.enabled:
            STORE_ERRORS.inc()


class WorkerRecorder:
    """A worker process's metrics, shared by its threads."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._attempts: dict[tuple[str, str, str, bool], Counter] = {}
        self._durations: dict[str, Histogram] = {}
        self._lock = threading.Lock()

    def attempt(self, jid: str, action_type: str, outcome: str, *, error: bool) -> None:
        """An attempt of ``jid``'s action (or error action) ended with ``outcome``."""
        if not self.enabled:
            return
        collection = collection_label(jid)
        key = (collection, action_type, outcome, error)
        child = self._attempts.get(key)
        if child is None:
            metric = WORKER_ERROR_ACTIONS if error else WORKER_ATTEMPTS
            with self._lock:
                child = self._attempts[key] = metric.labels(collection, action_type, outcome)
        child.inc()

    def call_started(self) -> float:
        """An action starts; returns the time to hand to :meth:`call_ended`."""
        if self.enabled:
            WORKER_CALLS_IN_FLIGHT.inc()
        return time.perf_counter()

    def call_ended(self, action_type: str, started: float) -> None:
        if not self.enabled:
            return
        WORKER_CALLS_IN_FLIGHT.dec()
        child = self._durations.get(action_type)
        if child is None:
            with self._lock:
                child = self._durations[action_type] = WORKER_ACTION_DURATION.labels(action_type)
        child.observe(time.perf_counter() - started)

    def store_error(self) -> None:
        if self.enabled:
            STORE_ERRORS.inc()
