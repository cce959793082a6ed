"""``PolicyClient.fetch`` and :mod:`workers.wire` against raw local servers that send
scripted bytes, read as an attacker and a picky HTTP peer would read them: thousands of
random valid answers read as httpx's client reads them, connections kept alive only when
that is safe, requests that could split or smuggle refused before a byte is sent, bounds
on what a server can make the worker read, and TLS."""

from __future__ import annotations

import gzip
import ipaddress
import itertools
import random
import ssl
import threading
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scheduler.service.outbound import NetworkPolicy
from tests.support.raw_http import Peer, RawServer, Script, answering
from workers import network, wire
from workers.network import PolicyClient, policy_client


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    """Start a :class:`RawServer` for a script; every one is closed after the test."""
    servers: list[RawServer] = []

    def start(script: Script, *, tls: ssl.SSLContext | None = None) -> RawServer:
        servers.append(RawServer(script, tls=tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def trust() -> ssl.SSLContext:
    """The default trust, loaded once: a client loads it in 40 ms, more than most tests."""
    return ssl.create_default_context()


@pytest.fixture
def client(trust: ssl.SSLContext) -> Iterator[PolicyClient]:
    """A client of its own for each test: its connections are the test's to count."""
    with policy_client(
        NetworkPolicy.default(), timeout=5, limits=httpx.Limits(), verify=trust
    ) as c:
        yield c


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
OK_ANSWER = network.Answer(200, "OK", b"ok")


def _fetch(
    client: PolicyClient,
    url: httpx.URL,
    method: str = "GET",
    *,
    read_at_most: int = 4096,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout_s: float | None = None,
) -> tuple[Any, ...]:
    """What fetch read: ("answer", status, reason, body) or ("error", its type)."""
    try:
        answer = client.fetch(
            method, url, headers or {}, body, read_at_most=read_at_most, timeout_s=timeout_s
        )
    except httpx.HTTPError as exc:
        return ("error", type(exc))
    return ("answer", answer.status, answer.reason, answer.body_start)


def _httpx(
    client: PolicyClient,
    url: httpx.URL,
    method: str = "GET",
    *,
    read_at_most: int = 4096,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout_s: float | None = None,
) -> tuple[Any, ...]:
    """What httpx's client read of the same answer, in the same shape, its body read the
    way fetch reads it (up to the chunk that reaches ``read_at_most``)."""
    timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else httpx.Timeout(timeout_s)
    request = client.build_request(method, url, headers=headers, content=body, timeout=timeout)
    try:
        response = client.send(request, stream=True)
        try:
            kept = bytearray()
            for chunk in response.iter_bytes():
                kept += chunk
                if len(kept) >= read_at_most:
                    break
        finally:
            response.close()
    except httpx.HTTPError as exc:
        return ("error", type(exc))
    return ("answer", response.status_code, response.reason_phrase, bytes(kept[:read_at_most]))


# -- 1. thousands of random answers, read as httpx reads them ----------------------------------

CASES = 2000
TCHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHARS = bytes(range(0x21, 0x7F))
OBS_TEXT = bytes(range(0x80, 0x100))
#: Headers that frame or encode the answer, or decide the connection: each case sets them.
FRAMING = {b"content-length", b"transfer-encoding", b"connection", b"content-encoding"}
FRAMING |= {b"keep-alive", b"upgrade", b"proxy-connection", b"trailer"}


@dataclass
class Case:
    """One random answer, with how it is asked for and how the server writes it."""

    method: str
    sent: bytes  # the request's body
    read_at_most: int
    interims: bytes  # 1xx answers before the final one
    head: bytes  # the final answer's status line and headers, through the blank line
    body: bytes  # its body as framed on the wire (sent unless the answer has none)
    bodiless: bool  # a 204 or a 304: no body whatever the method
    to_close: bool  # framed by the end of the connection
    announces_close: bool  # Connection: close, or HTTP/1.0 without keep-alive
    cuts: list[int] | None  # where the answer is cut into writes; None: byte by byte
    features: set[str] = field(default_factory=set)

    def answer(self) -> bytes:
        if self.method == "HEAD" or self.bodiless:
            return self.interims + self.head
        return self.interims + self.head + self.body

    def pieces(self) -> list[bytes]:
        answer = self.answer()
        if self.cuts is None:
            return [answer[i : i + 1] for i in range(len(answer))]
        cuts = sorted({0, len(answer), *(c for c in self.cuts if c < len(answer))})
        return [answer[a:b] for a, b in itertools.pairwise(cuts)]

    def server_closes(self) -> bool:
        return self.announces_close or (
            self.to_close and self.method != "HEAD" and not self.bodiless
        )


def _token(rng: random.Random, longest: int = 16) -> bytes:
    return bytes(rng.choices(TCHARS, k=rng.randint(1, longest)))


def _field_value(rng: random.Random) -> bytes:
    """A header value: visible characters (now and then obs-text), spaces and tabs inside."""
    if rng.random() < 0.1:
        return b""
    alphabet = VCHARS * 4 + OBS_TEXT[:8] + b"  \t"
    inner = bytes(rng.choices(alphabet, k=rng.randint(0, 40)))
    ends = VCHARS + OBS_TEXT[:8]
    return bytes([rng.choice(ends)]) + inner + bytes([rng.choice(ends)])


def _header_lines(rng: random.Random, at_most: int) -> list[bytes]:
    lines = []
    for _ in range(rng.randint(0, at_most)):
        name = _token(rng)
        while name.lower() in FRAMING:
            name = _token(rng)
        before, after = rng.choice([b"", b" ", b"  ", b"\t"]), rng.choice([b"", b" ", b"\t"])
        lines.append(name + b":" + before + _field_value(rng) + after + b"\r\n")
    return lines


def _status_line(rng: random.Random, version: bytes, status: int, features: set[str]) -> bytes:
    kind = rng.choice(["standard", "standard", "none", "empty", "random"])
    features.add(f"reason-{kind}")
    if kind == "none":
        return b"%s %03d\r\n" % (version, status)
    if kind == "empty":
        return b"%s %03d \r\n" % (version, status)
    if kind == "standard":
        reason = httpx.codes.get_reason_phrase(status).encode() or b"Whatever"
    else:
        alphabet = VCHARS * 4 + OBS_TEXT[:16] + b"  \t"
        reason = bytes([rng.choice(VCHARS)]) + bytes(rng.choices(alphabet, k=rng.randint(0, 30)))
    return b"%s %03d %s\r\n" % (version, status, reason)


def _chunked(rng: random.Random, body: bytes, features: set[str]) -> bytes:
    """``body`` in chunks of random sizes, sizes in either case and now and then with
    leading zeros, extensions now and then, and trailers now and then."""
    out, at = [], 0
    while at < len(body):
        size = rng.randint(1, max(1, min(len(body) - at, rng.choice([1, 16, 700, 5000]))))
        out.append(_chunk_size(rng, size) + _extensions(rng, features) + b"\r\n")
        out.append(body[at : at + size] + b"\r\n")
        at += size
    out.append(b"0" * rng.randint(1, 3) + _extensions(rng, features) + b"\r\n")
    trailers = _header_lines(rng, 3) if rng.random() < 0.3 else []
    if trailers:
        features.add("trailers")
    return b"".join(out) + b"".join(trailers) + b"\r\n"


def _chunk_size(rng: random.Random, size: int) -> bytes:
    digits = rng.choice([b"%x", b"%X"]) % size
    return b"0" * rng.choice([0, 0, 0, 1, 3]) + digits


def _extensions(rng: random.Random, features: set[str]) -> bytes:
    if rng.random() > 0.15:
        return b""
    features.add("chunk-extensions")
    out = b""
    for _ in range(rng.randint(1, 3)):
        out += b";" + _token(rng, 8)
        value = rng.random()
        if value < 0.3:
            out += b"=" + _token(rng, 8)
        elif value < 0.6:
            qdtext = b"\t !" + bytes(range(0x23, 0x5C)) + bytes(range(0x5D, 0x7F))
            out += b'="' + bytes(rng.choices(qdtext, k=rng.randint(0, 12))) + b'"'
    return out


def _encoded(rng: random.Random, plain: bytes, features: set[str]) -> tuple[bytes, bytes | None]:
    """(the body as sent, its Content-Encoding)."""
    kind = rng.choice(["none"] * 6 + ["gzip", "deflate", "identity"])
    features.add(f"encoding-{kind}")
    if kind == "gzip":
        return gzip.compress(plain, mtime=0), rng.choice([b"gzip", b"GZIP", b"x-gzip"])
    if kind == "deflate":
        return zlib.compress(plain), b"deflate"
    return plain, (b"identity" if kind == "identity" else None)


def _plain_body(rng: random.Random) -> bytes:
    size = rng.choice([0, rng.randint(1, 100), rng.randint(100, 10 * 1024)])
    if rng.random() < 0.5:
        return rng.randbytes(size)
    return bytes(rng.choices(b"hello world, ", k=size))


def random_case(rng: random.Random) -> Case:
    features: set[str] = set()
    version = b"HTTP/1.0" if rng.random() < 0.15 else b"HTTP/1.1"
    features.add(version.decode())
    method = rng.choice(["GET", "GET", "POST", "HEAD"])
    features.add(method)

    interims = b""
    if version == b"HTTP/1.1" and rng.random() < 0.2:
        features.add("1xx")
        for _ in range(rng.randint(1, 3)):
            status = rng.choice([100, 102, 103, rng.randint(104, 199)])
            interims += _status_line(rng, version, status, set()) + b"".join(_header_lines(rng, 3))
            interims += b"\r\n"

    status = rng.choice([200, 200, 201, 204, 304, rng.randint(200, 599)])
    bodiless = status in (204, 304)
    features.add(f"{status // 100}xx" if not bodiless else str(status))

    plain = b"" if bodiless else _plain_body(rng)
    sent, encoding = _encoded(rng, plain, features)
    framings = ["length", "chunked", "close"] if version == b"HTTP/1.1" else ["length", "close"]
    if bodiless:
        framings = ["none", "length"] if status == 304 else ["none"]
    framing = rng.choice(framings)
    features.add(f"framing-{framing}")

    keep_alive = rng.choice([None, b"close", b"keep-alive", b"Keep-Alive", b"close"])
    closes = keep_alive == b"close" or (version == b"HTTP/1.0" and keep_alive is None)
    features.add("announces-close" if closes else "keeps-alive")

    headers = _header_lines(rng, 8)
    if framing == "length":
        length = len(sent) if not bodiless else rng.randint(0, 500)
        headers.append(b"Content-Length: %d\r\n" % length)
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked\r\n")
    if encoding is not None:
        headers.append(b"Content-Encoding: " + encoding + b"\r\n")
    if keep_alive is not None:
        headers.append(b"Connection: " + keep_alive + b"\r\n")
    rng.shuffle(headers)
    head = _status_line(rng, version, status, features) + b"".join(headers) + b"\r\n"
    body = _chunked(rng, sent, features) if framing == "chunked" else sent

    size = len(interims) + len(head) + len(body)
    writes = rng.choice(["one", "few", "many", "bytes"] if size < 3000 else ["one", "few", "many"])
    features.add(f"writes-{writes}")
    cuts: list[int] | None = None
    if writes == "few":
        cuts = [rng.randint(1, size) for _ in range(rng.randint(1, 4))]
    elif writes == "many":
        cuts = [rng.randint(1, size) for _ in range(rng.randint(5, 60))]
    elif writes == "one":
        cuts = []
    return Case(
        method=method,
        sent=rng.randbytes(rng.choice([0, 10, 3000])) if method == "POST" else b"",
        read_at_most=rng.randint(0, 4096),
        interims=interims,
        head=head,
        body=body,
        bodiless=bodiless,
        to_close=framing == "close",
        announces_close=closes,
        cuts=cuts,
        features=features,
    )


def test_random_answers_are_read_as_httpxs_client_reads_them(
    serve: Callable[..., RawServer],
) -> None:
    # Given a server that answers each request with the current random case's bytes,
    # written in the case's pieces, and closes the connection when the case says so
    current: list[Case] = []

    def script(peer: Peer) -> None:
        for _ in peer.requests():
            case = current[0]
            peer.send(*case.pieces())
            if case.server_closes():
                return

    server = serve(script)
    rng = random.Random(20261201)
    compared = 0
    seen: Counter[str] = Counter()
    with policy_client(NetworkPolicy.default(), timeout=5, limits=httpx.Limits()) as client:
        for number in range(CASES):
            case = random_case(rng)
            current[:] = [case]
            url = server.url(f"/case/{number}")

            # When fetch reads it, and httpx's client reads it again
            asked = {"read_at_most": case.read_at_most, "body": case.sent}
            read = _fetch(client, url, case.method, **asked)
            expected = _httpx(client, url, case.method, **asked)

            # Then both read the same status, reason and start of the body
            assert read == expected, (number, case.method, case.read_at_most, case.answer())
            assert read[0] == "answer", number
            compared += 1
            seen.update(case.features)

    # And every case was compared, and the cases covered what they were made to cover
    assert compared == CASES
    for feature in [
        "HTTP/1.0", "HEAD", "POST", "1xx", "204", "304", "4xx", "5xx", "trailers",
        "chunk-extensions", "framing-chunked", "framing-close", "framing-length",
        "encoding-gzip", "encoding-deflate", "encoding-identity", "reason-none",
        "reason-empty", "reason-random", "writes-bytes", "writes-many", "announces-close",
    ]:  # fmt: skip
        assert seen[feature] >= 20, (feature, seen)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


#: Answers that are not quite right: fetch reads each as httpx's client reads it, or fails
#: as it fails.
ODD_ANSWERS = {
    "bare LF line ends": b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok",
    "bare LF ends the head": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok",
    "a 200 that advertises an upgrade, read to close": (
        b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nConnection: Upgrade, close\r\n\r\nthe body"
    ),
    "a 200 that advertises an upgrade, empty": (
        b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n"
    ),
    "an interim answer that advertises an upgrade": (
        b"HTTP/1.1 100 Continue\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n" + OK
    ),
    "a status under 100": b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
    "a Transfer-Encoding other than chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nsome body"
    ),
    "spaces after a chunk's size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2  \r\nok\r\n0\r\n\r\n"
    ),
    "bare LF in the chunked framing": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n0\n\n"
    ),
    "a Content-Length with a sign": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    "a space before the colon": b"HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/2 in the status line": b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "a Shoutcast status line": b"ICY 200 OK\r\nContent-Length: 2\r\n\r\nok",
    # raw deflate is not the deflate coding (zlib's), but httpx's decoder reads it when
    # its first piece is long enough to tell (it is here: one write)
    "a raw deflate body": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: 13\r\n\r\n"
        + _raw_deflate(b"hello there")
    ),
    "a corrupt gzip body": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 7\r\n\r\nnot gz!"
    ),
    "a chunk size too big": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1" + b"0" * 24 + b"\r\nab"
    ),
}


