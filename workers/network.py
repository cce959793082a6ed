"""The HTTP client every outbound call of a worker goes through, with the outbound policy.

A connection is made by :class:`PolicyBackend`: it resolves the host once, checks every
address it got against the :class:`~scheduler.service.outbound.NetworkPolicy`, and connects to a
checked address itself, so the address connected is the address checked (no DNS
rebinding between the two). TLS still verifies the certificate for the name and sends it
as SNI, and the Host header is the URI's, since httpcore takes both from the request, not
from the socket. A refused address is an ``httpx.ConnectError`` whose message names the
setting and the network, which each caller turns into a Failed history entry.

Clients made here never follow redirects (a 3xx is the answer, as in Azure Scheduler) and
ignore ``HTTP_PROXY``-style variables (httpx uses none with a transport of one's own):
through a proxy the policy could not see the address the proxy connects to.

They keep no cookies either. One client serves every job of a worker process, whoever
owns it: a cookie one job's endpoint set would go with every later request of any job to
that host. A request carries a ``Cookie`` header only if its job's definition holds one.

An action's call goes through :meth:`PolicyClient.fetch`, not through httpx's client:
httpx's client builds a Request (merging URL, headers and cookies), a Response and its
decoders, and reads cookies out of every answer (130 µs of CPU per call on a loopback
keep-alive GET), and httpcore's pool and h11 below it spent another 170 µs, nearly all in
Python. ``fetch`` writes what httpx's client would (its default headers, ``Host``,
``Content-Length``, the URI's user info as Basic credentials) on a connection of the
calling thread's own (:mod:`workers.wire`: made by the policy's backend, the answer parsed
by httptools), decodes a compressed answer as httpx does, and raises httpx's exceptions
with httpcore's messages, as httpx's transport does: 47-56 µs per call in all.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.client import HTTPResponse
from http.cookiejar import Cookie, CookieJar
from types import TracebackType
from typing import Any
from urllib.request import Request

import httpcore
import httpx

from scheduler.errors import OutboundRefused
from scheduler.service.outbound import Address, NetworkPolicy
from workers.wire import Connections, Origin, RawAnswer, request_head

__all__ = ["Answer", "PolicyBackend", "PolicyClient", "basic_authorization", "policy_client"]


class PolicyBackend(httpcore.SyncBackend):
    """httpcore's blocking network backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port)
        for address in addresses:
            if reason := self.policy.refusal(address):
                raise httpcore.ConnectError(reason) from OutboundRefused(reason)
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last


def _resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to, in the resolver's order, each once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    addresses: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: no address")
    return addresses


class _PolicyTransport(httpx.HTTPTransport):
    def __init__(
        self, policy: NetworkPolicy, *, verify: ssl.SSLContext | bool, limits: httpx.Limits
    ) -> None:
        super().__init__(verify=verify, limits=limits)
        # httpx builds its pool without a network backend (it has no parameter for one):
        # the same pool again, with ours. Servers are verified as httpx does by default
        # (SSL_CERT_FILE / SSL_CERT_DIR, else certifi), or against ``verify``'s context.
        self.ssl_context = httpx.create_ssl_context(verify=verify)
        self.ssl_context.set_alpn_protocols(["http/1.1"])  # as httpcore sets it
        self.backend = PolicyBackend(policy)
        self.keepalive_expiry = limits.keepalive_expiry
        self._pool = httpcore.ConnectionPool(
            ssl_context=self.ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )

    def connection_set(self) -> Connections:
        """A set of connections for :meth:`PolicyClient.fetch`, one call at a time, on
        this transport's TLS and policy."""
        return Connections(self.backend, self.ssl_context, keep_at_most=CONNECTIONS_PER_SET)


#: Connections a set keeps for :meth:`PolicyClient.fetch` (a call uses one; the others are
#: kept alive for other hosts).
CONNECTIONS_PER_SET = 8


class _NoCookies(CookieJar):
    """A cookie jar that keeps none: answers' ``Set-Cookie`` headers are not even parsed."""

    def extract_cookies(self, response: HTTPResponse, request: Request) -> None:
        pass

    def set_cookie(self, cookie: Cookie) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Answer:
    """A response's status, its reason phrase and the start of its body."""

    status: int
    reason: str
    body_start: bytes


