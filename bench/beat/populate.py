"""Putting N jobs in place for each scheduler, the way each one stores them.

- Takt: one collection of N jobs written by ``JobStore.put_jobs`` when the store has it,
  else by ``JobStore.put_job`` with its writes queued in one pipeline per 2,000 jobs.
- redbeat: ``RedBeatSchedulerEntry(...).save()`` per entry, batched the same way.
- Celery's beat: ``beat_schedule`` holds the N entries (see :mod:`bench.beat.peer_app`);
  a ``PersistentScheduler`` shelve written beforehand holds each entry's ``last_run_at``
  so that every entry is first due when the benchmark says.

Every job or entry differs from the others, as real ones do: Takt jobs carry their own
``startTime`` (as if each had been created through the API at a different millisecond),
peer entries their own index as the task's argument.

Recurring ("sustained"): every second, job *i* first due at ``t0 + i·(1000/N) ms`` modulo
one second, so the N jobs' phases spread evenly over the second. One-shot ("burst"):
every job due at ``t0``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from celery.beat import PersistentScheduler
from celery.schedules import schedule
from redbeat import RedBeatSchedulerEntry
from redbeat.schedulers import REDBEAT_REDIS_KEY, get_redis
from redis.client import Pipeline

from bench.beat.peer_app import TASK, entry_name
from scheduler import store as store_module
from scheduler.clock import from_ms
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.store.jobs import JobStore

__all__ = [
    "COLLECTION",
    "celery_shelve",
    "first_due_ms",
    "peer_every",
    "redbeat_entries",
    "takt_jobs",
]

COLLECTION = "bench/bench/beat"
_CHUNK = 2_000
_ONE_SHOT = {"action": {"type": "Http", "request": {"uri": "http://127.0.0.1:9/", "method": "GET"}}}
_EVERY_SECOND = {**_ONE_SHOT, "recurrence": {"frequency": "Second", "interval": 1}}
#: Long enough that a burst entry fires once during a run: the peers' "one-shot".
_PEER_ONE_SHOT = timedelta(hours=1)


def peer_every(recurring: bool) -> timedelta:
    """The peers' entry interval: every second, or long enough to fire once in a run."""
    return timedelta(seconds=1) if recurring else _PEER_ONE_SHOT


def first_due_ms(index: int, n: int, t0_ms: int, recurring: bool) -> int:
    """When job (entry) ``index`` of ``n`` is first due."""
    return t0_ms + (index * 1000) // n if recurring else t0_ms


class _Batched(Pipeline):
    """A pipeline that callers take for a client: ``pipeline()`` hands out the same one
    and ``execute`` only queues, so their writes (exactly their own commands, scripts
    included) reach Redis in one round trip per chunk, at :meth:`flush`."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, False, None)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> _Batched:
        return self

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        return [0]  # "did not exist": the callers' only use of the replies

    def __exit__(self, *exc: object) -> None:
        pass  # a Pipeline would reset, dropping what is queued

    def flush(self) -> None:
        super().execute()
        self.reset()


def _chunks(n: int) -> Iterator[range]:
    for start in range(0, n, _CHUNK):
        yield range(start, min(n, start + _CHUNK))


def takt_jobs(store: JobStore, n: int, t0_ms: int, *, recurring: bool) -> None:
    """A collection of ``n`` Http jobs, every second (``recurring``) or one-shot, due from
    ``t0_ms``; job *i* started ``i`` ms before ``t0_ms`` (its own definition)."""
    store.put_collection(COLLECTION, JobCollection())
    template = JobProperties.model_validate(_EVERY_SECOND if recurring else _ONE_SHOT)
    for chunk in _chunks(n):
        items = [
            {
                "jid": f"{COLLECTION}/j{i}",
                # model_copy: the template was validated once; only the start differs.
                "properties": template.model_copy(
                    update={"start_time": from_ms(_start_ms(i, n, t0_ms, recurring))}
                ),
                "owner": "admin",
                "next_fire_ms": first_due_ms(i, n, t0_ms, recurring),
            }
            for i in chunk
        ]
        _put_jobs(store, items)


def _start_ms(index: int, n: int, t0_ms: int, recurring: bool) -> int:
    """Recurring: a start ``index`` + 1 whole seconds before the first due time, so the
    occurrences fall on it; one-shot: a start ``index`` ms ago (due at once either way)."""
    if recurring:
        return first_due_ms(index, n, t0_ms, recurring) - 1000 * (1 + index)
    return t0_ms - index


def _put_jobs(store: JobStore, items: list[dict[str, Any]]) -> None:
    bulk, new_job = getattr(store, "put_jobs", None), getattr(store_module, "NewJob", None)
    if bulk is not None and new_job is not None:
        bulk([new_job(**item) for item in items])
        return
    batch = _Batched(store.redis)
    batched = type(store)(batch, store.keys)
    for item in items:
        batched.put_job(
            item["jid"], item["properties"], owner=item["owner"], next_fire_ms=item["next_fire_ms"]
        )
    batch.flush()


def redbeat_entries(app: Celery, n: int, t0_ms: int, *, recurring: bool) -> None:
    """``n`` redbeat entries every second (first due as :func:`first_due_ms`) or due once
    at ``t0_ms``; each entry's task argument is its index."""
    every = peer_every(recurring)
    client = get_redis(app)
    try:
        for chunk in _chunks(n):
            batch = _Batched(client)
            setattr(app, REDBEAT_REDIS_KEY, batch)  # what save() gets from get_redis
            for i in chunk:
                due = from_ms(first_due_ms(i, n, t0_ms, recurring))
                entry = RedBeatSchedulerEntry(
                    entry_name(i), TASK, schedule(every), args=[i], app=app, last_run_at=due - every
                )
                entry.save()
            batch.flush()
    finally:
        setattr(app, REDBEAT_REDIS_KEY, client)


def celery_shelve(app: Celery, path: Path, n: int, t0_ms: int, *, recurring: bool) -> None:
    """The PersistentScheduler's shelve for ``app.conf.beat_schedule`` (``n`` entries),
    with each entry's ``last_run_at`` such that it is first due as :func:`first_due_ms`."""
    every = peer_every(recurring)
    scheduler = PersistentScheduler(app=app, schedule_filename=str(path), lazy=False)
    entries = scheduler.schedule
    for i in range(n):
        entries[entry_name(i)].last_run_at = from_ms(first_due_ms(i, n, t0_ms, recurring)) - every
    scheduler.close()