@pytest.mark.parametrize("answer", ODD_ANSWERS.values(), ids=ODD_ANSWERS.keys())
def test_odd_answers_are_read_as_httpxs_client_reads_them(
    client: PolicyClient, serve: Callable[..., RawServer], answer: bytes
) -> None:
    # Given a server that answers with something not quite right, then closes
    def script(peer: Peer) -> None:
        if peer.request() is not None:
            peer.send(answer)

    server = serve(script)
    # When fetch reads it, and httpx's client reads it
    read = _fetch(client, server.url())
    expected = _httpx(client, server.url())
    # Then both read the same, or both fail the same way
    assert read == expected


HTTPX_OK = ("answer", 200, "OK", b"ok")
REFUSED = ("error", httpx.RemoteProtocolError)

#: The answers fetch reads differently from httpx's client, none of them valid, and why
#: the difference is kept: (the answer, what fetch reads, what httpx's client read).
DIFFERENCES = {
    # h11 fails on a 101 to a request that asked for no upgrade; fetch reports the status
    # (an action's call fails on it all the same) and closes the connection (tested below)
    "a 101 nobody asked for": (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        ("answer", 101, "Switching Protocols", b""),
        REFUSED,
    ),
    # llhttp reads these only with its lenient_headers, which would let CR and NUL into
    # header values too: obsolete line folding, and control characters in a value
    "a folded header line": (
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
        REFUSED,
        HTTPX_OK,
    ),
    "a control character in a header value": (
        b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok",
        REFUSED,
        HTTPX_OK,
    ),
    # RFC 9110 8.6 lets a recipient refuse lengths given more than once
    "a Content-Length list": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        REFUSED,
        HTTPX_OK,
    ),
    "the same Content-Length twice": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        REFUSED,
        HTTPX_OK,
    ),
    # RFC 9112 6.3: "ought to be handled as an error" (a response splitting attempt)
    "both Transfer-Encoding and Content-Length": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        REFUSED,
        HTTPX_OK,
    ),
    "HTTP/1.2": (b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", REFUSED, HTTPX_OK),
    # llhttp skips empty lines before an answer, and reads chunked named twice as chunked
    "an empty line before the answer": (
        b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        HTTPX_OK,
        REFUSED,
    ),
    "chunked twice": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        HTTPX_OK,
        REFUSED,
    ),
}


