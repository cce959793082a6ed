"""What ``takt up`` and ``takt api`` check before they start anything.

Each check returns None when all is well, or one line for people that says what is wrong
and which setting to change; no traceback, and never a password (store URLs are shown
cut down to scheme, host, port and path).
"""

from __future__ import annotations

import errno
import re
import socket

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler.domain.redaction import redact_urls
from scheduler.settings import TaktSettings
from scheduler.store.connections import client_for

__all__ = ["listen_problem", "store_problem"]

#: How long the store may take to answer PING before it counts as not answering.
STORE_TIMEOUT_S = 2.0
_REASON = re.compile(r"connecting to \S+?\. (?P<reason>.+?)\.?$")


def listen_problem(host: str, port: int, *, host_setting: str, port_setting: str) -> str | None:
    """Why nothing could listen on ``host:port`` now (None: it can), naming the setting.

    The probe binds as uvicorn and Flower do (``SO_REUSEADDR``), so a port whose last
    connections linger in TIME_WAIT after a stop counts as free, as it is for them.
    """
    if port == 0:
        return None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return f"{host} is not an address to listen on ({exc.strerror}); set {host_setting}"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} is in use; set {port_setting}"
            return f"cannot listen on {host}:{port} ({exc.strerror}); set {host_setting}"
    return None


def store_problem(settings: TaktSettings) -> str | None:
    """Why the job store (and a Redis broker of its own) does not answer PING within
    :data:`STORE_TIMEOUT_S`; None when it does.

    Raises:
        ConfigurationError: no store is configured and no ``takt up`` runs on the folder.
    """
    if settings.redis_url is None:
        where = f"check that `takt up` runs on TAKT_DATA_DIR ({settings.data_dir})"
    else:
        where = "check TAKT_REDIS_URL"
    urls = [(settings.store_url, where)]
    if settings.broker_url and settings.broker_url.startswith(("redis", "valkey", "unix")):
        urls.append((settings.broker_url, "check TAKT_BROKER_URL"))
    for url, hint in urls:
        reason = _no_answer(url)
        if reason is not None:
            return f"the store at {redact_urls(url)} does not answer ({reason}); {hint}"
    return None


def _no_answer(url: str) -> str | None:
    try:
        client = client_for(
            url,
            socket_timeout=STORE_TIMEOUT_S,
            socket_connect_timeout=STORE_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:  # not a Redis URL at all
        return redact_urls(str(exc))
    try:
        client.ping()
    except redis.AuthenticationError:
        return "it refuses the password"
    except redis.RedisError as exc:
        found = _REASON.search(str(exc))
        return found.group("reason") if found else redact_urls(str(exc)).rstrip(".")
    finally:
        client.close()
    return None
