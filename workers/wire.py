"""One HTTP/1.1 exchange on a kept-alive connection: the request written as httpx's
client would write it, the answer parsed by httptools (llhttp, in C).

An action's call used to go through httpcore's pool and h11, which spent about 170 µs
of CPU on a loopback keep-alive GET, nearly all of it in Python (h11 validating and
normalising every header, its state machine, httpcore's pool and tracing); written and
parsed here, the whole call (``PolicyClient.fetch``) costs 47-56 µs (docs/benchmarks.md,
the third pass). What stays
httpcore's is everything below the bytes: connections are made by the policy's network
backend (resolved once, every address checked, the checked address connected, TLS
verified for the URI's host with ALPN ``http/1.1``), and read and written through its
network streams, so timeouts and socket errors become the same exceptions with the same
messages.

A call holds a set of connections (:class:`Connections`) no other call uses meanwhile:
one in use, the others kept alive for their hosts until :data:`KEEP_ALIVE_S` idle or until
the server closes them. A connection is reused only after an answer read to its end that
keeps it alive, with nothing after it; one whose body was left unread (past the excerpt), a
``HEAD`` (its answer is read to the end of the headers), an upgrade, a request that could
not be written whole (its answer is still read) or an error is closed.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import httpcore
import httptools

__all__ = [
    "KEEP_ALIVE_S",
    "MAX_HEAD_BYTES",
    "Connections",
    "Origin",
    "RawAnswer",
    "request_head",
]

#: How long an idle connection is kept (httpx's default keep-alive expiry).
KEEP_ALIVE_S = 5.0
#: The most an answer's status line and headers may take (h11's default limit), and its
#: chunk heads and trailers between two pieces of its body (one read more is read).
MAX_HEAD_BYTES = 100 * 1024
_READ_BYTES = 64 * 1024

#: RFC 9110: a method and a header name are tokens; a header value is visible characters,
#: spaces and tabs, neither starting nor ending with whitespace (as h11 checks them).
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff](?:[ \t\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")
_TARGET = re.compile(rb"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: bytes
    host: bytes
    port: int


def request_head(method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers, checked as h11 checks them: a name or value that
    could end a header early (CR, LF) or smuggle another is refused, never sent."""
    if not _TOKEN.fullmatch(method):
        raise httpcore.LocalProtocolError(f"Illegal method {method!r}")
    if not _TARGET.fullmatch(target):
        raise httpcore.LocalProtocolError(f"Illegal target characters in {target!r}")
    lines = [b"%s %s HTTP/1.1\r\n" % (method, target)]
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise httpcore.LocalProtocolError(f"Illegal header name {name!r}")
        if not _VALUE.fullmatch(value):
            raise httpcore.LocalProtocolError(f"Illegal header value {value!r}")
        lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    return b"".join(lines)


class _Parsed:
    """What httptools found in the answer so far (its callbacks write here). A 1xx answer
    before the real one is skipped, as httpcore skips it; bytes after the answer's end
    are not read as an answer, and the connection is not kept. Trailers are read past,
    not kept."""

    __slots__ = (
        "chunks",
        "complete",
        "extra",
        "headers",
        "headers_done",
        "keep_alive",
        "parser",
        "reason",
        "status",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        # h11 reads a line ended by LF alone, and spaces after a chunk's size: so do we
        self.parser.set_dangerous_leniencies(
            lenient_optional_cr_before_lf=True, lenient_spaces_after_chunk_size=True
        )
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.chunks: list[bytes] = []
        self.extra = False
        self.keep_alive = False

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # a 101's answer ends at its headers, and the connection speaks another
            # protocol after it (llhttp reports it kept alive): it is closed
            self.keep_alive = False
        except httptools.HttpParserError as exc:
            if not self.complete:
                raise httpcore.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
            self.extra = True

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True

    def on_status(self, reason: bytes) -> None:
        if not self.complete:
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.headers_done:  # not a trailer
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            self.reason, self.headers = b"", []  # the real answer follows
        else:
            # kept now: the parser's is the last answer's, and more may follow in a read
            self.status, self.headers_done = status, True

    def on_body(self, chunk: bytes) -> None:
        if not self.complete:
            self.chunks.append(chunk)

    def on_message_complete(self) -> None:
        if self.headers_done and not self.complete:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it after


class RawAnswer:
    """An answer whose status line and headers are read; its body is read as it is
    iterated (:meth:`body`), and :meth:`close` keeps the connection or closes it."""

    def __init__(
        self, connection: _Connection, parsed: _Parsed, *, head_only: bool, keep: Connections
    ) -> None:
        self._connection = connection
        self._parsed = parsed
        self._keep = keep
        self._head_only = head_only
        self.status = parsed.status
        self.reason = parsed.reason
        self.headers = parsed.headers

    def body(self) -> Iterator[bytes]:
        """The body's chunks as they arrive, not decoded (none for a ``HEAD``)."""
        parsed, connection = self._parsed, self._connection
        if self._head_only or self.status == 101:
            return
        framing = 0  # bytes read since the last of the body: chunk heads, trailers
        while True:
            if parsed.chunks:
                chunks, parsed.chunks = parsed.chunks, []
                framing = 0
                yield from chunks
            if parsed.complete:
                return
            if framing > MAX_HEAD_BYTES:
                raise httpcore.RemoteProtocolError(
                    "The answer's chunk heads or trailers are too long."
                )
            data = connection.read()
            if data:
                framing += len(data)
                parsed.feed(data)
            elif self._runs_to_close():
                connection.reusable = False
                parsed.complete = True
            else:
                raise httpcore.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )

    def _runs_to_close(self) -> bool:
        """Whether the body ends with the connection (no length given, not chunked)."""
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def close(self) -> None:
        parsed, connection = self._parsed, self._connection
        if (
            parsed.complete
            and not parsed.extra
            and not self._head_only
            and connection.reusable
            and parsed.keep_alive
        ):
            self._keep.put_back(connection)
        else:
            connection.close()