@pytest.mark.parametrize(
    ("answer", "fetched", "httpx_read"), DIFFERENCES.values(), ids=DIFFERENCES.keys()
)
def test_where_fetch_reads_an_answer_unlike_httpxs_client_it_is_on_purpose(
    client: PolicyClient,
    serve: Callable[..., RawServer],
    answer: bytes,
    fetched: tuple[Any, ...],
    httpx_read: tuple[Any, ...],
) -> None:
    # Given a server that answers with something invalid, then closes
    def script(peer: Peer) -> None:
        if peer.request() is not None:
            peer.send(answer)

    server = serve(script)
    # When fetch reads it, and httpx's client reads it, each reads it as listed
    assert (_fetch(client, server.url()), _httpx(client, server.url())) == (fetched, httpx_read)


def test_an_answer_sent_before_the_body_was_read_is_read_as_httpx_reads_it(
    client: PolicyClient, serve: Callable[..., RawServer]
) -> None:
    # Given a server that reads a request's head only, answers 413 at once and closes the
    # connection, its unread body making the close a reset that fails the client's write
    def script(peer: Peer) -> None:
        if peer.request_head() is not None:
            peer.send(b"HTTP/1.1 413 Too Big\r\nContent-Length: 3\r\n\r\nbig")

    server = serve(script)
    body = b"x" * 16 * 1024 * 1024
    # When fetch and httpx's client send it a large body, both read the answer (httpcore
    # reads an answer after a write that failed, since servers answer so)
    expected = ("answer", 413, "Too Big", b"big")
    assert _fetch(client, server.url(), "POST", body=body) == expected
    assert _httpx(client, server.url(), "POST", body=body) == expected


