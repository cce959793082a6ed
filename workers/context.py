"""What a worker process holds for the tasks it runs: settings, store and HTTP client."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx

from scheduler.domain.models import ActionType
from scheduler.observability import MetricsPusher, ProcessId, process_name, process_registry
from scheduler.observability.recorders import WorkerRecorder
from scheduler.service.outbound import NetworkPolicy
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore
from scheduler.store.ledger import Ledger
from scheduler.store.metrics import MetricsBoard
from workers.attempt import RunRequest
from workers.auth import ActionAuth
from workers.network import PolicyClient, policy_client

#: Publishes a follow-up attempt (the error action) as its own task.
FollowUpPublisher = Callable[[RunRequest, ActionType, str | None], None]
#: Sends a user's Celery task: (name, args, kwargs, queue).
TaskSender = Callable[[str, list[Any], dict[str, Any], str | None], None]

__all__ = ["FollowUpPublisher", "TaskSender", "WorkerContext"]


@dataclass
class WorkerContext:
    """Built lazily in each worker process (after a prefork fork), shared by its threads."""

    settings: TaktSettings
    publish: FollowUpPublisher
    send_task: TaskSender
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _store: JobStore | None = field(default=None, repr=False)
    _ledger: Ledger | None = field(default=None, repr=False)
    _http: PolicyClient | None = field(default=None, repr=False)
    _auth: ActionAuth | None = field(default=None, repr=False)
    _pusher: MetricsPusher | None = field(default=None, repr=False)
    _pusher_pid: int = field(default=0, repr=False)
    metrics: WorkerRecorder = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.metrics = WorkerRecorder(self.settings.metrics)

    def start_metrics(self) -> None:
        """Push this process's metrics into the store every few seconds, from a thread of
        their own; once per process (a prefork child starts its own after the fork)."""
        if not self.settings.metrics:
            return
        store = self.store
        with self._lock:
            if self._pusher_pid == os.getpid():
                return
            self._pusher_pid = os.getpid()
            self._pusher = MetricsPusher(
                process_registry("worker"),
                ProcessId("worker", process_name()),
                MetricsBoard(store).write,
                self.settings.metrics_push_interval_s,
            )
            self._pusher.start()

    @cached_property
    def outbound(self) -> NetworkPolicy:
        """Which addresses actions and token calls may reach (TAKT_ACTION_*_NETWORKS)."""
        return NetworkPolicy.from_settings(self.settings)

    @property
    def store(self) -> JobStore:
        with self._lock:
            if self._store is None:
                self._store = JobStore.from_url(
                    self.settings.store_url,
                    self.settings.key_prefix,
                    socket_timeout_s=self.settings.redis_socket_timeout_s,
                )
                # The management commands' job writes (ImportJobs, the purges) wait for
                # replicas like the API's; attempts, leases and retries never do.
                self._store.require_replicas(
                    self.settings.min_replicas, self.settings.redis_replica_timeout_ms
                )
            return self._store

    @property
    def ledger(self) -> Ledger:
        store = self.store
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger(store, int(self.settings.redelivery_timeout_s * 1000))
            return self._ledger

    @property
    def http(self) -> PolicyClient:
        """One keep-alive client per process (thread-safe), under the outbound policy."""
        with self._lock:
            if self._http is None:
                self._http = policy_client(
                    self.outbound,
                    timeout=self.settings.http_timeout_s,
                    limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                )
            return self._http

    @property
    def auth(self) -> ActionAuth:
        """Client-certificate clients and OAuth tokens, cached per process."""
        with self._lock:
            if self._auth is None:
                self._auth = ActionAuth(
                    oauth_authority=self.settings.oauth_authority, outbound=self.outbound
                )
            return self._auth

    def close(self) -> None:
        with self._lock:
            if self._pusher is not None:
                self._pusher.stop()
                self._pusher = None
            if self._auth is not None:
                self._auth.close()
                self._auth = None
            if self._http is not None:
                self._http.close()
                self._http = None
            if self._store is not None:
                self._store.close()
                self._store = None
                self._ledger = None
