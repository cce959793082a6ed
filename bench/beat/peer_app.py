"""The peers' Celery app: ``celery -A bench.beat.peer_app beat -S ...`` (redbeat, Celery).

A plain Celery app as their documentation sets one up: one task that the beat sends and
nobody consumes (the benchmark reads the queue list), redbeat's settings, and, for
Celery's own beat, ``beat_schedule`` with ``BENCH_CELERY_ENTRIES`` entries every
``BENCH_EVERY_S`` seconds (that in-memory dict is what the PersistentScheduler walks).
The environment is read when Celery first needs the configuration, not at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import schedule

__all__ = ["QUEUE", "TASK", "app", "entry_name", "peer_config"]

TASK = "bench.tick"
QUEUE = "bench.peer"


def entry_name(index: int) -> str:
    return f"e{index}"


def peer_config(
    broker_url: str, entries: int = 0, every: timedelta = timedelta(seconds=1)
) -> dict[str, Any]:
    """Celery settings of both peers; ``entries`` > 0 only for Celery's own beat."""
    return {
        "broker_url": broker_url,
        "task_default_queue": QUEUE,
        "task_ignore_result": True,
        "timezone": "UTC",
        "enable_utc": True,
        # Takt's default (TAKT_BEAT_MAX_INTERVAL_S): how long an idle beat sleeps at most.
        "beat_max_loop_interval": 5,
        "redbeat_redis_url": broker_url,
        "redbeat_key_prefix": "redbeat:",
        "beat_schedule": {
            entry_name(i): {"task": TASK, "schedule": schedule(every), "args": [i]}
            for i in range(entries)
        },
    }


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    return peer_config(
        env["BENCH_BROKER_URL"],
        int(env.get("BENCH_CELERY_ENTRIES", "0")),
        timedelta(seconds=float(env.get("BENCH_EVERY_S", "1"))),
    )


def make_app(config: dict[str, Any] | None = None) -> Celery:
    """The peers' app; its settings are ``config``, else read from the environment lazily."""
    peer = Celery("bench_peer", set_as_current=False)
    if config is None:
        peer.add_defaults(lambda: _from_environment(os.environ))
    else:
        peer.conf.update(config)

    @peer.task(name=TASK)
    def tick(index: int) -> None:
        """Never runs: no worker consumes the queue."""

    return peer


app = make_app()
