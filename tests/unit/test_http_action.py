"""A call through the policy client's pool (issue 15) sends what httpx's client sent,
against a real local server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from scheduler.service.outbound import NetworkPolicy
from tests.support.helpers import HttpTarget
from workers.network import PolicyClient, policy_client


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