# -- 2. kept-alive connections ----------------------------------------------------------------

#: Answers after which the connection is kept (True) or not (False), by a server that
#: would keep it: not keeping it is the client's decision.
KEEPS = {
    "a Content-Length answer": (OK, True),
    "a chunked answer": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        True,
    ),
    "a 204": (b"HTTP/1.1 204 No Content\r\n\r\n", True),
    "an HTTP/1.0 answer that asks to keep it": (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        True,
    ),
    "Connection: close": (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        False,
    ),
    "an HTTP/1.0 answer": (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    "a 101 (switching protocols)": (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        False,
    ),
}


@pytest.mark.parametrize(("answer", "kept"), KEEPS.values(), ids=KEEPS.keys())
def test_a_connection_is_kept_only_after_an_answer_that_keeps_it(
    client: PolicyClient, serve: Callable[..., RawServer], answer: bytes, kept: bool
) -> None:
    # Given a server that answers the first request on a connection with ``answer`` and
    # any later one with a plain answer, and never closes a connection itself
    def script(peer: Peer) -> None:
        for number, _ in enumerate(peer.requests()):
            peer.send(OK if number or peer.number else answer)

    server = serve(script)
    # When two calls are made one after the other
    first = client.fetch("GET", server.url("/1"), {}, b"", read_at_most=100)
    second = client.fetch("GET", server.url("/2"), {}, b"", read_at_most=100)
    # Then the second went on the first's connection only if the first answer keeps it
    assert first.status == int(answer.split()[1])
    assert second.body_start == b"ok"
    assert server.connections() == ([0, 0] if kept else [0, 1])
    # And a connection not kept was closed by the client
    if not kept:
        assert server.peers[0].closed.wait(5)


def test_a_head_answer_does_not_keep_the_connection(
    client: PolicyClient, serve: Callable[..., RawServer]
) -> None:
    # Given a server that answers a HEAD with the length a GET's body would have
    def script(peer: Peer) -> None:
        for request in peer.requests():
            if request.startswith(b"HEAD "):
                peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
            else:
                peer.send(OK)

    server = serve(script)
    # When a HEAD and then a GET are sent
    head = client.fetch("HEAD", server.url(), {}, b"", read_at_most=100)
    get = client.fetch("GET", server.url(), {}, b"", read_at_most=100)
    # Then the HEAD read no body, and its connection was not used again
    assert (head.status, head.body_start, get.body_start) == (200, b"", b"ok")
    assert server.connections() == [0, 1]


def test_a_body_left_unread_past_the_excerpt_does_not_keep_the_connection(
    client: PolicyClient, serve: Callable[..., RawServer]
) -> None:
    # Given a server that sends the head and 10 bytes of a 100-byte body, and the rest
    # only once the first call returned
    first_returned = threading.Event()

    def script(peer: Peer) -> None:
        for number, _ in enumerate(peer.requests()):
            if peer.number == 0 and number == 0:
                peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"a" * 10)
                first_returned.wait(10)
                peer.send(b"b" * 90)
            else:
                peer.send(OK)

    server = serve(script)
    # When a call reads 5 bytes of it, and another call follows
    first = client.fetch("GET", server.url("/1"), {}, b"", read_at_most=5)
    first_returned.set()
    second = client.fetch("GET", server.url("/2"), {}, b"", read_at_most=100)
    # Then the first read 5 bytes, and its connection, with 90 bytes of it unread, was
    # closed: the second call's answer is its own
    assert (first.body_start, second.body_start) == (b"aaaaa", b"ok")
    assert server.connections() == [0, 1]
    assert server.peers[0].closed.wait(5)


#: An answer nobody asked for, with a status of its own: nothing of it may show in any call
SECOND = b"HTTP/1.1 299 Smuggled\r\nContent-Length: 7\r\n\r\nsmuggle"

#: A server's answer to one request followed by bytes nobody asked for: (what is sent
#: at once, what is sent after the client read the answer).
DESYNC = {
    "a second answer in the same write": (OK + SECOND, b""),
    "a second answer after the first was read": (OK, SECOND),
    "a second answer after a chunked answer": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + SECOND,
        b"",
    ),
    "a second answer after a 204": (b"HTTP/1.1 204 No Content\r\n\r\n" + SECOND, b""),
    "a second answer after interim ones": (
        b"HTTP/1.1 100 Continue\r\n\r\n" + OK + b"HTTP/1.1 100 Continue\r\n\r\n" + SECOND,
        b"",
    ),
    "a part of a second answer": (OK + b"HTTP/1.1 2", b""),
    "one byte": (OK + b"x", b""),
    "one byte after the answer was read": (OK, b"x"),
}


@pytest.mark.parametrize(("at_once", "after"), DESYNC.values(), ids=DESYNC.keys())
def test_bytes_after_an_answer_are_never_read_as_the_next_answer(
    client: PolicyClient, serve: Callable[..., RawServer], at_once: bytes, after: bytes
) -> None:
    # Given a server that answers the first request with an answer and more bytes after
    # it (a response-desync attempt), and every later request with its own answer
    first_returned, all_sent = threading.Event(), threading.Event()

    def script(peer: Peer) -> None:
        for number, _ in enumerate(peer.requests()):
            if peer.number == 0 and number == 0:
                peer.send(at_once)
                if after:
                    first_returned.wait(10)
                    peer.send(after)
                all_sent.set()
            else:
                peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")

    server = serve(script)
    # When a call is made, the server has sent everything, and another call is made
    first = client.fetch("GET", server.url("/1"), {}, b"", read_at_most=100)
    first_returned.set()
    assert all_sent.wait(5)
    second = client.fetch("GET", server.url("/2"), {}, b"", read_at_most=100)
    # Then each call read its own answer, the second on a new connection
    expected = network.Answer(204, "No Content", b"") if b" 204 " in at_once else OK_ANSWER
    assert (first, second) == (expected, network.Answer(200, "OK", b"second"))
    assert server.connections() == [0, 1]


