"""The sink every pipeline calls: an asyncio (uvloop) HTTP server in its own process that
answers 200 at once and stamps each request's arrival, and a load generator that measures
what it can take on its own (the ceiling of every other figure).

A call's path names its scenario, its job and its due time: ``/{scenario}/{index}/{due ms}``
(due 0: the scenario's own due instant). Two paths are the benchmark's: ``/_count`` (calls
since the last take) and ``/_take`` (those calls, one ``at path`` line each, then forgets
them).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from multiprocessing import get_context
from typing import cast

import httpx
import uvloop

from bench.e2e.processes import tree_cpu_s

__all__ = ["Arrival", "Capacity", "Sink", "sink_capacity"]

_FORK = get_context("fork")
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _SinkProtocol(asyncio.Protocol):
    """One connection: each request (keep-alive, pipelined or not) answered 200."""

    def __init__(self, log: list[tuple[float, bytes]]) -> None:
        self._log = log
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self._buffer[:end])
            size = end + 4 + _content_length(head)
            if len(self._buffer) < size:
                return
            del self._buffer[:size]
            self._answer(head.split(b" ", 2)[1])

    def _answer(self, path: bytes) -> None:
        assert self._transport is not None
        if not path.startswith(b"/_"):
            self._log.append((time.time(), path))
            self._transport.write(_OK)
            return
        if path == b"/_take":
            body = b"".join(b"%.6f %s\n" % (at, where) for at, where in self._log)
            self._log.clear()
        else:
            body = b"%d" % len(self._log)
        self._transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )


def _content_length(head: bytes) -> int:
    if b"ontent-" not in head and b"ONTENT-" not in head:
        return 0
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            return int(value)
    return 0


def _serve(listening: socket.socket) -> None:
    async def forever() -> None:
        log: list[tuple[float, bytes]] = []
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: _SinkProtocol(log), sock=listening)
        await asyncio.Event().wait()

    uvloop.run(forever())


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # epoch seconds
    scenario: str
    index: int
    due_ms: int  # 0: the scenario's due instant


class Sink:
    """The sink process (forked with its listening socket) and a client of its control
    paths."""

    def __init__(self) -> None:
        listening = socket.create_server(("127.0.0.1", 0), backlog=4096)
        self.url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        self._process = _FORK.Process(target=_serve, args=(listening,), daemon=True)
        self._process.start()
        listening.close()
        self._client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def count(self) -> int:
        return int(self._client.get("/_count").text)

    def take(self) -> list[Arrival]:
        arrivals = []
        for line in self._client.get("/_take").text.splitlines():
            at, path = line.split(" ", 1)
            scenario, index, due_ms = path.strip("/").split("/")
            arrivals.append(Arrival(float(at), scenario, int(index), int(due_ms)))
        return arrivals

    def stop(self) -> None:
        self._client.close()
        self._process.terminate()
        self._process.join()


@dataclass(frozen=True)
class Capacity:
    per_s: float
    cpu_ms: float  # the sink's CPU per request


def sink_capacity(sink: Sink, seconds: float, connections: int = 32) -> Capacity:
    """Requests per second from a lean keep-alive client in this process (on 2 cores it
    may be the limit, so the sink's CPU per request goes with it)."""
    port = int(sink.url.rsplit(":", 1)[1])
    before = tree_cpu_s(sink.pid)
    count = uvloop.run(_load(port, connections, seconds))
    cpu_s = tree_cpu_s(sink.pid) - before
    sink.take()
    return Capacity(count / seconds, 1000 * cpu_s / max(count, 1))


async def _load(port: int, connections: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    request = b"GET /capacity/0/0 HTTP/1.1\r\nHost: sink\r\n\r\n"

    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        while time.monotonic() < deadline:
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            done += 1
        writer.close()
        return done

    return sum(await asyncio.gather(*(one() for _ in range(connections))))
