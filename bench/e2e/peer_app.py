"""The peers' Celery app: ``celery -A bench.e2e.peer_app worker -P prefork|threads ...``.

A plain Celery app with Celery's defaults, its broker read from ``E2E_PEER_BROKER`` when
Celery first needs its configuration (the benchmark, which publishes, builds its own with
:func:`make_app`). Its one task GETs a URL with one keep-alive httpx client per process,
as Takt's worker holds one: ``httpx.get`` would build a client, its TLS context included,
on every call (about 25 ms of CPU on the development machine), and measure that instead.
No history, no lease, no result.
"""

from __future__ import annotations

import os
import threading

import httpx
from celery import Celery

__all__ = ["QUEUE", "TASK", "app", "make_app"]

QUEUE = "e2e.peer"
TASK = "e2e.call"

_clients: dict[int, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client() -> httpx.Client:
    """This process's client (made after a prefork fork, shared by a pool's threads)."""
    with _clients_lock:
        if os.getpid() not in _clients:
            _clients[os.getpid()] = httpx.Client(timeout=60)
        return _clients[os.getpid()]


def make_app(broker_url: str | None = None) -> Celery:
    """The app on ``broker_url``; without one, on ``E2E_PEER_BROKER``, read lazily."""
    peer = Celery("e2e_peer", set_as_current=False)
    config = {
        "broker_connection_retry_on_startup": True,
        "task_default_queue": QUEUE,
        "task_ignore_result": True,
    }
    if broker_url is None:
        peer.add_defaults(lambda: {**config, "broker_url": os.environ["E2E_PEER_BROKER"]})
    else:
        peer.conf.update(config, broker_url=broker_url)

    @peer.task(name=TASK)
    def call(url: str) -> None:
        _client().get(url)

    return peer


app = make_app()