@dataclass(slots=True)
class _Connection:
    origin: Origin
    stream: httpcore.NetworkStream
    idle_since: float = 0.0
    reusable: bool = True
    read_timeout: float | None = None
    deadline: float | None = None  # time.monotonic()'s, when the whole call must be done

    def read(self) -> bytes:
        """What the next read brings, within the read timeout and the call's deadline."""
        return self.stream.read(_READ_BYTES, self.within(self.read_timeout, httpcore.ReadTimeout))

    def within(self, timeout: float | None, late: type[httpcore.TimeoutException]) -> float | None:
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise late("timed out")
        return left if timeout is None else min(timeout, left)

    def close(self) -> None:
        self.reusable = False
        self.stream.close()


class Connections:
    """A set of kept-alive connections, for one call at a time (it uses one)."""

    def __init__(
        self, backend: httpcore.NetworkBackend, ssl_context: ssl.SSLContext, *, keep_at_most: int
    ) -> None:
        self._backend = backend
        self._ssl_context = ssl_context
        self._keep_at_most = keep_at_most
        self._idle: list[_Connection] = []

    def exchange(
        self,
        origin: Origin,
        request: bytes,
        *,
        head_only: bool,
        timeouts: dict[str, float | None],
        deadline: float | None = None,
    ) -> RawAnswer:
        """Send one request (its head and body) and read its answer to the end of its
        headers, each phase within its timeout and all of them, the body's reads too,
        before ``deadline`` (``time.monotonic()``'s). The caller reads the body and closes
        the answer."""
        connection = self._idle_to(origin)
        if connection is None:
            connection = self._connect(origin, _left(timeouts.get("connect"), deadline))
        connection.deadline = deadline
        try:
            try:
                write = connection.within(timeouts.get("write"), httpcore.WriteTimeout)
                connection.stream.write(request, write)
            except httpcore.WriteError:
                # a server may answer (a 413, say) and close before it read the body: its
                # answer is read, as httpcore reads it, and the connection closed after
                connection.reusable = False
            connection.read_timeout = timeouts.get("read")
            parsed = _Parsed()
            read = 0
            while not parsed.headers_done:
                if read > MAX_HEAD_BYTES:
                    raise httpcore.RemoteProtocolError("The answer's headers are too long.")
                data = connection.read()
                if not data:
                    raise httpcore.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                read += len(data)
                parsed.feed(data)
            return RawAnswer(connection, parsed, head_only=head_only, keep=self)
        except BaseException:
            connection.close()
            raise

    def put_back(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.append(connection)
        if len(self._idle) > self._keep_at_most:
            self._idle.pop(0).close()

    def _idle_to(self, origin: Origin) -> _Connection | None:
        """The last used idle connection to ``origin``, if it is still alive (httpcore's
        test: not idle too long, and nothing to read, which would be the server's close);
        connections idle too long are closed on the way."""
        now = time.monotonic()
        if self._idle and now - self._idle[0].idle_since > KEEP_ALIVE_S:
            stale = [c for c in self._idle if now - c.idle_since > KEEP_ALIVE_S]
            self._idle = [c for c in self._idle if now - c.idle_since <= KEEP_ALIVE_S]
            for connection in stale:
                connection.close()
        for i in range(len(self._idle) - 1, -1, -1):
            connection = self._idle[i]
            if connection.origin == origin:
                del self._idle[i]
                if connection.stream.get_extra_info("is_readable"):
                    connection.close()
                    return None
                return connection
        return None

    def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        host = origin.host.decode("ascii")
        stream = self._backend.connect_tcp(host, origin.port, timeout=timeout)
        if origin.scheme == b"https":
            try:
                stream = stream.start_tls(self._ssl_context, server_hostname=host, timeout=timeout)
            except BaseException:
                stream.close()
                raise
        return _Connection(origin, stream)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _left(timeout: float | None, deadline: float | None) -> float | None:
    """``timeout``, cut to what is left before ``deadline``; a connection that cannot be
    made in time is a ConnectTimeout, as a connect that timed out."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ConnectTimeout("timed out")
    return left if timeout is None else min(timeout, left)
