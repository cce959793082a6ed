"""Every metric Takt exports, defined once, and the registry each kind of process exposes.

Names follow Prometheus's conventions: a ``takt_`` prefix, base units in the name
(``_seconds``), ``_total`` on counters. Labels are bounded: route templates, methods,
status codes, action types, outcomes, collections (capped per process, see
:func:`collection_label`), never a job id or an occurrence.

The metric objects live at module level, as prometheus_client means them to, but belong to
no registry until a process asks for its own (:func:`process_registry`): the API exposes
the API's and the store's, a beat the beat's, a worker the worker's, so no process shows
another role's metrics as zeros. :func:`metric_names` is every sample name Takt can
export, from these definitions (the test of ``deploy/`` checks its rules against it).

Where each is counted:

=============================================  ==========================================
metric                                         counted in
=============================================  ==========================================
``takt_api_requests_total``,                   :class:`scheduler.api.metrics.RequestMetrics`
``takt_api_request_duration_seconds``          (route template, not the raw path)
``takt_beat_firings_total``,                   ``beat.scheduler.JobScheduler._dispatch``
``takt_beat_lateness_seconds``                 (one update per batch)
``takt_beat_claim_batch_size``                 ``JobScheduler._dispatch_due``
``takt_beat_recovered_claims_total``           ``JobScheduler._recover_orphans``
``takt_beat_redeliveries_total``               ``beat.redelivery.Redelivery.run``
``takt_beat_due_set_size``,                    the beat's metrics thread, before each push
``takt_beat_oldest_overdue_seconds``
``takt_worker_attempts_total``,                ``workers.execution.execute``
``takt_worker_error_actions_total``,
``takt_worker_action_duration_seconds``,
``takt_worker_calls_in_flight``
``takt_store_errors_total``                    where a process meets a ``StoreError``
``takt_store_*`` gauges, ``takt_*_alive``      the API, when scraped (:mod:`.exposition`)
=============================================  ==========================================
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from scheduler.domain.models import JobState

__all__ = [
    "API_REQUESTS",
    "API_REQUEST_DURATION",
    "BEAT_CLAIM_BATCH_SIZE",
    "BEAT_DUE_SET_SIZE",
    "BEAT_FIRINGS",
    "BEAT_LATENESS",
    "BEAT_OLDEST_OVERDUE",
    "BEAT_RECOVERED_CLAIMS",
    "BEAT_REDELIVERIES",
    "JOB_STATES",
    "MAX_COLLECTIONS",
    "SCRAPE_GAUGES",
    "STORE_ERRORS",
    "WORKER_ACTION_DURATION",
    "WORKER_ATTEMPTS",
    "WORKER_CALLS_IN_FLIGHT",
    "WORKER_ERROR_ACTIONS",
    "BatchHistogram",
    "Role",
    "collection_label",
    "metric_names",
    "process_registry",
]

Role = Literal["api", "beat", "worker"]

#: Seconds; from a fast API answer to a slow action.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_ACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: Seconds a firing is late: milliseconds when all is well, minutes after an outage.
_LATENESS_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
)
_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class BatchHistogram(Collector):
    """A histogram for one thread that observes many values at once (the beat's lateness:
    one update per batch of up to 10,000 firings). prometheus_client's ``Histogram``
    takes a lock per value; this one takes it once per batch."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = tuple(float(bound) for bound in buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values_s: Iterable[float]) -> None:
        bounds, counts = self._bounds, [0] * len(self._counts)
        total = 0.0
        for value in values_s:
            counts[bisect_left(bounds, value)] += 1
            total += value
        with self._lock:
            self._counts = [mine + new for mine, new in zip(self._counts, counts, strict=True)]
            self._sum += total

    def observe_ages(self, times_ms: Iterable[int], now_ms: int) -> None:
        """Observe how old each of ``times_ms`` is at ``now_ms``, in seconds (0 for a time
        still to come): the beat's lateness of a batch. The same counts as
        :meth:`observe_many` of those ages, in C's loops rather than Python's (sorting,
        summing, one bisection per bucket): a batch's firings cost nanoseconds each."""
        ordered = sorted(times_ms)
        past = bisect_right(ordered, now_ms)  # the times not to come, ordered[:past]
        total = (now_ms * past - sum(ordered[:past])) / 1000
        counts, below = [0] * len(self._counts), 0
        for index, bound in enumerate(self._bounds):
            # ages <= bound  <=>  time >= now - bound; a time to come is age 0 (<= any)
            within = len(ordered) - bisect_left(ordered, now_ms - bound * 1000)
            counts[index], below = within - below, within
        counts[-1] = len(ordered) - below
        with self._lock:
            self._counts = [mine + new for mine, new in zip(self._counts, counts, strict=True)]
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, count in zip((*self._bounds, float("inf")), counts, strict=True):
            running += count
            cumulative.append((_bucket_label(bound), running))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=cumulative, sum_value=total
        )

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)


def _bucket_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


# -- the API -------------------------------------------------------------------------------

API_REQUESTS = Counter(
    "takt_api_requests",
    "HTTP requests answered by the API, by route template, method and status.",
    ["route", "method", "status"],
    registry=None,
)
API_REQUEST_DURATION = Histogram(
    "takt_api_request_duration_seconds",
    "Time the API took to answer, by route template and method.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
    registry=None,
)

# -- the beat ------------------------------------------------------------------------------

