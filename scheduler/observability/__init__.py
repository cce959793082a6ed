"""Observability: Prometheus metrics and structured logs, for every Takt process.

:mod:`.metrics` defines every metric once and the registry each role exposes;
:mod:`.push` is the thread that pushes a beat's or a worker's registry into the store;
:mod:`.exposition` merges those snapshots into the API's ``/metrics``; :mod:`.logs` is
the JSON log format (``TAKT_LOG_FORMAT=json``) and the context of an attempt's lines;
:mod:`.tracing` is OpenTelemetry's spans (``TAKT_TRACING=true``, the ``otel`` extra).

It sits below the store in the layers (``pyproject.toml``), so the store, the services,
the beat and the workers may all record into it; it never talks to Redis itself: the
snapshots are written and read by :mod:`scheduler.store.metrics`.
"""

from scheduler.observability.exposition import ProcessId, StoreGauges, encode_snapshot, render
from scheduler.observability.logs import (
    AttemptFields,
    JsonFormatter,
    about_attempt,
    current_attempt,
    use_json_logs,
)
from scheduler.observability.metrics import Role, metric_names, process_registry
from scheduler.observability.push import MetricsPusher, process_name
from scheduler.observability.tracing import (
    TracingMiddleware,
    setup_tracing,
    stop_tracing,
    tracing_on,
)

__all__ = [
    "AttemptFields",
    "JsonFormatter",
    "MetricsPusher",
    "ProcessId",
    "Role",
    "StoreGauges",
    "TracingMiddleware",
    "about_attempt",
    "current_attempt",
    "encode_snapshot",
    "metric_names",
    "process_name",
    "process_registry",
    "render",
    "setup_tracing",
    "stop_tracing",
    "tracing_on",
    "use_json_logs",
]
