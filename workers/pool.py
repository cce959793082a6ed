"""The worker's execution pool: Celery's thread pool, which runs at most :data:`AT_ONCE`
tasks at once while the process is busy.

A worker holds up to 64 threads (``-c``) so that 64 calls to slow endpoints can wait at
once. When the endpoints answer fast, though, a call is CPU work, and 64 threads at it cost
more per call than 16: a 5,000-job burst to a fast endpoint cost a worker 2.1-2.3 ms of
CPU per job with 64 threads against 1.4-1.5 ms with 16 (docs/benchmarks.md, "End to
end"); so did 64 threads of which only 16 ran at a time while the others waited for a
turn in a lock. So tasks wait for their turn in a queue here, not in threads, and a thread
that ends a task takes the next one. The limit holds only while the process used at least
:data:`BUSY` of a core over the last :data:`WINDOW_S`: calls to slow endpoints leave it
idle, and get every thread.

A task waits for its turn before Celery's ``task-started``: what Flower shows as started
is running.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from celery.concurrency import thread
from celery.concurrency.base import apply_target

__all__ = ["AT_ONCE", "BUSY", "WINDOW_S", "TaskPool", "Turns"]

#: How many tasks run at once while the process is busy ...
AT_ONCE = 16
#: ... that is, while it used at least this share of a core ...
BUSY = 0.5
#: ... over the last window of this many seconds.
WINDOW_S = 0.25

#: A task as Celery hands it over: what ``apply_target`` takes.
Call = tuple[Any, ...]


class Turns:
    """Hands calls to ``executor``: at most ``most`` at once, and at most ``at_once`` while
    the process is busy (its CPU time grew by :data:`BUSY` of the window's length over the
    last window); the others wait, in order."""

    def __init__(
        self,
        executor: Executor,
        *,
        at_once: int,
        most: int,
        run: Callable[..., None] = apply_target,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.at_once = min(at_once, most)
        self.most = most
        self.limit = most
        self._executor = executor
        self._run = run
        self._clock = clock
        self._cpu = cpu
        self._window = (clock(), cpu())
        self.running = 0
        self._waiting: deque[Call] = deque()
        self._changed = threading.Condition()
        self._stopped = False
        self._watch = threading.Thread(target=self._watching, name="takt-turns", daemon=True)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(self) -> None:
        self._watch.start()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def submit(self, call: Call) -> None:
        with self._changed:
            self._look()
            if self._waiting or self.running >= self.limit:
                self._waiting.append(call)
                self._changed.notify_all()  # the watch hands it over when the limit grows
                return
            self.running += 1
        self._executor.submit(self._in_turn, call)

    def _in_turn(self, call: Call | None) -> None:
        """Run ``call``, then, in this thread, whatever waits while the limit allows."""
        while call is not None:
            try:
                self._run(*call)
            finally:
                with self._changed:
                    self._look()
                    call = None
                    if self._waiting and self.running <= self.limit:
                        call = self._waiting.popleft()  # this thread's turn goes on
                    else:
                        self.running -= 1

    def _look(self) -> None:
        """Under the lock: the limit for the next window, once a window has passed."""
        now, cpu = self._clock(), self._cpu()
        since, cpu_since = self._window
        if now - since < WINDOW_S:
            return
        self._window = (now, cpu)
        busy = (cpu - cpu_since) / (now - since)
        self.limit = self.at_once if busy >= BUSY else self.most

    def _watching(self) -> None:
        """While calls wait: look at the limit every window, and hand over what it allows
        (the running tasks may all be slow, and none ends to hand over its thread)."""
        with self._changed:
            while not self._stopped:
                self._look()
                while self._waiting and self.running < self.limit:
                    self.running += 1
                    self._executor.submit(self._in_turn, self._waiting.popleft())
                self._changed.wait(WINDOW_S if self._waiting else None)


class TaskPool(thread.TaskPool):
    """Celery's thread pool (``-c`` threads), with tasks handed over by :class:`Turns`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pool: Any = self  # celery-types does not declare the executor
        self.turns = Turns(pool.executor, at_once=AT_ONCE, most=self.limit)

    def on_start(self) -> None:
        self.turns.start()
        super().on_start()

    def on_stop(self) -> None:
        self.turns.stop()
        super().on_stop()

    def on_apply(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Callable[..., Any] | None = None,
        accept_callback: Callable[..., Any] | None = None,
        **_: Any,
    ) -> None:
        """Celery keeps what this returns to terminate the task on a revoke; a thread
        cannot be terminated (Celery's thread pool returns a result without the means)."""
        self.turns.submit((target, args, kwargs, callback, accept_callback))

    def _get_info(self) -> Any:
        info: Any = getattr(super(), "_get_info")()  # noqa: B009  celery-types lacks it
        info.update({"running": self.turns.running, "waiting": self.turns.waiting})
        return info
