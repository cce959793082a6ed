"""An action's call through the policy client's pool (issue 15) sends what httpx's client
sent and reads the answer as it read it, against real local servers."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from scheduler.domain.models import HttpRequest
from scheduler.service.outbound import NetworkPolicy
from tests.support.helpers import HttpTarget, free_port
from workers.http_action import BODY_EXCERPT_BYTES, OccurrenceInfo, Outcome, call_http
from workers.network import PolicyClient, policy_client

INFO = OccurrenceInfo(
    job_id="job",
    collection_id="collection",
    expected_time=datetime(2030, 1, 1, tzinfo=UTC),
    execution_tag="tag",
)


@pytest.fixture
def client() -> Iterator[PolicyClient]:
    with policy_client(NetworkPolicy.default(), timeout=5, limits=httpx.Limits()) as c:
        yield c


# -- what is sent ---------------------------------------------------------------------------

#: (method, URI under the target, headers, body); ``{port}`` is the target's port.
REQUESTS = {
    "post-body": ("POST", "/in", {"Content-Type": "text/plain"}, b"hello"),
    "post-empty": ("POST", "/in", {}, b""),
    "put-empty": ("PUT", "/in", {}, b""),
    "get": ("GET", "/in?a=1&b=two", {}, b""),
    "get-body": ("GET", "/in", {}, b"x"),
    "delete": ("DELETE", "/in", {"X-Name": "v"}, b""),
    "no-path": ("GET", "", {}, b""),
    "query-only": ("GET", "?q=1", {}, b""),
    "dot-segments": ("GET", "/a/../b/./c", {}, b""),
    "unicode-query": ("GET", "/in?q=\u00fc", {}, b""),
    "own-host": ("POST", "/in", {"Host": "example.test"}, b"b"),
    "own-agent-any-case": ("GET", "/in", {"user-agent": "mine", "ACCEPT": "text/plain"}, b""),
    "basic": ("POST", "/in", {"Authorization": "Basic dTpw"}, b"b"),
    "user-info": ("GET", "//us%40er:p%3Ass@127.0.0.1:{port}/in", {}, b""),
    "user-info-over-header": (
        "GET",
        "//u:p@127.0.0.1:{port}/in",
        {"authorization": "Bearer token", "X-A": "1"},
        b"",
    ),
    "name": ("GET", "//localhost:{port}/in", {}, b""),
}


def _uri(target: HttpTarget, where: str) -> str:
    port = target.url.rsplit(":", 1)[1]
    if where.startswith("//"):
        return "http:" + where.replace("{port}", port)
    return target.url + where


@pytest.mark.parametrize("case", REQUESTS.values(), ids=REQUESTS.keys())
def test_the_request_is_the_one_httpxs_client_sent(
    client: PolicyClient, target: HttpTarget, case: tuple[str, str, dict[str, str], bytes]
) -> None:
    # Given a request, sent once the way the worker sent it before, through httpx's client
    method, where, headers, body = case
    uri = _uri(target, where)
    client.send(client.build_request(method, uri, headers=headers, content=body))

    # When it is sent through the pool
    answer = client.fetch(method, httpx.URL(uri), headers, body, read_at_most=100)

    # Then the server received the same request line, headers and body
    assert answer.status == 200
    before, after = target.received
    assert (after.method, after.path, after.body) == (before.method, before.path, before.body)
    assert after.headers == before.headers


# -- what is read -----------------------------------------------------------------------------


class Answers:
    """A real server: ``/gzip`` answers a gzip-compressed body; ``/endless`` announces a
    gigabyte, sends 4 KiB and then nothing until the test ends; ``/slow`` answers after
    the test ends."""

    TEXT = b"hello world " * 1000

    def __init__(self) -> None:
        self.done = threading.Event()
        answers = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/slow":
                    answers.done.wait(30)
                body = gzip.compress(answers.TEXT) if self.path == "/gzip" else b"x" * 4096
                self.send_response(200)
                if self.path == "/gzip":
                    self.send_header("Content-Encoding", "gzip")
                length = 10**9 if self.path == "/endless" else len(body)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                if self.path == "/endless":
                    answers.done.wait(30)
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def answers() -> Iterator[Answers]:
    server = Answers()
    try:
        yield server
    finally:
        server.close()


def _get(url: str) -> HttpRequest:
    return HttpRequest(uri=url, method="GET")


def test_a_compressed_answer_is_decoded_as_httpx_decodes_it(
    client: PolicyClient, answers: Answers
) -> None:
    # When a server answers with a gzip-compressed body
    outcome = call_http(client, _get(answers.url("/gzip")), INFO)
    # Then the history holds the start of the text, not of the compressed bytes
    excerpt = answers.TEXT[:BODY_EXCERPT_BYTES].decode()
    assert (
        outcome.message
        == f"Http Action - Response from host '127.0.0.1': '200' OK; Body: {excerpt}"
    )


def test_the_body_is_read_no_further_than_the_excerpt(
    client: PolicyClient, answers: Answers
) -> None:
    # Given a server announcing a gigabyte that sends 4 KiB and then waits
    started = time.monotonic()
    # When the action runs
    outcome = call_http(client, _get(answers.url("/endless")), INFO, timeout_s=10)
    # Then it answers at once with the excerpt: the rest was never waited for
    assert time.monotonic() - started < 5
    assert outcome.succeeded
    assert outcome.message.endswith("Body: " + "x" * BODY_EXCERPT_BYTES)


def test_the_jobs_own_timeout_applies(client: PolicyClient, answers: Answers) -> None:
    # Given a server that does not answer, and a job with a timeout of 0.3 s
    started = time.monotonic()
    # When the action runs
    outcome = call_http(client, _get(answers.url("/slow")), INFO, timeout_s=0.3)
    # Then it failed as timed out, well before the client's own 5 s
    assert time.monotonic() - started < 3
    assert outcome == Outcome(False, "Http Action - Request to host '127.0.0.1' timed out")


def test_a_connection_that_fails_says_why_as_httpx_did(client: PolicyClient) -> None:
    # Given a port nothing listens on
    uri = f"http://127.0.0.1:{free_port()}/x"
    # When the action runs
    outcome = call_http(client, _get(uri), INFO)
    # Then the message carries httpx's own words for the failure
    with pytest.raises(httpx.ConnectError) as failure:
        client.send(client.build_request("GET", uri))
    assert outcome.message == f"Http Action - Request to host '127.0.0.1' failed: {failure.value}"


def test_a_closed_client_sends_nothing(target: HttpTarget) -> None:
    # Given a client that was closed (an evicted client certificate's, say)
    client = policy_client(NetworkPolicy.default(), timeout=5, limits=httpx.Limits())
    client.close()
    # When a call is made with it, it is refused as httpx's client refuses it
    with pytest.raises(RuntimeError, match="client has been closed"):
        client.fetch("GET", httpx.URL(f"{target.url}/in"), {}, b"", read_at_most=10)
    # And nothing reached the server
    assert target.received == []


# -- connections ----------------------------------------------------------------------------


class Connections:
    """A real keep-alive server that counts the connections it was opened and has open."""

    def __init__(self) -> None:
        self.opened: set[tuple[str, int]] = set()
        self.open = 0
        lock = threading.Lock()
        counts = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with lock:
                    counts.opened.add(self.client_address)
                    counts.open += 1

            def finish(self) -> None:
                with lock:
                    counts.open -= 1
                super().finish()

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/in"


def test_threads_keep_their_connections_alive_and_closing_the_client_closes_them() -> None:
    # Given one client shared by 8 threads, as a worker's threads share its client
    server = Connections()
    client = policy_client(NetworkPolicy.default(), timeout=5, limits=httpx.Limits())
    answers: list[int] = []

    def calls() -> None:
        for _ in range(20):
            answer = client.fetch("GET", httpx.URL(server.url), {}, b"", read_at_most=10)
            answers.append(answer.status)

    try:
        threads = [threading.Thread(target=calls) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        # Then every call was answered, each thread over one kept-alive connection
        assert answers == [200] * 160
        assert len(server.opened) <= 8
        assert server.open == len(server.opened)
    finally:
        # And closing the client closes every thread's connections
        client.close()
        deadline = time.monotonic() + 5
        while server.open and time.monotonic() < deadline:
            time.sleep(0.02)
        server.server.shutdown()
        server.server.server_close()
    assert server.open == 0


def test_leaving_a_with_block_closes_the_threads_connections() -> None:
    # httpx's client leaves a ``with`` block without calling close()
    server = Connections()
    try:
        with policy_client(NetworkPolicy.default(), timeout=5, limits=httpx.Limits()) as client:
            thread = threading.Thread(
                target=client.fetch,
                args=("GET", httpx.URL(server.url), {}, b""),
                kwargs={"read_at_most": 10},
            )
            thread.start()
            thread.join(10)
            assert server.open == 1
        deadline = time.monotonic() + 5
        while server.open and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.open == 0
    finally:
        server.server.shutdown()
        server.server.server_close()


def test_calls_each_in_a_thread_of_its_own_reuse_one_kept_alive_connection() -> None:
    # Given a client, and 30 calls one after the other, each from a new thread (as a pool
    # that runs each task in a thread or greenlet of its own calls it)
    server = Connections()
    client = policy_client(NetworkPolicy.default(), timeout=5, limits=httpx.Limits())
    answers: list[int] = []

    def call() -> None:
        answer = client.fetch("GET", httpx.URL(server.url), {}, b"", read_at_most=10)
        answers.append(answer.status)

    try:
        for _ in range(30):
            thread = threading.Thread(target=call)
            thread.start()
            thread.join(10)
        # Then every call was answered over the one connection the first call opened
        assert answers == [200] * 30
        assert len(server.opened) == 1
    finally:
        client.close()
        server.server.shutdown()
        server.server.server_close()