def test_a_connection_the_server_closed_while_idle_is_replaced(
    client: PolicyClient, serve: Callable[..., RawServer]
) -> None:
    # Given a server that closes each connection after its first keep-alive answer
    def script(peer: Peer) -> None:
        if next(peer.requests(), None) is not None:
            peer.send(OK)

    server = serve(script)
    client.fetch("GET", server.url("/1"), {}, b"", read_at_most=100)
    assert server.peers[0].closed.wait(5)
    # When the next call is made
    second = client.fetch("GET", server.url("/2"), {}, b"", read_at_most=100)
    # Then it is answered on a new connection, not failed
    assert second.body_start == b"ok"
    assert server.connections() == [0, 1]


@pytest.mark.parametrize(
    ("idle_s", "reused"),
    [(wire.KEEP_ALIVE_S - 0.5, True), (wire.KEEP_ALIVE_S + 0.5, False)],
    ids=["younger than KEEP_ALIVE_S", "older than KEEP_ALIVE_S"],
)
def test_a_connection_idle_too_long_is_closed_not_reused(
    client: PolicyClient,
    serve: Callable[..., RawServer],
    monkeypatch: pytest.MonkeyPatch,
    idle_s: float,
    reused: bool,
) -> None:
    # Given wire's clock under the test's control, and a kept-alive connection
    now = [1000.0]
    monkeypatch.setattr(wire, "time", SimpleNamespace(monotonic=lambda: now[0]))
    server = serve(answering(OK))
    client.fetch("GET", server.url("/1"), {}, b"", read_at_most=100)
    # When the next call comes after ``idle_s``
    now[0] += idle_s
    client.fetch("GET", server.url("/2"), {}, b"", read_at_most=100)
    # Then the connection was reused only if it was idle less than KEEP_ALIVE_S; an older
    # one was closed
    assert server.connections() == ([0, 0] if reused else [0, 1])
    if not reused:
        assert server.peers[0].closed.wait(5)


def test_a_thread_keeps_at_most_its_share_of_connections(
    client: PolicyClient, serve: Callable[..., RawServer]
) -> None:
    # Given one more server than a thread keeps connections for
    servers: list[RawServer] = []
    for _ in range(network.CONNECTIONS_PER_SET + 1):
        servers.append(serve(answering(OK)))
    # When a call is made to each
    for server in servers:
        client.fetch("GET", server.url(), {}, b"", read_at_most=100)
    # Then the connection used longest ago was closed, the others kept
    assert servers[0].peers[0].closed.wait(5)
    assert not any(peer.closed.is_set() for s in servers[1:] for peer in s.peers)


# -- 3. requests that could split or smuggle are refused before a byte is sent ---------------

#: (method, headers, body) that would end a header early or add one.
INJECTIONS = {
    "CR LF in a value": ("GET", {"X-A": "a\r\nX-Injected: 1"}, b""),
    "LF in a value": ("GET", {"X-A": "a\nX-Injected: 1"}, b""),
    "CR in a value": ("GET", {"X-A": "a\rX-Injected: 1"}, b""),
    "NUL in a value": ("GET", {"X-A": "a\x00b"}, b""),
    "a leading space in a value": ("GET", {"X-A": " a"}, b""),
    "a trailing space in a value": ("GET", {"X-A": "a "}, b""),
    "only a tab as a value": ("GET", {"X-A": "\t"}, b""),
    "CR LF in a name": ("GET", {"X-A\r\nX-Injected": "1"}, b""),
    "a space in a name": ("GET", {"X A": "1"}, b""),
    "a leading space in a name": ("GET", {" X-A": "1"}, b""),
    "a trailing space in a name": ("GET", {"X-A ": "1"}, b""),
    "a colon in a name": ("GET", {"X-A:": "1"}, b""),
    "NUL in a name": ("GET", {"X\x00A": "1"}, b""),
    "an empty name": ("GET", {"": "1"}, b""),
    "a name that is not a token": ("GET", {"X(A)": "1"}, b""),
    "a method with a space": ("GE T", {}, b""),
    "a method with CR LF": ("GET /x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", {}, b""),
    "an empty method": ("", {}, b""),
}

