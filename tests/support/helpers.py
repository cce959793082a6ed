"""Test helpers the suite imports: the repository's root, the suite's admin key, waiting on
conditions, free ports, a recording HTTP target."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from scheduler.cli.embedded import free_loopback_port

T = TypeVar("T")

#: The repository's root folder (README.md, docs/, bench/, the processes' working directory).
ROOT = Path(__file__).resolve().parents[2]
#: The admin key of the settings fixture and of every deployment the suite starts.
ADMIN_TOKEN = "takt_test_admin_token"


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    """A loopback port the kernel says is free (as the embedded Valkey's)."""
    return free_loopback_port()


@dataclass
class Received:
    """One request the target received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class HttpTarget:
    """A real local HTTP server that records every request; per-path answers are settable."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    held: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        for event in self.held.values():
            event.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def requests_to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def answer(self, path: str, status: int, body: bytes = b"") -> None:
        """Answer every request to ``path`` with ``status``."""
        self.script(path, [status], body)

    def script(self, path: str, statuses: list[int], body: bytes = b"") -> None:
        """Answer requests to ``path`` with these statuses in turn; the last one repeats."""
        with self.lock:
            self.answers[path] = [(status, body) for status in statuses]

    def hold(self, path: str) -> threading.Event:
        """Keep requests to ``path`` waiting until the returned event is set."""
        event = threading.Event()
        with self.lock:
            self.held[path] = event
        return event

    def _next_answer(self, path: str) -> tuple[int, bytes]:
        with self.lock:
            queue = self.answers.get(path)
            if not queue:
                return 200, b"ok"
            return queue.pop(0) if len(queue) > 1 else queue[0]


def start_target() -> HttpTarget:
    target: HttpTarget

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with target.lock:
                target.received.append(
                    Received(self.command, self.path, dict(self.headers.items()), body, time.time())
                )
                held = target.held.get(self.path)
            if held is not None:
                held.wait(timeout=60)
            status, answer = target._next_answer(self.path)
            self.send_response(status)
            # One request per connection: no idle keep-alive sockets outlive a test.
            self.close_connection = True
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    target = HttpTarget(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return target
