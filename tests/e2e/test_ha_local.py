"""The embedded Valkey with Sentinel (scheduler.cli.ha), what `takt up --ha` runs: a primary,
its replica and three Sentinels as real processes on free loopback ports.

The group starts with the Sentinels agreeing; a SIGKILLed primary is replaced within
FAILOVER_BOUND_S, comes back as the new primary's replica, and a second failover goes back
to it; its files are private and no password is printed. `takt up --ha` serves the API on
it, and tends it: a killed primary comes back as a replica while jobs are still created.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from scheduler.cli.ha import SERVICE, DataNode, SentinelGroup, start_sentinel_group
from scheduler.data_folder import STORE_URL_FILE
from scheduler.store.connections import parse_sentinel_url
from tests.support.arm import API_VERSION, collection_path, http_job
from tests.support.helpers import HttpTarget, free_port, wait_until
from tests.support.processes import alive, descendants
from tests.support.swagger import validating_client

pytestmark = pytest.mark.e2e

#: Measured on loopback (12 failovers): every Sentinel names the promoted replica, which
#: serves as the primary, 3.2 s after the SIGKILL at p50 and 3.3 s at most (the first
#: Sentinel 2.2 s); the bound leaves room for a slow CI machine.
FAILOVER_BOUND_S = 10.0
ANNOUNCED = "takt: API and console at"


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    started = start_sentinel_group(tmp_path, maxmemory="64mb")
    try:
        yield started
    finally:
        started.stop()


def role(node: DataNode) -> list[object]:
    with node.client() as client:
        found: list[object] = client.execute_command("ROLE")
        return found


def replicates(node: DataNode, primary: DataNode) -> bool:
    """``node`` is a replica of ``primary`` with its link up."""
    try:
        kind, host, port, link, _ = role(node)
    except (redis.RedisError, ValueError):
        return False
    return (kind, f"{host}:{port}", link) == ("slave", primary.address, "connected")


def every_sentinel_counts(group: SentinelGroup, replica: DataNode) -> bool:
    """Every Sentinel lists ``replica`` as a replica it can promote (not down)."""
    for sentinel in group.sentinels:
        with sentinel.client() as client:
            replicas = client.sentinel_slaves(SERVICE)
        if not any(r["port"] == replica.port and r["flags"] == "slave" for r in replicas):
            return False
    return True


def fail_over(group: SentinelGroup) -> tuple[DataNode, str, float]:
    """SIGKILL the primary; the node killed, the one promoted and the seconds it took."""
    started = time.monotonic()
    killed = group.kill_primary()
    promoted = group.wait_for_failover(killed.address, timeout=FAILOVER_BOUND_S)
    return killed, promoted, time.monotonic() - started


# --- the group on its own ----------------------------------------------------------------


def test_the_sentinels_agree_and_the_replica_serves_what_the_primary_wrote(
    group: SentinelGroup,
) -> None:
    # Given a started group
    primary, replica = group.data_nodes

    # Then every Sentinel names the primary and counts the replica and the two others
    assert group.current_primary() == primary.address
    for sentinel in group.sentinels:
        with sentinel.client() as client:
            status = client.sentinel_master(SERVICE)
        assert f"{status['ip']}:{status['port']}" == primary.address
        assert (status["flags"], status["num-slaves"], status["num-other-sentinels"]) == (
            "master",
            1,
            2,
        )
    # and its URL is the one the store parses: the three Sentinels, the service, passwords
    address = parse_sentinel_url(group.connection_url)
    assert address.sentinels == tuple((s.address.split(":")[0], s.port) for s in group.sentinels)
    assert (address.service, address.db) == (SERVICE, 0)
    password = group.password_path.read_text().strip()
    assert address.password == address.sentinel_password == password

    # When a key is written on the primary
    with primary.client() as client:
        client.set("written", "on the primary")

    # Then the replica serves it, and refuses writes of its own
    with replica.client() as client:
        wait_until(lambda: client.get("written") == "on the primary", message="replication")
        with pytest.raises(redis.ReadOnlyError):
            client.set("written", "on the replica")


def test_a_killed_primary_is_replaced_rejoins_as_a_replica_and_a_second_failover_goes_back(
    group: SentinelGroup,
) -> None:
    # Given a key the replica holds too
    first, second = group.data_nodes
    with first.client() as client:
        client.set("before", "the failover")
    wait_until(lambda: replicates(second, first), message="the replica's link")
    with second.client() as client:
        wait_until(lambda: client.get("before"), message="replication")

    # When the primary is SIGKILLed
    killed, promoted, took_s = fail_over(group)

    # Then the Sentinels promote the replica in time, and it holds the key
    assert (killed, promoted) == (first, second.address), took_s
    assert first.exit_code() == -signal.SIGKILL
    with second.client() as client:
        assert client.get("before") == "the failover"
        client.set("after", "the failover")

    # When the old primary is started again
    group.restart(first)

    # Then it comes back as the new primary's replica, with what was written meanwhile,
    # and every Sentinel counts it as a replica it may promote
    assert first.following == second.address
    wait_until(lambda: replicates(first, second), timeout=10, message="the rejoin")
    with first.client() as client:
        wait_until(lambda: client.get("after"), message="the resync")
    wait_until(lambda: every_sentinel_counts(group, first), timeout=10, message="the Sentinels")

    # When the new primary is SIGKILLed in turn
    killed, promoted, took_s = fail_over(group)

    # Then the group fails back to the first node, which kept everything
    assert (killed, promoted) == (second, first.address), took_s
    with first.client() as client:
        assert client.mget("before", "after") == ["the failover", "the failover"]


def test_the_groups_files_are_private_and_only_its_url_holds_the_password(
    group: SentinelGroup, tmp_path: Path
) -> None:
    # Given a group that failed over once (each Sentinel rewrote its config, which holds
    # the password in clear) and whose old primary rejoined (it resynced: new AOF files)
    killed, _, _ = fail_over(group)
    group.restart(killed)
    wait_until(lambda: every_sentinel_counts(group, killed), timeout=10, message="the rejoin")

    # Then every folder is the owner's alone (0700) and every file too (0600)
    modes = {
        path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for path in [tmp_path, *tmp_path.rglob("*")]
        if not path.is_socket()
    }
    assert {path for path, mode in modes.items() if mode not in (0o700, 0o600)} == set(), modes
    assert modes["ha/sentinel-1/sentinel.conf"] == modes["valkey-password"] == 0o600
    # and the password is in the URL the children get, never in what is printed (the
    # address, a member's address or repr) nor in a server's log
    password = group.password_path.read_text().strip()
    assert password in group.connection_url
    shown = [group.address, *(m.address for m in group.members), *map(repr, group.members)]
    assert not [text for text in shown if password in text]
    assert not [log for log in tmp_path.rglob("*.log") if password in log.read_text()]


def test_a_group_started_again_keeps_the_primary_the_sentinels_promoted(tmp_path: Path) -> None:
    # Given a group whose replica was promoted, then stopped
    group = start_sentinel_group(tmp_path, maxmemory="64mb")
    try:
        killed, promoted, _ = fail_over(group)
        with group.data_node(promoted).client() as client:
            client.set("written", "after the failover")
    finally:
        group.stop()

    # When it starts again on the same folder
    again = start_sentinel_group(tmp_path, maxmemory="64mb")
    try:
        # Then the node the Sentinels promoted is the primary again, with what it holds,
        # and the other one replicates it
        primary, replica = again.data_nodes
        assert primary.name != killed.name
        assert again.current_primary() == primary.address
        with primary.client() as client:
            assert client.get("written") == "after the failover"
        wait_until(lambda: replicates(replica, primary), message="the replica's link")
    finally:
        again.stop()


# --- `takt up --ha` ----------------------------------------------------------------------


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any TAKT_/FLOWER_ variable, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKT_", "FLOWER_"))}
    return env | {"PYTHONUNBUFFERED": "1"} | settings


def test_up_ha_with_takt_redis_url_is_a_configuration_error(tmp_path: Path) -> None:
    # Given a store named by TAKT_REDIS_URL
    env = clean_env(TAKT_REDIS_URL="redis://127.0.0.1:1/0", TAKT_DATA_DIR=str(tmp_path / "d"))

    # When `takt up --ha` starts
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "up", "--ha", "--no-flower"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it stops at once with one line saying what to change, and started nothing
    assert done.returncode == 2
    assert done.stderr == (
        "takt: --ha starts an embedded Valkey with Sentinel, but TAKT_REDIS_URL names a "
        "store: unset TAKT_REDIS_URL, or leave out --ha (for your own Sentinels, set "
        "TAKT_REDIS_URL to their redis+sentinel:// URL)\n"
    )
    assert not (tmp_path / "d").exists()


def create_job(api: str, token: str, target: HttpTarget, name: str) -> bool:
    """A job created through the API now runs; False when the API refused to create it
    (a 503 while the store fails over)."""
    collection = collection_path("takt-up-ha")
    puts = [
        (collection, {"location": "local"}),
        (f"{collection}/jobs/{name}", http_job(f"{target.url}/{name}")),
    ]
    headers = {"Authorization": f"Bearer {token}"}
    with validating_client(base_url=api, timeout=10, headers=headers) as http:
        for path, body in puts:
            try:
                answer = http.put(path, params=API_VERSION, json=body)
            except httpx.TransportError:
                return False
            if answer.status_code not in (200, 201):
                return False
    wait_until(lambda: target.requests_to(f"/{name}"), timeout=30, message=f"{name} to run")
    return True


def test_up_ha_serves_the_api_and_brings_a_killed_primary_back_as_a_replica(
    tmp_path: Path, target: HttpTarget
) -> None:
    # Given `takt up --ha` on a folder of its own
    port = free_port()
    log = tmp_path / "up.log"
    with log.open("ab") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "up", "--ha", "--no-flower"],
            cwd=tmp_path,
            env=clean_env(TAKT_API_PORT=str(port)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    data = tmp_path / ".takt"
    api = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ANNOUNCED in log.read_text(), timeout=60, message="the URLs")

        # Then it serves /healthz and runs a job created through the API
        assert httpx.get(f"{api}/healthz", timeout=5).status_code == 200
        token = (data / "admin-token").read_text().strip()
        assert create_job(api, token, target, "before")
        # and other commands find the Sentinels' URL in the folder
        password = (data / "valkey-password").read_text().strip()
        url = (data / STORE_URL_FILE).read_text().strip()
        assert url.startswith(f"redis+sentinel://:{password}@127.0.0.1:")

        # When the primary is SIGKILLed
        primary = int((data / "ha" / "valkey-1" / "valkey.pid").read_text())
        os.kill(primary, signal.SIGKILL)

        # Then `takt up` starts it again as a replica of the promoted one
        wait_until(
            lambda: "valkey-1 running again" in log.read_text(), timeout=30, message="restart"
        )
        assert "a replica of 127.0.0.1:" in log.read_text()
        # and jobs are created and run again
        wait_until(lambda: create_job(api, token, target, "after"), timeout=30, message="a new job")
    finally:
        group = descendants(up.pid)
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=30)
        finally:
            for pid in group | descendants(up.pid):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)

    # and it stopped everything it started, and never printed the password
    assert up.returncode == 0
    assert not [pid for pid in group if alive(pid)]
    assert password not in log.read_text()
