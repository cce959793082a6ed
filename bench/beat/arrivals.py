"""When each published task message reaches the broker: a fast consumer in its own process.

Nothing runs the tasks. A recorder process drains the queue lists with ``BLMPOP`` (up to
5,000 messages per call, FIFO: the Redis transport LPUSHes, we pop from the right) and
stamps each batch with the wall clock as it returns, which is the most honest arrival
time a client can see. Messages are kept raw while recording (no parsing on the clock,
so the recorder takes little CPU from the beat it measures) and decoded when it stops.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any, cast

import redis

__all__ = ["ArrivalRecorder", "Firing"]

_POP_COUNT = 5_000
_POP_TIMEOUT_S = 0.05
_CONTEXT = multiprocessing.get_context("fork")


@dataclass(frozen=True, slots=True)
class Firing:
    """One task message: when it arrived, whose it is, and (Takt) which occurrence."""

    at: float  # epoch seconds
    ident: str  # Takt: the job id; peers: the entry index
    occurrence_ms: int | None  # Takt only: the task args carry the occurrence


def _decode(raw: bytes, at: float) -> Firing:
    message = json.loads(raw)
    args = json.loads(base64.b64decode(message["body"]))[0]
    occurrence = int(args[1]) if len(args) > 1 else None
    return Firing(at, str(args[0]), occurrence)


def _record(
    url: str,
    queues: list[str],
    stop: Any,
    count: Synchronized,  # type: ignore[type-arg]
    first_at: Synchronized,  # type: ignore[type-arg]
    out: Connection,
) -> None:
    client = redis.Redis.from_url(url, client_name="bench-recorder")
    batches: list[tuple[float, list[bytes]]] = []
    while True:
        got = client.blmpop(
            _POP_TIMEOUT_S, len(queues), *queues, direction="RIGHT", count=_POP_COUNT
        )
        if got is None:
            if stop.is_set():
                break
            continue
        at = time.time()
        raws = cast(list[bytes], got[1])
        batches.append((at, raws))
        count.value += len(raws)
        if not first_at.value:
            first_at.value = at
    out.send([_decode(raw, at) for at, raws in batches for raw in raws])
    out.close()


class ArrivalRecorder:
    """Records every message pushed onto ``queues`` from :meth:`start` to :meth:`stop`."""

    def __init__(self, url: str, queues: list[str]) -> None:
        self._stop = _CONTEXT.Event()
        self._count = _CONTEXT.Value("q", 0, lock=False)
        self._first_at = _CONTEXT.Value("d", 0.0, lock=False)
        self._receive, send = _CONTEXT.Pipe(duplex=False)
        self._process = _CONTEXT.Process(
            target=_record,
            args=(url, queues, self._stop, self._count, self._first_at, send),
            daemon=True,
        )

    def start(self) -> ArrivalRecorder:
        self._process.start()
        return self

    @property
    def count(self) -> int:
        """Messages received so far."""
        return int(self._count.value)

    @property
    def first_at(self) -> float | None:
        """When the first message arrived (epoch seconds), if one has."""
        return float(self._first_at.value) or None

    def stop(self) -> list[Firing]:
        """Drain what is left, then every message received, oldest first."""
        self._stop.set()
        firings: list[Firing] = self._receive.recv()
        self._process.join()
        return firings
