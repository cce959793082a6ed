"""The worker pool's turns, with real threads: while the process is busy at most
``at_once`` tasks run; tasks that wait (on a slow endpoint) get every thread; nothing waits
forever, and tasks start in the order they came."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.helpers import wait_until
from workers.pool import WINDOW_S, Turns


class _Tally:
    """How many tasks run now, the most at once (after ``after`` seconds), the start order."""

    def __init__(self, after: float = 0.0) -> None:
        self.now = 0
        self.most = 0
        self.done = 0
        self.order: list[int] = []
        self._after = time.monotonic() + after
        self._lock = threading.Lock()

    def task(self, index: int, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with self._lock:
                self.now += 1
                self.order.append(index)
                if time.monotonic() >= self._after:
                    self.most = max(self.most, self.now)
            try:
                body()
            finally:
                with self._lock:
                    self.now -= 1
                    self.done += 1

        return run


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=32) as pool:
        yield pool


def _turns(executor: ThreadPoolExecutor, at_once: int) -> Turns:
    turns = Turns(executor, at_once=at_once, most=32, run=lambda task: task())
    turns.start()
    return turns


def _burn(seconds: float) -> Callable[[], None]:
    def burn() -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    return burn


def test_while_the_process_is_busy_at_most_at_once_tasks_run(executor: ThreadPoolExecutor) -> None:
    turns = _turns(executor, at_once=3)
    tally = _Tally(after=2 * WINDOW_S)  # the first window is not yet known to be busy
    try:
        for i in range(300):
            turns.submit((tally.task(i, _burn(0.005)),))
        wait_until(lambda: tally.done == 300, timeout=60, message="every CPU-bound task")
        wait_until(lambda: turns.running == 0, timeout=5, message="every turn given back")
    finally:
        turns.stop()
    assert tally.most <= 3
    assert turns.waiting == 0


def test_tasks_that_wait_get_every_thread(executor: ThreadPoolExecutor) -> None:
    turns = _turns(executor, at_once=3)
    tally = _Tally()
    release = threading.Event()
    try:
        for i in range(32):
            turns.submit((tally.task(i, lambda: release.wait(10)),))
        wait_until(lambda: tally.now == 32, timeout=5, message="all 32 waiting tasks running")
        turns.submit((tally.task(32, lambda: None),))  # one more than threads: it waits
        assert turns.waiting == 1
        release.set()
        wait_until(lambda: tally.done == 33, timeout=5, message="every task")
    finally:
        release.set()
        turns.stop()
    assert tally.most == 32


def test_after_a_busy_spell_waiting_tasks_get_every_thread_again(
    executor: ThreadPoolExecutor,
) -> None:
    # Given a busy process (a CPU-bound spell has set the limit)
    turns = _turns(executor, at_once=2)
    tally = _Tally()
    try:
        for i in range(100):
            turns.submit((tally.task(i, _burn(0.005)),))
        wait_until(lambda: tally.done == 100, timeout=60, message="the busy spell")
        # When tasks come that only wait, more than at_once of them
        release = threading.Event()
        waiting = _Tally()
        for i in range(20):
            turns.submit((waiting.task(i, lambda: release.wait(10)),))
        # Then within a window or two all of them run
        wait_until(lambda: waiting.now == 20, timeout=3 * WINDOW_S + 1, message="all 20")
        release.set()
        wait_until(lambda: waiting.done == 20, timeout=5, message="every waiting task")
    finally:
        turns.stop()


def test_tasks_start_in_the_order_they_came(executor: ThreadPoolExecutor) -> None:
    turns = _turns(executor, at_once=1)
    tally = _Tally()
    try:
        for i in range(200):
            turns.submit((tally.task(i, _burn(0.005)),))
        wait_until(lambda: tally.done == 200, timeout=60, message="every task")
    finally:
        turns.stop()
    # The first window's tasks (about 50 of 5 ms) start together, in any order; once the
    # process is known to be busy, one at a time, in the order they came
    late = [i for i in tally.order if i >= 100]
    assert late == sorted(late)
