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
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from http.client import HTTPResponse
from http.cookiejar import Cookie, CookieJar
from typing import Any
from urllib.request import Request

import httpcore
import httpx

from scheduler.errors import OutboundRefused
from scheduler.service.outbound import Address, NetworkPolicy

__all__ = ["PolicyBackend", "policy_client"]


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
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PolicyBackend(policy),
        )


class _NoCookies(CookieJar):
    """A cookie jar that keeps none: answers' ``Set-Cookie`` headers are not even parsed."""

    def extract_cookies(self, response: HTTPResponse, request: Request) -> None:
        pass

    def set_cookie(self, cookie: Cookie) -> None:
        pass


def policy_client(
    policy: NetworkPolicy,
    *,
    timeout: httpx.Timeout | float,
    limits: httpx.Limits,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Client:
    """An ``httpx.Client`` whose connections obey ``policy``, that never follows
    redirects and keeps no cookies."""
    return httpx.Client(
        transport=_PolicyTransport(policy, verify=verify, limits=limits),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        cookies=_NoCookies(),
    )
