"""The peer of bench_workers.py: a plain Celery app whose task calls a URL with requests.

Run by the benchmark as `celery -A bench.peer_app worker -P prefork -c 2`; it counts
finished calls in Redis (INCR) so the benchmark can time them.
"""

from __future__ import annotations

import os

import redis
import requests
from celery import Celery

app = Celery("peer", broker=os.environ["PEER_BROKER_URL"])
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_ignore_result=True)
_counter = redis.Redis.from_url(os.environ["PEER_BROKER_URL"])


@app.task(name="peer.call")
def call(url: str) -> None:
    requests.get(url, timeout=60).raise_for_status()
    _counter.incr("peer:done")
