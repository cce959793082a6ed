"""A worker's task events, as Flower receives them: every attempt's ``task-received``,
``task-started`` and ``task-succeeded``, sent together in a few messages rather than about
one per task (docs/benchmarks.md, "End to end")."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler.dispatch import TaktCelery
from scheduler.settings import load_settings
from tests.support.arm import http_job, in_seconds, new_collection, put_job
from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import Stack
from workers.app import EVENT_BATCH, EVENT_FLUSH_S

pytestmark = pytest.mark.e2e

JOBS = 60


class _Events:
    """Every task event of the broker, by task id, and the messages that carried them."""

    def __init__(self, stack: Stack) -> None:
        self.app = TaktCelery(load_settings(stack.env))
        self.by_task: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.messages: list[list[str]] = []  # each message's task ids
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Events:
        self._thread.start()
        assert self._ready.wait(10), "the event receiver did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with self.app.connection_for_read() as connection:
            receiver = self.app.events.Receiver(connection, handlers={"*": lambda _: None})
            receive = receiver._receive

            def on_message(body: Any, message: Any) -> None:
                events = body if isinstance(body, list) else [body]
                with self._lock:
                    self.messages.append([e.get("uuid", "") for e in events])
                    for event in events:
                        if str(event.get("type", "")).startswith("task-"):
                            self.by_task[event["uuid"]][event["type"]] = event
                receive(body, message)

            receiver._receive = on_message  # type: ignore[method-assign]
            receiver.on_consume_ready = lambda *_, **__: self._ready.set()  # type: ignore[method-assign]
            for _ in receiver.consume(safety_interval=0.2):
                if self._stop.is_set():
                    return

    def tasks_of(self, marker: str) -> dict[str, dict[str, dict[str, Any]]]:
        """The tasks whose received event's arguments name ``marker``."""
        with self._lock:
            return {
                uuid: dict(events)
                for uuid, events in self.by_task.items()
                if marker in str(events.get("task-received", {}).get("args", ""))
            }


@pytest.fixture
def events(stack: Stack) -> Iterator[_Events]:
    with _Events(stack) as receiver:
        yield receiver


def test_every_attempt_s_events_reach_flower_in_a_few_messages(
    stack: Stack, target: HttpTarget, events: _Events
) -> None:
    # Given jobs due at one instant
    collection = new_collection(stack.http)
    start = in_seconds(5)
    for i in range(JOBS):
        put_job(stack.http, collection, f"ev{i}", http_job(f"{target.url}/ev/{i}", start=start))

    # When they run, every attempt has its three events, named as Flower shows them
    def complete() -> dict[str, dict[str, dict[str, Any]]] | None:
        tasks = events.tasks_of(f"/{collection.rsplit('/', 1)[-1]}/ev")
        done = [t for t in tasks.values() if {"task-started", "task-succeeded"} <= t.keys()]
        return tasks if len(done) == JOBS else None

    tasks = wait_until(complete, timeout=30, message="the events of every attempt")
    for task in tasks.values():
        assert task["task-received"]["name"] == "takt.action.http"
        assert task["task-succeeded"]["result"] == "'completed'"
        assert task["task-received"]["hostname"] == task["task-succeeded"]["hostname"]

    # Then they came in batches: a message every EVENT_FLUSH_S while they ran, or per
    # EVENT_BATCH events (Celery's own flushing sent one message for every few events)
    carriers = [m for m in events.messages if set(m) & tasks.keys()]
    stamps = [e["timestamp"] for task in tasks.values() for e in task.values()]
    ran_s = max(stamps) - min(stamps)
    most = int(ran_s / EVENT_FLUSH_S) + 2 + 3 * JOBS // EVENT_BATCH
    assert len(carriers) <= most, f"{len(carriers)} messages in {ran_s:.2f} s ({3 * JOBS} events)"