#: (method, headers, body) whose framing headers a job gave would have the connection
#: carry more or less than the body: what follows would be read as another request.
SMUGGLING = {
    "a Content-Length under the body's (the rest a second request)": (
        "POST",
        {"Content-Length": "0"},
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "a Content-Length over the body's": ("POST", {"Content-Length": "9"}, b"abc"),
    "a Content-Length with a sign": ("POST", {"Content-Length": "+3"}, b"abc"),
    "two Content-Lengths that differ": (
        "POST",
        {"Content-Length": "3", "content-length": "4"},
        b"abc",
    ),
    "a Content-Length list that differs": ("POST", {"Content-Length": "3, 4"}, b"abc"),
    "a Transfer-Encoding other than chunked": ("POST", {"Transfer-Encoding": "gzip"}, b"abc"),
    "chunked, not last": ("POST", {"Transfer-Encoding": "chunked, gzip"}, b"abc"),
    # httpx's client sent both (h11 framed the body as chunked): a server or a proxy on
    # the way that reads the length instead reads the rest as another request
    "both framings": ("POST", {"Transfer-Encoding": "chunked", "Content-Length": "3"}, b"abc"),
}

#: What fetch refuses though h11 let it through: DEL is no field-vchar (RFC 9110 5.5).
STRICTER = {"DEL in a value": ("GET", {"X-A": "a\x7fb"}, b"")}

REFUSED_REQUESTS = INJECTIONS | SMUGGLING | STRICTER


@pytest.mark.parametrize(
    ("method", "headers", "body"), REFUSED_REQUESTS.values(), ids=REFUSED_REQUESTS.keys()
)
def test_a_request_that_could_split_or_smuggle_is_refused_and_nothing_is_sent(
    client: PolicyClient,
    serve: Callable[..., RawServer],
    method: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    # Given a kept-alive connection to a server
    server = serve(answering(OK))
    client.fetch("GET", server.url("/before"), {}, b"", read_at_most=10)
    # When the request is sent
    with pytest.raises(httpx.LocalProtocolError):
        client.fetch(method, server.url("/refused"), headers, body, read_at_most=10)
    # Then it was refused before anything was sent: the server read the requests before
    # and after it only, on the connection kept alive
    client.fetch("GET", server.url("/after"), {}, b"", read_at_most=10)
    assert [line.split()[1] for _, line in server.log] == [b"/before", b"/after"]
    assert server.connections() == [0, 0]
    assert server.peers[0].received.count(b"HTTP/1.1\r\n") == 2
    assert b"Injected" not in server.peers[0].received


class _RawTarget(httpx.URL):
    """A URL whose request target is given as it is: httpx's parser would refuse or
    percent-encode a space or a control character, so only this reaches
    ``request_head``'s own check."""

    def __init__(self, url: httpx.URL, target: bytes) -> None:
        super().__init__(url)
        self._target = target

    @property
    def raw_path(self) -> bytes:
        return self._target


@pytest.mark.parametrize(
    "target",
    [b"/a b", b"/a\r\nX-Injected: 1", b"/a\nb", b"/a\rb", b"/a\x00", b"/a\tb", b"", b"/\x7f"],
)
def test_a_target_that_could_split_the_request_is_refused_and_nothing_is_sent(
    client: PolicyClient, serve: Callable[..., RawServer], target: bytes
) -> None:
    # Given a server
    server = serve(answering(OK))
    # When a request is sent with a target holding a space or a control character
    with pytest.raises(httpx.LocalProtocolError):
        client.fetch("GET", _RawTarget(server.url(), target), {}, b"", read_at_most=10)
    # Then it was refused before a connection was even made
    client.fetch("GET", server.url("/after"), {}, b"", read_at_most=10)
    assert len(server.peers) == 1
    assert bytes(server.peers[0].received).startswith(b"GET /after ")


@pytest.mark.parametrize(("method", "headers", "body"), INJECTIONS.values(), ids=INJECTIONS.keys())
def test_httpxs_client_refused_the_same_injections(
    client: PolicyClient,
    serve: Callable[..., RawServer],
    method: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    # Given a server
    server = serve(answering(OK))
    # When httpx's client sends a request fetch refuses, it refuses it too, sending nothing
    assert _httpx(client, server.url(), method, headers=headers, body=body) == (
        "error",
        httpx.LocalProtocolError,
    )
    assert all(peer.received == b"" for peer in server.peers)


#: Framing headers a job may give that frame its body as it is: (headers, body, the body
#: as the server must receive it).
FRAMED_REQUESTS = {
    "a Content-Length that is the body's": ({"Content-Length": "3"}, b"abc", b"abc"),
    "the same Content-Length twice": (
        {"Content-Length": "3", "content-length": "3"},
        b"abc",
        b"abc",
    ),
    "chunked": ({"Transfer-Encoding": "chunked"}, b"abc", b"3\r\nabc\r\n0\r\n\r\n"),
    "chunked, in capitals": ({"Transfer-Encoding": "CHUNKED"}, b"abc", b"3\r\nabc\r\n0\r\n\r\n"),
    "chunked, empty": ({"Transfer-Encoding": "chunked"}, b"", b"0\r\n\r\n"),
}


@pytest.mark.parametrize(
    ("headers", "body", "received"), FRAMED_REQUESTS.values(), ids=FRAMED_REQUESTS.keys()
)
def test_a_body_is_sent_as_its_given_framing_says(
    client: PolicyClient,
    serve: Callable[..., RawServer],
    headers: dict[str, str],
    body: bytes,
    received: bytes,
) -> None:
    # Given a server that reads chunked bodies and keeps connections alive
    bodies: list[bytes] = []

    def script(peer: Peer) -> None:
        for request in peer.requests():
            bodies.append(request.partition(b"\r\n\r\n")[2])
            peer.send(OK)

    server = serve(script)
    # When a request is sent with the framing headers a job gave, and another after it
    client.fetch("POST", server.url("/framed"), headers, body, read_at_most=10)
    client.fetch("GET", server.url("/after"), {}, b"", read_at_most=10)
    # Then the body went framed as its headers say, with one Content-Length at most, and
    # the next request followed it on the same connection
    assert bodies == [received, b""]
    assert server.connections() == [0, 0]
    assert server.peers[0].received.lower().count(b"content-length") <= 1


# -- 4. bounds on what a server can make the worker read -------------------------------------


class _CountingStream(httpcore.NetworkStream):
    """A network stream that counts the bytes read through it."""

    def __init__(self, stream: httpcore.NetworkStream, counts: list[int], at: int) -> None:
        self._stream, self._counts, self._at = stream, counts, at

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._stream.read(max_bytes, timeout)
        self._counts[self._at] += len(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _CountingStream(self._stream.start_tls(*args, **kwargs), self._counts, self._at)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bytes read on each connection the policy's backend makes, in order."""
    counts: list[int] = []
    connect = network.PolicyBackend.connect_tcp

    def counted(self: network.PolicyBackend, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        counts.append(0)
        return _CountingStream(connect(self, *args, **kwargs), counts, len(counts) - 1)

    monkeypatch.setattr(network.PolicyBackend, "connect_tcp", counted)
    return counts


FILLER = b"X-Filler: " + b"a" * 90 + b"\r\n"
CHUNKED_OK = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"

#: An answer that never ends: (its start, what is repeated after it, the reads that may
#: come before the bound is counted from: none for a head, the one that brought the
#: body's last piece for a chunk head or trailers).
ENDLESS = {
    "header lines": (b"HTTP/1.1 200 OK\r\n", FILLER, 0),
    "a header value": (b"HTTP/1.1 200 OK\r\nX-A: ", b"a" * 100, 0),
    "a reason phrase": (b"HTTP/1.1 200 ", b"a" * 100, 0),
    "interim answers": (b"", b"HTTP/1.1 100 Continue\r\n" + FILLER + b"\r\n", 0),
    "trailers": (CHUNKED_OK + b"0\r\n", FILLER, 1),
    "a chunk extension": (CHUNKED_OK + b"2;a=", b"b" * 100, 1),
    "a chunk size's leading zeros": (CHUNKED_OK, b"0" * 100, 1),
}


@pytest.mark.parametrize(
    ("start", "repeated", "reads_before"), ENDLESS.values(), ids=ENDLESS.keys()
)
def test_an_answer_that_never_ends_is_refused_after_a_bounded_read(
    client: PolicyClient,
    serve: Callable[..., RawServer],
    bytes_read: list[int],
    start: bytes,
    repeated: bytes,
    reads_before: int,
) -> None:
    # Given a server that sends an answer whose head, or a chunk's head or the trailers,
    # never end (until the client goes away, or 64 MiB)
    def script(peer: Peer) -> None:
        if peer.request() is not None:
            peer.send(start)
            batch = repeated * (16 * 1024 // len(repeated))
            for _ in range(64 * 1024 * 1024 // len(batch)):
                peer.send(batch)

    server = serve(script)
    started = time.monotonic()
    # When a call reads it (wanting more of the body than the answer has)
    with pytest.raises(httpx.RemoteProtocolError):
        client.fetch("GET", server.url(), {}, b"", read_at_most=4096, timeout_s=2)
    # Then it was refused at once, after reading at most a read (64 KiB) past
    # MAX_HEAD_BYTES (httpx's client bounds each of these but the interim answers, which
    # it reads as long as they come: h11 bounds each one, not how many)
    assert bytes_read[0] <= wire.MAX_HEAD_BYTES + (1 + reads_before) * 64 * 1024
    assert time.monotonic() - started < 2


#: Answers cut short by the server closing the connection, or not HTTP at all: both
#: clients fail with RemoteProtocolError.
BROKEN = {
    "no answer": b"",
    "half a head": b"HTTP/1.1 200 OK\r\nContent-Len",
    "half a Content-Length body": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcde",
    "half a chunked body": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
    "half a chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc",
    "garbage": b"garbage\r\n\r\n",
    "an HTML page (HTTP/0.9)": b"<html>hello</html>",
    "a TLS alert": b"\x15\x03\x03\x00\x02\x02\x28",
    "letters in the status": b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
    "NUL in a header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "CR alone in a header": b"HTTP/1.1 200 OK\r\nX-A: a\rX-B: b\r\nContent-Length: 0\r\n\r\n",
    "a header with no colon": b"HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 0\r\n\r\n",
    "conflicting Content-Lengths": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"
    ),
    "a chunk size that is not hex": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n"
    ),
}


@pytest.mark.parametrize("answer", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_answer_fails_as_a_remote_protocol_error(
    client: PolicyClient, serve: Callable[..., RawServer], answer: bytes
) -> None:
    # Given a server that sends a broken answer and closes the connection
    def script(peer: Peer) -> None:
        if peer.request() is not None:
            peer.send(answer)

    server = serve(script)
    # When fetch reads it, and httpx's client reads it, both fail the same way
    assert _fetch(client, server.url()) == ("error", httpx.RemoteProtocolError)
    assert _httpx(client, server.url()) == ("error", httpx.RemoteProtocolError)


@pytest.fixture
def quiet() -> Iterator[threading.Event]:
    """Set when the test ends: a script that waits on it stops waiting."""
    done = threading.Event()
    yield done
    done.set()


def test_a_server_that_never_answers_times_out_within_the_timeout(
    client: PolicyClient, serve: Callable[..., RawServer], quiet: threading.Event
) -> None:
    # Given a server that reads the request and says nothing
    def script(peer: Peer) -> None:
        if peer.request() is not None:
            quiet.wait(30)

    server = serve(script)
    started = time.monotonic()
    # When a call is made with a timeout of 0.3 s, it times out as a read, in about 0.3 s
    with pytest.raises(httpx.ReadTimeout):
        client.fetch("GET", server.url(), {}, b"", read_at_most=10, timeout_s=0.3)
    assert 0.3 <= time.monotonic() - started < 2


WHOLE = ("answer", 200, "OK", b"0123456789")
TIMED_OUT = ("error", httpx.ReadTimeout)


@pytest.mark.parametrize(
    ("pauses_s", "by_fetch", "by_httpx"),
    [
        ([0.02] * 10, WHOLE, WHOLE),
        ([0.06] * 10, TIMED_OUT, WHOLE),
        ([0.0] * 5 + [0.8] + [0.0] * 4, TIMED_OUT, TIMED_OUT),
    ],
    ids=["all of it within the timeout", "each pause within, all of it not", "one pause longer"],
)
def test_the_timeout_applies_to_the_whole_call_not_to_each_read(
    client: PolicyClient,
    serve: Callable[..., RawServer],
    quiet: threading.Event,
    pauses_s: list[float],
    by_fetch: tuple[Any, ...],
    by_httpx: tuple[Any, ...],
) -> None:
    # Given a server that sends a 10-byte body a byte at a time, pausing before each
    def script(peer: Peer) -> None:
        for _ in peer.requests():
            peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            for digit, pause_s in zip(b"0123456789", pauses_s, strict=True):
                if quiet.wait(pause_s):
                    return
                peer.send(bytes([digit]))

    server = serve(script)
    # When fetch and httpx's client read it with a timeout of 0.4 s
    started = time.monotonic()
    read = _fetch(client, server.url(), read_at_most=10, timeout_s=0.4)
    took = time.monotonic() - started
    # Then fetch reads it only if all of it came within the timeout: the attempt's lease
    # lasts the timeout and a margin, and must outlast the call. httpx's client applies
    # the timeout to each read, and reads whatever never pauses as long
    assert read == by_fetch
    assert took < 0.4 + 0.3
    assert _httpx(client, server.url(), read_at_most=10, timeout_s=0.4) == by_httpx


# -- 5. TLS -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca_pem: str
    files: dict[str, tuple[Path, Path]]  # name -> (certificate file, key file)

    def server_context(self, name: str) -> ssl.SSLContext:
        """A server's TLS context with a certificate for ``name``, preferring h2."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self.files[name])
        context.set_alpn_protocols(["h2", "http/1.1"])
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA, and certificates it issued for 127.0.0.1 and for other.test."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Takt test wire CA")])
    ca = (
        _valid(x509.CertificateBuilder(), now)
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    files = {}
    for name, san in [
        ("127.0.0.1", x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))),
        ("other.test", x509.DNSName("other.test")),
    ]:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            _valid(x509.CertificateBuilder(), now)
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
        cert_file.write_bytes(certificate.public_bytes(Encoding.PEM))
        key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        files[name] = (cert_file, key_file)
    return Certificates(ca.public_bytes(Encoding.PEM).decode(), files)


def _valid(builder: x509.CertificateBuilder, now: datetime) -> x509.CertificateBuilder:
    return (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )


def test_an_https_call_offers_http11_only_and_keeps_its_connection(
    serve: Callable[..., RawServer], certificates: Certificates
) -> None:
    # Given an https server with a certificate for 127.0.0.1 that prefers h2 over http/1.1,
    # and a client that trusts its CA
    server = serve(answering(OK), tls=certificates.server_context("127.0.0.1"))
    verify = certificates.client_context()
    with policy_client(
        NetworkPolicy.default(), timeout=5, limits=httpx.Limits(), verify=verify
    ) as client:
        # When two calls are made
        first = client.fetch("GET", server.url("/1"), {}, b"", read_at_most=10)
        second = client.fetch("GET", server.url("/2"), {}, b"", read_at_most=10)
    # Then both were answered over one connection, on which only http/1.1 was offered
    assert (first.status, first.body_start, second.body_start) == (200, b"ok", b"ok")
    assert server.connections() == [0, 0]
    assert server.alpn == ["http/1.1"]


@pytest.mark.parametrize(
    ("name", "trusted"),
    [("other.test", True), ("127.0.0.1", False)],
    ids=["a certificate for another name", "a certificate of an unknown CA"],
)
def test_a_certificate_that_does_not_verify_fails_as_httpxs_client_fails(
    serve: Callable[..., RawServer], certificates: Certificates, name: str, trusted: bool
) -> None:
    # Given an https server whose certificate the client cannot accept for 127.0.0.1
    server = serve(answering(OK), tls=certificates.server_context(name))
    verify = certificates.client_context() if trusted else ssl.create_default_context()
    with policy_client(
        NetworkPolicy.default(), timeout=5, limits=httpx.Limits(), verify=verify
    ) as client:
        # When fetch calls it, and httpx's client calls it
        with pytest.raises(httpx.ConnectError) as fetched:
            client.fetch("GET", server.url(), {}, b"", read_at_most=10)
        with pytest.raises(httpx.ConnectError) as sent:
            client.send(client.build_request("GET", server.url()))
    # Then both failed the same way, with the same words, and no request was read
    assert str(fetched.value) == str(sent.value)
    assert "certificate verify failed" in str(fetched.value)
    assert server.log == []


def test_plain_http_to_a_tls_server_fails_as_httpxs_client_fails(
    client: PolicyClient, serve: Callable[..., RawServer], certificates: Certificates
) -> None:
    # Given a TLS server, called with http://
    server = serve(answering(OK), tls=certificates.server_context("127.0.0.1"))
    url = server.url().copy_with(scheme="http")
    # When fetch and httpx's client call it, both fail the same way
    read = _fetch(client, url, timeout_s=2)
    assert read[0] == "error"
    assert read == _httpx(client, url, timeout_s=2)


def test_over_tls_a_second_answer_in_a_record_of_its_own_is_not_read_as_the_next(
    serve: Callable[..., RawServer], certificates: Certificates
) -> None:
    # Given an https server that answers the first request with two answers, each in TLS
    # records of their own (the first read of the answer stops at a record's end)
    all_sent = threading.Event()

    def script(peer: Peer) -> None:
        for number, _ in enumerate(peer.requests()):
            if peer.number == 0 and number == 0:
                peer.send(OK, SECOND)
                all_sent.set()
            else:
                peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")

    server = serve(script, tls=certificates.server_context("127.0.0.1"))
    verify = certificates.client_context()
    with policy_client(
        NetworkPolicy.default(), timeout=5, limits=httpx.Limits(), verify=verify
    ) as client:
        # When a call is made, the server has sent both, and another call is made
        first = client.fetch("GET", server.url("/1"), {}, b"", read_at_most=100)
        assert all_sent.wait(5)
        second = client.fetch("GET", server.url("/2"), {}, b"", read_at_most=100)
    # Then each call read its own answer, the second on a new connection
    assert (first, second) == (OK_ANSWER, network.Answer(200, "OK", b"second"))
    assert server.connections() == [0, 1]


#: A body that inflates 1,000-fold: 64 MiB of zeros, gzip- or deflate-compressed.
BOMB_BYTES = 64 * 1024 * 1024


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_compressed_body_is_inflated_no_further_than_the_excerpt_needs(
    client: PolicyClient, serve: Callable[..., RawServer], coding: str
) -> None:
    # Given a server answering with 64 MiB of zeros compressed to about 64 KiB, in one write
    zeros = b"\0" * BOMB_BYTES
    body = gzip.compress(zeros, 9) if coding == "gzip" else zlib.compress(zeros, 9)
    del zeros
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        coding.encode(),
        len(body),
        body,
    )

    def script(peer: Peer) -> None:
        if peer.request() is not None:
            peer.send(answer)

    server = serve(script)
    # When a call reads the start of it
    tracemalloc.start()
    try:
        got = client.fetch("GET", server.url(), {}, b"", read_at_most=4096)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then it has the excerpt, and never held more than a few MiB of the inflated body at
    # once (one compressed read inflated whole would be the 64 MiB)
    assert got == network.Answer(200, "OK", b"\0" * 4096)
    assert peak < 4 * 1024 * 1024


TRICKLES = {
    "the head": (b"HTTP/1.1 200 OK\r\n", FILLER),
    "the body": (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"x"),
}


@pytest.mark.parametrize(("start", "trickled"), TRICKLES.values(), ids=TRICKLES.keys())
def test_a_server_that_trickles_its_answer_is_cut_off_at_the_calls_timeout(
    client: PolicyClient, serve: Callable[..., RawServer], start: bytes, trickled: bytes
) -> None:
    # Given a server that sends a little of its answer every 0.1 s, each read well within
    # the timeout, the whole answer never
    stop = threading.Event()

    def script(peer: Peer) -> None:
        if peer.request() is not None:
            peer.send(start)
            while not stop.wait(0.1):
                peer.send(trickled)

    server = serve(script)
    started = time.monotonic()
    # When a call with a timeout of 0.5 s reads it
    try:
        with pytest.raises(httpx.ReadTimeout):
            client.fetch("GET", server.url(), {}, b"", read_at_most=4096, timeout_s=0.5)
    finally:
        stop.set()
    # Then it fails as timed out once the timeout has passed, not while bytes keep coming:
    # the attempt's lease (its timeout and a margin) must outlast the call
    assert time.monotonic() - started < 1.5