BEAT_FIRINGS = Counter(
    "takt_beat_firings",
    "Occurrences (and retries from the due set) a beat published.",
    registry=None,
)
BEAT_LATENESS = BatchHistogram(
    "takt_beat_lateness_seconds",
    "How late a beat published an occurrence: publish time minus scheduled time.",
    _LATENESS_BUCKETS,
)
BEAT_CLAIM_BATCH_SIZE = Histogram(
    "takt_beat_claim_batch_size",
    "Occurrences in each non-empty batch a beat claimed from the due set.",
    buckets=_BATCH_BUCKETS,
    registry=None,
)
BEAT_RECOVERED_CLAIMS = Counter(
    "takt_beat_recovered_claims",
    "Occurrences claimed by a stopped beat that this beat took over.",
    registry=None,
)
BEAT_REDELIVERIES = Counter(
    "takt_beat_redeliveries",
    "Attempts published again from the execution ledger: stalled (the worker died "
    "mid-attempt), overdue (the message was lost) or failover (handed out before the "
    "store's history changed).",
    ["reason"],
    registry=None,
)
BEAT_DUE_SET_SIZE = Gauge(
    "takt_beat_due_set_size",
    "Entries in the due set (jobs waiting for their next occurrence, long retries).",
    registry=None,
)
BEAT_OLDEST_OVERDUE = Gauge(
    "takt_beat_oldest_overdue_seconds",
    "Age of the oldest due-set entry whose time has passed (0: nothing overdue).",
    registry=None,
)

# -- the workers ---------------------------------------------------------------------------

WORKER_ATTEMPTS = Counter(
    "takt_worker_attempts",
    "Attempts of a job's action, by collection, action type and outcome.",
    ["collection", "action_type", "outcome"],
    registry=None,
)
WORKER_ERROR_ACTIONS = Counter(
    "takt_worker_error_actions",
    "Attempts of a job's error action, by collection, action type and outcome.",
    ["collection", "action_type", "outcome"],
    registry=None,
)
WORKER_ACTION_DURATION = Histogram(
    "takt_worker_action_duration_seconds",
    "Time an action (or error action) took, by action type.",
    ["action_type"],
    buckets=_ACTION_BUCKETS,
    registry=None,
)
WORKER_CALLS_IN_FLIGHT = Gauge(
    "takt_worker_calls_in_flight",
    "Actions this worker process is running now.",
    registry=None,
)

# -- the store, as every process meets it ---------------------------------------------------

STORE_ERRORS = Counter(
    "takt_store_errors",
    "Calls to the job store that failed (Redis away, out of memory, read-only).",
    registry=None,
)

#: A job's states (Azure's JobState), each a label value of takt_store_jobs_by_state.
JOB_STATES = tuple(state.value for state in JobState)

#: Gauges the API computes when scraped, from the store and the pushed snapshots: name,
#: help, label names.
SCRAPE_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "takt_store_up": ("1 when the store answered this scrape's reads, else 0.", ()),
    "takt_store_jobs": ("Jobs in the store, every state.", ()),
    "takt_store_finished_jobs": ("Jobs in a final state (Completed, Faulted).", ()),
    "takt_store_jobs_by_state": (
        "Jobs by state, counted at most once a minute over at most 200,000 jobs "
        "(takt_store_jobs_counted says how many).",
        ("state",),
    ),
    "takt_store_jobs_counted": ("Jobs takt_store_jobs_by_state covers.", ()),
    "takt_store_ledger_entries": (
        "Attempts the execution ledger owes (part=owed: published, not recorded; "
        "part=taken: a worker holds their lease).",
        ("part",),
    ),
    "takt_beats_alive": ("Beats whose metrics reached the store lately.", ()),
    "takt_workers_alive": ("Worker processes whose metrics reached the store lately.", ()),
}

_ROLE_METRICS: dict[Role, tuple[Collector, ...]] = {
    "api": (API_REQUESTS, API_REQUEST_DURATION, STORE_ERRORS),
    "beat": (
        BEAT_FIRINGS,
        BEAT_LATENESS,
        BEAT_CLAIM_BATCH_SIZE,
        BEAT_RECOVERED_CLAIMS,
        BEAT_REDELIVERIES,
        BEAT_DUE_SET_SIZE,
        BEAT_OLDEST_OVERDUE,
        STORE_ERRORS,
    ),
    "worker": (
        WORKER_ATTEMPTS,
        WORKER_ERROR_ACTIONS,
        WORKER_ACTION_DURATION,
        WORKER_CALLS_IN_FLIGHT,
        STORE_ERRORS,
    ),
}


def process_registry(role: Role) -> CollectorRegistry:
    """A registry holding the metrics a process of ``role`` counts."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in _ROLE_METRICS[role]:
        registry.register(collector)
    return registry


def metric_names() -> frozenset[str]:
    """Every sample name Takt can export (``takt_x_total``, ``takt_y_bucket``, ...)."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in {id(c): c for group in _ROLE_METRICS.values() for c in group}.values():
        registry.register(collector)
    names = {
        sample_name
        for family in registry.collect()
        for sample_name in _sample_names(family.name, family.type)
    }
    return frozenset(names | set(SCRAPE_GAUGES))


def _sample_names(name: str, kind: str) -> tuple[str, ...]:
    if kind == "counter":
        return (f"{name}_total",)
    if kind == "histogram":
        return (f"{name}_bucket", f"{name}_sum", f"{name}_count")
    return (name,)


#: Distinct collections one process labels; the rest are counted as "other", so a
#: deployment with many tenants cannot grow a process's series without bound.
MAX_COLLECTIONS = 1000
_collections: set[str] = set()
_collections_lock = threading.Lock()


def collection_label(jid: str) -> str:
    """The collection of job ``jid`` (``subscription/resourceGroup/collection``) as a
    label value: itself for the first :data:`MAX_COLLECTIONS` a process sees, then
    ``other``."""
    cid = jid.rpartition("/")[0]
    if cid in _collections:
        return cid
    with _collections_lock:
        if len(_collections) < MAX_COLLECTIONS:
            _collections.add(cid)
            return cid
    return "other"