class PolicyClient(httpx.Client):
    """An ``httpx.Client`` whose connections obey the outbound policy, that never follows
    redirects and keeps no cookies; :meth:`fetch` sends through its pool directly."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        timeout: httpx.Timeout | float,
        limits: httpx.Limits,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        transport = _PolicyTransport(policy, verify=verify, limits=limits)
        super().__init__(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            cookies=_NoCookies(),
        )
        self._transport_ = transport
        self._connection_sets: list[Connections] = []  # every set made, to close them
        self._idle_sets: list[Connections] = []  # those no call holds
        self._connections_lock = threading.Lock()

    def _take_connections(self) -> Connections:
        """A set of connections for one call, which no other call uses meanwhile: the one
        given back last (its connections are the likeliest still open), else a new one. A
        pool shared by the calls serves each request under one lock and looks through
        every connection and waiting request for it, so 64 threads sharing httpcore's spent
        more CPU in it than in their requests (docs/benchmarks.md); a set per thread kept
        in a thread-local would be made anew for each task of a pool that runs each in a
        thread (or greenlet) of its own."""
        with self._connections_lock:
            if self._idle_sets:
                return self._idle_sets.pop()
        connections = self._transport_.connection_set()
        with self._connections_lock:
            self._connection_sets.append(connections)
        return connections

    def _give_back(self, connections: Connections) -> None:
        with self._connections_lock:
            self._idle_sets.append(connections)

    def close(self) -> None:
        super().close()
        self._close_connection_sets()

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        # httpx's client leaves a ``with`` block without calling close()
        super().__exit__(exc_type, exc_value, traceback)
        self._close_connection_sets()

    def _close_connection_sets(self) -> None:
        with self._connections_lock:
            kept, self._connection_sets = self._connection_sets, []
            self._idle_sets = []
        for connections in kept:
            connections.close()

    def fetch(
        self,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout_s: float | None = None,
        read_at_most: int,
    ) -> Answer:
        """Send one request; read at most ``read_at_most`` bytes of the answer's body (the
        rest is never read, and a connection left with some unread is closed, not reused).
        The timeout is ``timeout_s``, or the client's read timeout, for the whole call
        (connect, write, every read), so that the attempt's lease, which lasts the timeout
        and a margin, outlasts it even when a server trickles its answer. Raises
        ``httpx.TimeoutException`` or another ``httpx.TransportError``."""
        if self.is_closed:  # its pool would open connections again
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        timeout = self.timeout if timeout_s is None else httpx.Timeout(timeout_s)
        if url.raw_scheme not in _SCHEMES:
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{url.scheme}://'."
            )
        wire, framed = _wire_headers(self.headers, method, url, headers, body)
        origin = Origin(url.raw_scheme, url.raw_host, url.port or _SCHEMES[url.raw_scheme])
        try:
            if framed:
                wire, body = _framed(wire, body)
            request = request_head(method.encode("ascii"), url.raw_path, wire) + body
            budget = timeout.read if timeout_s is None else timeout_s
            connections = self._take_connections()
            try:
                answer = connections.exchange(
                    origin,
                    request,
                    head_only=method == "HEAD",
                    timeouts=timeout.as_dict(),
                    deadline=None if budget is None else time.monotonic() + budget,
                )
                try:
                    return Answer(answer.status, _reason(answer), _start(answer, read_at_most))
                finally:
                    answer.close()
            finally:
                self._give_back(connections)
        except _HTTPCORE_ERRORS as exc:
            raise _as_httpx(exc) from exc


_SCHEMES = {b"http": 80, b"https": 443}


def policy_client(
    policy: NetworkPolicy,
    *,
    timeout: httpx.Timeout | float,
    limits: httpx.Limits,
    verify: ssl.SSLContext | bool = True,
) -> PolicyClient:
    """A client whose connections obey ``policy``, that never follows redirects and
    keeps no cookies."""
    return PolicyClient(policy, timeout=timeout, limits=limits, verify=verify)


def basic_authorization(username: str, password: str) -> str:
    """An ``Authorization`` header value of Basic credentials (UTF-8, as httpx's)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _wire_headers(
    defaults: httpx.Headers,
    method: str,
    url: httpx.URL,
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[list[tuple[bytes, bytes]], bool]:
    """What httpx's client sends with ``headers``: ``Host`` and ``Content-Length`` unless
    given (any case), the client's defaults unless given, then ``headers`` as they are;
    the URI's user info, if any, as Basic credentials over any ``Authorization``. And
    whether ``headers`` frame the body themselves (``Content-Length`` or
    ``Transfer-Encoding``), for :func:`_framed` to check."""
    given = [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
    names = {name.lower() for name, _ in given}
    sized = b"content-length" in names or b"transfer-encoding" in names
    wire = [] if b"host" in names else [(b"Host", url.netloc)]
    if not sized and not body and method in _BODY_METHODS:
        wire.append((b"Content-Length", b"0"))
    wire += [(name, value) for name, value in defaults.raw if name.lower() not in names]
    wire += given
    if not sized and body:
        wire.append((b"Content-Length", b"%d" % len(body)))
    if url.username or url.password:
        credentials = basic_authorization(url.username, url.password).encode("ascii")
        wire = _replaced(wire, b"Authorization", credentials)
    return wire, sized


_DIGITS = re.compile(rb"[0-9]+")


def _framed(
    wire: list[tuple[bytes, bytes]], body: bytes
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and the body as sent when a job's headers frame its body, checked as
    h11 checked them: a ``Content-Length`` must be the body's length (else what follows
    its end, or the next request's start, would be read as another request on the
    connection: a request smuggled), and is sent once; a ``Transfer-Encoding`` can only be
    ``chunked`` (the body is sent as one chunk), and not with a ``Content-Length``."""
    lengths = [i for i, (name, _) in enumerate(wire) if name.lower() == b"content-length"]
    codings = [value for name, value in wire if name.lower() == b"transfer-encoding"]
    if codings:
        if lengths:
            raise httpcore.LocalProtocolError("Content-Length and Transfer-Encoding both given")
        if len(codings) > 1 or codings[0].lower() != b"chunked":
            raise httpcore.LocalProtocolError("Only Transfer-Encoding: chunked is supported")
        return wire, (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    if not lengths:
        return wire, body
    values = {value.strip() for i in lengths for value in wire[i][1].split(b",")}
    length = values.pop()
    if values or not _DIGITS.fullmatch(length):
        raise httpcore.LocalProtocolError("bad Content-Length")
    if (length.lstrip(b"0") or b"0") != b"%d" % len(body):
        raise httpcore.LocalProtocolError("Content-Length is not the body's length")
    first = lengths[0]
    sent = [header for i, header in enumerate(wire) if i == first or i not in lengths]
    sent[first] = (wire[first][0], length)
    return sent, body


def _replaced(
    wire: list[tuple[bytes, bytes]], name: bytes, value: bytes
) -> list[tuple[bytes, bytes]]:
    """``wire`` with one ``name: value`` where the first header of that name (any case)
    was, and no other; at the end if there was none."""
    lower = name.lower()
    first = next((i for i, (key, _) in enumerate(wire) if key.lower() == lower), len(wire))
    kept = [(key, val) for key, val in wire if key.lower() != lower]
    kept.insert(first, (name, value))
    return kept


def _reason(answer: RawAnswer) -> str:
    """The reason phrase as sent, empty if it was (as httpx reads it)."""
    return answer.reason.decode("ascii", errors="ignore")


def _start(answer: RawAnswer, limit: int) -> bytes:
    """At most ``limit`` bytes of the body; reading stops at the chunk that reaches it."""
    kept = bytearray()
    for chunk in _body(answer):
        kept += chunk
        if len(kept) >= limit:
            break
    return bytes(kept[:limit])


def _body(answer: RawAnswer) -> Iterator[bytes]:
    """The body's chunks, decoded by httpx's decoders if the server compressed it (httpx's
    default ``Accept-Encoding`` asks for gzip or deflate): fed :data:`INFLATE_PIECE` bytes
    at a time, so that a read of 64 KiB of compressed zeros is never 64 MiB at once."""
    if not any(name.lower() == b"content-encoding" for name, _ in answer.headers):
        return answer.body()
    raw = _RawStream(_pieces(answer.body(), INFLATE_PIECE))
    return httpx.Response(answer.status, headers=answer.headers, stream=raw).iter_bytes()


#: Compressed bytes given to a decoder at a time: deflate inflates at most about
#: 1,032-fold, so one piece is at most about a MiB.
INFLATE_PIECE = 1024


def _pieces(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    for chunk in chunks:
        for at in range(0, len(chunk), size):
            yield chunk[at : at + size]


class _RawStream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)


#: httpcore's exceptions as httpx's transport raises them: httpx's of the same name and
#: message (the most specific one first).
_AS_HTTPX: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
}
_HTTPCORE_ERRORS = tuple(_AS_HTTPX)


def _as_httpx(exc: Exception) -> httpx.TransportError:
    kind = next(kind for kind in type(exc).__mro__ if kind in _AS_HTTPX)
    return _AS_HTTPX[kind](str(exc))
