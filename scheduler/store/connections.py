"""Store URLs: a Redis (or Valkey) server, or a primary found through Redis Sentinel.

``TAKT_REDIS_URL`` (and ``TAKT_BROKER_URL``) take redis-py's URLs (``redis://``,
``rediss://``, ``unix://``) and a Sentinel form of their own::

    redis+sentinel://[[user]:password@]host1:port1,host2:port2,.../service[/db][?options]

- the hosts are the Sentinels (port 26379 when left out), any number, tried in order;
- ``service`` is the name the Sentinels monitor (``sentinel monitor <service> ...``);
- the user and password are the data nodes' (the primary and its replicas);
- ``sentinel_password=`` (and ``sentinel_username=``) in the query authenticate to the
  Sentinels themselves, when they have a password of their own (``requirepass`` in
  ``sentinel.conf``). ``valkey+sentinel://`` is the same. TLS through Sentinel is not
  supported yet.

A client built here from a Sentinel URL asks the Sentinels for the primary on each new
connection, and drops a connection whose server turned out not to be the primary (a
demoted one answers writes with ``READONLY``): after a failover it reconnects to the new
primary without a restart (docs/operations.md, "High availability with Sentinel").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote

import redis
from redis.sentinel import Sentinel, SentinelManagedConnection
from redis.utils import SENTINEL

__all__ = [
    "SENTINEL_SCHEMES",
    "SentinelAddress",
    "client_for",
    "is_sentinel_url",
    "parse_sentinel_url",
]

#: The URL schemes of a primary found through Sentinel.
SENTINEL_SCHEMES = ("redis+sentinel", "valkey+sentinel")
_DEFAULT_SENTINEL_PORT = 26379
#: How long a client waits on one Sentinel (connect, or a reply) before it asks the next.
_SENTINEL_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class SentinelAddress:
    """A primary found through Sentinel: where to ask, which service, and how to log in."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    #: Credentials are write-only: never in a repr (a log line, a traceback).
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    def sentinel_kwargs(self) -> dict[str, Any]:
        """How redis-py logs in to the Sentinels (nothing when they have no password)."""
        options: dict[str, Any] = {}
        if self.sentinel_password is not None:
            options["password"] = self.sentinel_password
        if self.sentinel_username is not None:
            options["username"] = self.sentinel_username
        return options

    def node_kwargs(self) -> dict[str, Any]:
        """How redis-py logs in to the primary, and its database."""
        options: dict[str, Any] = {"db": self.db}
        if self.password is not None:
            options["password"] = self.password
        if self.username is not None:
            options["username"] = self.username
        return options


def is_sentinel_url(url: str) -> bool:
    """Whether ``url`` names a primary through Sentinel (``redis+sentinel://...``)."""
    scheme, separator, _ = url.partition("://")
    return bool(separator) and scheme.lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelAddress:
    """The parts of a Sentinel URL; ValueError (naming the part, never the password) when
    it is not one."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL: the scheme must be one of {SENTINEL_SCHEMES}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    credentials, at, hosts = netloc.rpartition("@")
    if not at:
        credentials, hosts = "", netloc
    username, password = _credentials(credentials) if at else (None, None)
    sentinels = tuple(_host_port(item) for item in hosts.split(",") if item)
    if not sentinels:
        raise ValueError("a Sentinel URL names at least one Sentinel (host:port)")
    service, _, db_text = path.strip("/").partition("/")
    if not service:
        raise ValueError("a Sentinel URL names the service after the hosts (…/service/db)")
    try:
        db = int(db_text) if db_text else 0
    except ValueError:
        raise ValueError(f"the database of a Sentinel URL is a number, not {db_text!r}") from None
    options = {key: values[-1] for key, values in parse_qs(query).items()}
    return SentinelAddress(
        sentinels,
        unquote(service),
        db,
        username,
        password,
        options.get("sentinel_username"),
        options.get("sentinel_password"),
    )


class _PrimaryConnection(SentinelManagedConnection):
    """redis-py's connection to a Sentinel's primary, closed when a reply fails to come in
    time, as its plain connection is. redis-py's own stays open after a timeout, so the
    late reply answered the next command sent on it (a GET read a SET's ``OK``)."""

    def read_response(
        self,
        disable_decoding: Any = False,
        *,
        timeout: float | object = SENTINEL,
        disconnect_on_error: bool | None = True,
        push_request: bool | None = False,
    ) -> Any:
        return super().read_response(
            disable_decoding,
            timeout=timeout,
            disconnect_on_error=disconnect_on_error,
            push_request=push_request,
        )


def client_for(url: str, **options: Any) -> redis.Redis:
    """A redis-py client on ``url`` with ``options`` (``decode_responses``, timeouts,
    ``retry``, ...): ``redis.Redis.from_url`` for a server's URL; for a Sentinel URL, a
    client whose pool always connects to the current primary."""
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    address = parse_sentinel_url(url)
    # A Sentinel that does not answer must not hold the client up: the next one is asked.
    timeouts = {
        key: options.get(key) or _SENTINEL_TIMEOUT_S
        for key in ("socket_timeout", "socket_connect_timeout")
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(address.sentinels),
        sentinel_kwargs={**address.sentinel_kwargs(), **timeouts},
    )
    primary = sentinel.master_for(  # type: ignore[no-untyped-call]
        address.service,
        redis_class=redis.Redis,
        connection_class=_PrimaryConnection,
        **options,
        **address.node_kwargs(),
    )
    return cast(redis.Redis, primary)


def _credentials(text: str) -> tuple[str | None, str | None]:
    user, colon, password = text.partition(":")
    return (unquote(user) or None, unquote(password) if colon else None)


def _host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):  # [IPv6]:port
        host, _, port = item[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    if not host:
        raise ValueError("a Sentinel URL's hosts are host:port, separated by commas")
    try:
        return host, int(port) if port else _DEFAULT_SENTINEL_PORT
    except ValueError:
        raise ValueError("a Sentinel's port is a number") from None
