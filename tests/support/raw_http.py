"""A raw HTTP server for tests of a client's wire: it runs a script on each connection it
accepts, which reads requests and writes whatever bytes it means to, as many writes as it
likes; it logs the requests it read with the connection they came on."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import httpx


class Peer:
    """One connection a :class:`RawServer` accepted, as its script sees it."""

    def __init__(self, number: int, sock: socket.socket, log: list[tuple[int, bytes]]) -> None:
        self.number = number
        self.sock = sock
        self._log = log
        self.received = bytearray()
        self.closed = threading.Event()  # set once the server's side is closed
        self._unread = bytearray()

    def requests(self) -> Iterator[bytes]:
        """The requests the client sends, logged, until it closes the connection."""
        while (request := self.request()) is not None:
            self._log.append((self.number, request.split(b"\r\n", 1)[0]))
            yield request

    def request(self) -> bytes | None:
        """The next request, not logged: its head and its body (by ``Content-Length``, or
        chunked without trailers); None once the client closed the connection (or went
        quiet for 10 s)."""
        head = self.request_head()
        if head is None:
            return None
        if b"transfer-encoding: chunked" not in head.lower():
            body = self._exactly(_content_length(head))
            return None if body is None else head + body
        request = head
        while (line := self._through(b"\r\n")) is not None:
            chunk = self._exactly(int(line.split(b";")[0], 16) + 2)
            if chunk is None:
                return None
            request += line + chunk
            if chunk == b"\r\n":
                return request
        return None

    def request_head(self) -> bytes | None:
        """The next request's head only."""
        return self._through(b"\r\n\r\n")

    def _through(self, end: bytes) -> bytes | None:
        while end not in self._unread:
            if not self._receive():
                return None
        return self._take(self._unread.index(end) + len(end))

    def _exactly(self, size: int) -> bytes | None:
        while len(self._unread) < size:
            if not self._receive():
                return None
        return self._take(size)

    def _take(self, size: int) -> bytes:
        taken = bytes(self._unread[:size])
        del self._unread[:size]
        return taken

    def send(self, *pieces: bytes) -> None:
        for piece in pieces:
            self.sock.sendall(piece)

    def _receive(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError:
            return False
        self.received += data
        self._unread += data
        return bool(data)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value) if value.strip().isdigit() else 0
    return 0


#: What a script does with a connection; it returns to have the server close it.
Script = Callable[[Peer], None]


class RawServer:
    """A TCP server on 127.0.0.1 that runs ``script`` on each connection it accepts, in a
    thread of its own (with ``tls``, after the handshake), and logs each request it read
    with the number of the connection it came on."""

    def __init__(self, script: Script, *, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.peers: list[Peer] = []
        self.log: list[tuple[int, bytes]] = []  # (connection, request line)
        self.alpn: list[str | None] = []
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def url(self, path: str = "/") -> httpx.URL:
        scheme = "https" if self.tls else "http"
        return httpx.URL(f"{scheme}://127.0.0.1:{self.port}{path}")

    def connections(self) -> list[int]:
        """The connection of each logged request, in order."""
        return [number for number, _ in self.log]

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(10)
            peer = Peer(len(self.peers), sock, self.log)
            self.peers.append(peer)
            threading.Thread(target=self._serve, args=(peer,), daemon=True).start()

    def _serve(self, peer: Peer) -> None:
        try:
            if self.tls is not None:
                peer.sock = self.tls.wrap_socket(peer.sock, server_side=True)
                self.alpn.append(peer.sock.selected_alpn_protocol())  # type: ignore[attr-defined]
            self.script(peer)
        except OSError:
            pass  # the client went away, or refused the handshake
        finally:
            peer.sock.close()
            peer.closed.set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.listener.close()
        self._accepting.join(5)
        for peer in self.peers:
            with contextlib.suppress(OSError):
                peer.sock.shutdown(socket.SHUT_RDWR)  # wakes the script's recv()
        for peer in self.peers:
            peer.closed.wait(5)


def answering(answer: bytes) -> Script:
    """A script that answers every request on a connection with ``answer``."""

    def script(peer: Peer) -> None:
        for _ in peer.requests():
            peer.send(answer)

    return script
