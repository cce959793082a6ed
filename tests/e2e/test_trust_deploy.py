"""What `takt up` starts is private: Flower asks for a login, the embedded Valkey for a
password; its data folder and files are the owner's alone; maxmemory makes noeviction
refuse; nothing it prints or puts on a command line carries a secret (issue 12, rows 9-10).
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from scheduler.cli.embedded import start_embedded_server
from scheduler.errors import ConfigurationError
from scheduler.settings import load_settings
from tests.support.helpers import free_port, wait_until
from tests.support.processes import alive, descendants

pytestmark = pytest.mark.e2e

MAXMEMORY = "64mb"


@dataclass
class Up:
    """A running `takt up`, its data folder and what it printed."""

    process: subprocess.Popen[bytes]
    data: Path
    log: Path
    api: str
    flower: str

    @property
    def printed(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def valkey_port(self) -> int:
        found = re.search(
            r"embedded Valkey at (?:redis://)?(?:\S*@)?127\.0\.0\.1:(\d+)", self.printed
        )
        assert found, self.printed
        return int(found.group(1))

    @property
    def valkey_password(self) -> str:
        return (self.data / "valkey-password").read_text().strip()

    @property
    def flower_login(self) -> tuple[str, str]:
        user, password = (self.data / "flower-credentials").read_text().strip().split(":", 1)
        return user, password


def answers(url: str, **kwargs: object) -> bool:
    try:
        httpx.get(url, timeout=2, **kwargs)  # type: ignore[arg-type]
    except httpx.TransportError:
        return False
    return True


def ok_json(url: str, auth: tuple[str, str]) -> bool:
    try:
        response = httpx.get(url, timeout=5, auth=auth)
    except httpx.TransportError:
        return False
    return response.status_code == 200 and bool(response.json())


def kill_group(root: int) -> None:
    for pid in descendants(root):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    workdir = tmp_path_factory.mktemp("up")
    port, flower_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKT_", "FLOWER_"))}
    env.update(
        {
            "TAKT_API_PORT": str(port),
            "TAKT_DATA_DIR": str(workdir / ".takt"),
            "TAKT_FLOWER_PORT": str(flower_port),
            "TAKT_VALKEY_MAXMEMORY": MAXMEMORY,
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = workdir / "up.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "up"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Up(
        process,
        workdir / ".takt",
        log,
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{flower_port}",
    )
    try:
        wait_until(lambda: answers(f"{running.api}/healthz"), timeout=60, message="the API")
        wait_until(lambda: answers(running.flower), timeout=60, message="Flower")
        yield running
    finally:
        group = descendants(process.pid)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        finally:
            for pid in group:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the embedded store through `takt up` ---------------------------------------------


def test_the_embedded_store_refuses_a_client_without_the_password(up: Up) -> None:
    # Given the Valkey `takt up` started, reached as redis-cli would (no password)
    anonymous = redis.Redis(host="127.0.0.1", port=up.valkey_port, socket_timeout=5)
    wrong = redis.Redis(host="127.0.0.1", port=up.valkey_port, password="guessed", socket_timeout=5)

    # Then it answers nothing but an authentication error
    with pytest.raises(redis.AuthenticationError):
        anonymous.keys("*")
    with pytest.raises(redis.AuthenticationError):
        anonymous.set("{takt}:principal:forged", "admin")
    with pytest.raises(redis.AuthenticationError):
        wrong.keys("*")

    # and the password in the data folder opens it
    owner = redis.Redis(
        host="127.0.0.1", port=up.valkey_port, password=up.valkey_password, socket_timeout=5
    )
    assert owner.ping()
    owner.close()


def test_maxmemory_comes_from_the_setting_with_noeviction(up: Up) -> None:
    # Given the owner's connection to the embedded store
    owner = redis.Redis(
        host="127.0.0.1", port=up.valkey_port, password=up.valkey_password, socket_timeout=5
    )

    # Then maxmemory is TAKT_VALKEY_MAXMEMORY, so noeviction has a limit to refuse at
    assert owner.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
    assert owner.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    owner.close()


def test_the_data_folder_and_its_files_are_the_owners_alone(up: Up) -> None:
    # Given the data folder of a running `takt up`
    valkey = up.data / "valkey"

    # Then the folder and everything in it is private: folders 0700, files 0600
    assert mode(up.data) == 0o700
    for name in ("admin-token", "valkey-password", "flower-credentials", "store-url", "takt.lock"):
        assert mode(up.data / name) == 0o600, name
    tree = [valkey, *valkey.rglob("*")]
    assert any(p.name.endswith(".aof") for p in tree), tree
    for path in tree:
        if path.is_socket():
            continue
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_nothing_printed_or_on_a_command_line_carries_a_secret(up: Up) -> None:
    # Given everything `takt up` and its children printed, and every process's command line
    _, flower_password = up.flower_login
    admin_key = (up.data / "admin-token").read_text().strip()
    secrets = {
        "valkey password": up.valkey_password,
        "flower password": flower_password,
        "admin key": admin_key,
    }
    wait_until(lambda: "Ctrl-C stops everything" in up.printed, timeout=30)
    command_lines = {
        pid: Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        for pid in descendants(up.process.pid)
        if alive(pid)
    }

    # Then no secret appears in either; the start lines say where the secrets are
    for what, secret in secrets.items():
        assert secret not in up.printed, what
        for pid, line in command_lines.items():
            assert secret not in line, (what, pid)
    assert str((up.data / "valkey-password").resolve()) in up.printed
    assert str((up.data / "flower-credentials").resolve()) in up.printed
    assert f"127.0.0.1:{up.valkey_port}" in up.printed


# --- Flower through `takt up` ---------------------------------------------------------


def test_flower_refuses_anyone_without_the_login(up: Up) -> None:
    # Given the Flower `takt up` started
    apply = f"{up.flower}/api/task/async-apply/takt.action.http"

    # When an anonymous client asks it to run a job's task, or opens its pages
    forged = httpx.post(apply, json={"args": []}, timeout=10)
    page = httpx.get(f"{up.flower}/", timeout=10)
    workers = httpx.get(f"{up.flower}/api/workers", timeout=10)
    guessed = httpx.get(f"{up.flower}/", auth=("admin", "admin"), timeout=10)

    # Then it is refused with 401
    assert forged.status_code == 401
    assert page.status_code == 401
    assert workers.status_code == 401
    assert guessed.status_code == 401

    # and the generated login opens it
    login = up.flower_login
    assert httpx.get(f"{up.flower}/", auth=login, timeout=10).status_code == 200
    wait_until(
        lambda: ok_json(f"{up.flower}/api/workers?refresh=1", login),
        timeout=60,
        message="Flower to list the worker",
    )


def test_flower_shows_no_store_password(up: Up) -> None:
    # Given a logged-in Flower that knows the worker
    login = up.flower_login
    wait_until(
        lambda: ok_json(f"{up.flower}/api/workers?refresh=1", login),
        timeout=60,
        message="Flower to list the worker",
    )

    # When its pages and API are read
    bodies = {
        path: httpx.get(f"{up.flower}{path}", auth=login, timeout=10)
        for path in ("/", "/broker", "/workers", "/api/workers?refresh=1", "/api/queues/length")
    }

    # Then none shows the Valkey password
    for path, response in bodies.items():
        assert response.status_code == 200, path
        assert up.valkey_password not in response.text, path


# --- `takt flower` alone --------------------------------------------------------------


def flower_env(redis_url: str, data: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKT_", "FLOWER_"))}
    env.update(
        {
            "TAKT_REDIS_URL": redis_url,
            "TAKT_DATA_DIR": str(data),
            "TAKT_FLOWER_PORT": str(port),
            **extra,
        }
    )
    return env


def test_takt_flower_alone_generates_a_login_and_requires_it(
    redis_url: str, tmp_path: Path
) -> None:
    # Given `takt flower` with no FLOWER_BASIC_AUTH
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "flower.log").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "flower"],
            env=flower_env(redis_url, tmp_path / "data", port),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: answers(url), timeout=60, message="Flower")

        # Then its login was generated into the data folder, for the owner only
        credentials = tmp_path / "data" / "flower-credentials"
        assert mode(credentials) == 0o600
        assert mode(tmp_path / "data") == 0o700
        user, password = credentials.read_text().strip().split(":", 1)
        assert len(password) >= 32

        # and its API refuses anyone without it
        apply = f"{url}/api/task/async-apply/takt.action.http"
        assert httpx.post(apply, json={"args": []}, timeout=10).status_code == 401
        assert httpx.get(f"{url}/api/workers", timeout=10).status_code == 401
        assert httpx.get(f"{url}/api/workers", auth=(user, password), timeout=10).status_code == 200
        printed = (tmp_path / "flower.log").read_text()
        assert str(credentials.resolve()) in printed
        assert password not in printed
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        finally:
            kill_group(process.pid)
            if process.poll() is None:
                process.kill()


def test_takt_flower_refuses_an_unauthenticated_api(redis_url: str, tmp_path: Path) -> None:
    # When `takt flower` is asked for Flower's open API
    env = flower_env(redis_url, tmp_path, free_port(), FLOWER_UNAUTHENTICATED_API="true")
    result = subprocess.run(
        [sys.executable, "-m", "scheduler", "flower"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it does not start, and says why
    assert result.returncode != 0
    assert "FLOWER_UNAUTHENTICATED_API" in result.stderr


# --- the embedded server on its own ---------------------------------------------------


def test_the_password_is_kept_so_the_data_stays_reachable(tmp_path: Path) -> None:
    # Given an embedded server that stored a key, then stopped
    server = start_embedded_server(tmp_path, maxmemory="64mb")
    client = redis.Redis.from_url(server.connection_url)
    client.set("kept", "yes")
    client.close()
    first_password = (tmp_path / "valkey-password").read_text()
    server.stop()

    # When it starts again
    server = start_embedded_server(tmp_path, maxmemory="64mb")
    try:
        # Then the same password opens the same data
        assert (tmp_path / "valkey-password").read_text() == first_password
        client = redis.Redis.from_url(server.connection_url)
        assert client.get("kept") == b"yes"
        client.close()
        # and the address printed for humans has no password in it
        assert first_password.strip() not in server.address
    finally:
        server.stop()


def test_an_older_open_data_folder_is_made_private(tmp_path: Path) -> None:
    # Given a data folder left world-readable by an earlier version
    tmp_path.chmod(0o755)
    valkey = tmp_path / "valkey"
    (valkey / "appendonlydir").mkdir(parents=True, mode=0o755)
    old = valkey / "valkey.log"
    old.write_text("an old log\n")
    old.chmod(0o644)

    # When the embedded server starts on it
    server = start_embedded_server(tmp_path, maxmemory="64mb")
    try:
        # Then the folders are 0700 and the files 0600
        assert mode(tmp_path) == 0o700
        for path in [valkey, *valkey.rglob("*")]:
            if not path.is_socket():
                assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    finally:
        server.stop()


def test_aof_files_written_after_a_rewrite_are_private(tmp_path: Path) -> None:
    # Given a running embedded server and its append-only files
    server = start_embedded_server(tmp_path, maxmemory="64mb")
    client = redis.Redis.from_url(server.connection_url)
    aof_dir = tmp_path / "valkey" / "appendonlydir"
    try:
        client.set("before", "1")
        before = {p.name for p in aof_dir.iterdir()}

        # When Valkey rewrites its AOF (new base and increment files)
        client.bgrewriteaof()
        wait_until(
            lambda: (
                {p.name for p in aof_dir.iterdir()} - before
                and not client.info("persistence")["aof_rewrite_in_progress"]
            ),
            timeout=20,
            message="the AOF rewrite",
        )
        client.set("after", "1")

        # Then the new files are the owner's alone too
        new = {p.name for p in aof_dir.iterdir()} - before
        assert new
        for path in aof_dir.iterdir():
            assert mode(path) == 0o600, path
    finally:
        client.close()
        server.stop()


def fill(client: redis.Redis, megabytes: int) -> None:
    for n in range(megabytes * 4):
        client.set(f"filler:{n}", b"x" * 256 * 1024)


def test_noeviction_refuses_a_write_past_maxmemory(tmp_path: Path) -> None:
    # Given an embedded server with a small maxmemory
    server = start_embedded_server(tmp_path, maxmemory="4mb")
    client = redis.Redis.from_url(server.connection_url)
    try:
        # When writes keep coming past it
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            fill(client, megabytes=16)

        # Then the write is refused and nothing stored was evicted to make room
        assert client.exists("filler:0")
    finally:
        client.close()
        server.stop()


@pytest.mark.parametrize("value", ["0", "0mb", "00gb"])
def test_a_maxmemory_of_zero_which_means_no_limit_is_refused(value: str) -> None:
    # When the embedded store's maxmemory is set to 0 (Valkey's "unlimited")
    # Then the settings refuse it: noeviction would never apply
    with pytest.raises(ConfigurationError, match="TAKT_VALKEY_MAXMEMORY"):
        load_settings({"TAKT_VALKEY_MAXMEMORY": value})


def test_an_emptied_password_file_is_refused_not_taken_as_no_password(tmp_path: Path) -> None:
    # Given a password file someone emptied (requirepass "" would mean no password at all)
    (tmp_path / "valkey-password").write_text("\n")

    # When the embedded server starts, then it refuses, naming the file
    with pytest.raises(ConfigurationError, match="valkey-password"):
        start_embedded_server(tmp_path, maxmemory="64mb")
