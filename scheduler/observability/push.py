"""The thread that pushes a process's metrics into the store every few seconds.

Off the hot path: a beat publishes and a worker runs attempts while this thread, once per
interval, samples what needs sampling (the beat's due set), renders the registry (a few
hundred microseconds) and writes it with one store call. A store that does not answer costs
a warning a minute, never the process: the next push tries again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry

from scheduler.observability.exposition import ProcessId, encode_snapshot
from scheduler.observability.metrics import STORE_ERRORS

__all__ = ["MetricsPusher", "SnapshotWriter", "process_name"]

log = logging.getLogger(__name__)

#: Writes one snapshot (process, JSON) that expires after ``ttl_ms``.
SnapshotWriter = Callable[[ProcessId, str, int], None]
#: A snapshot outlives this many intervals, so one slow push does not drop a live process.
TTL_INTERVALS = 3
_WARN_EVERY_S = 60.0


def process_name(*parts: str) -> str:
    """A name for this process in the metrics: its host and pid, and ``parts``."""
    return "-".join((socket.gethostname(), str(os.getpid()), *parts))


class MetricsPusher:
    """Pushes ``registry`` every ``interval_s`` in a daemon thread, after calling each of
    ``before`` (samplers that set gauges)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        process: ProcessId,
        write: SnapshotWriter,
        interval_s: float,
        before: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.registry = registry
        self.process = process
        self._write = write
        self.interval_s = interval_s
        self._before = tuple(before)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_warning = 0.0

    def start(self) -> None:
        """Start pushing (once; the first push at once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"takt-metrics-{self.process.role}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval_s + 1)

    def push(self) -> None:
        """Sample, render and write once; store trouble is counted and logged, not raised."""
        try:
            for sample in self._before:
                sample()
            ttl_ms = int(self.interval_s * TTL_INTERVALS * 1000)
            self._write(self.process, encode_snapshot(self.registry, self.process), ttl_ms)
        except Exception as exc:  # the store away, most likely: try again next time
            STORE_ERRORS.inc()
            now = time.monotonic()
            if now - self._last_warning >= _WARN_EVERY_S:
                self._last_warning = now
                log.warning("metrics not pushed to the store: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.push()
            self._stop.wait(self.interval_s)
