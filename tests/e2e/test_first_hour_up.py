"""`takt up` in a newcomer's first hour (issue 13, items 2-6 and Flower's cap of 15): it owns
its data folder, checks ports and the store before it starts anything and says what to
change in one line, announces its URLs once the API is healthy, keeps tracebacks whole,
restarts what dies (the embedded Valkey first), lets every `takt` command find its store,
and caps Flower's memory.
"""

from __future__ import annotations

import os
import re
import signal
import socket
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
from scheduler.cli.supervision import Backoff, ChildRole, Process
from scheduler.data_folder import STORE_URL_FILE, FolderLock
from scheduler.errors import ConfigurationError, FolderInUse
from scheduler.settings import load_settings
from tests.support.arm import API_VERSION, collection_path, history, http_job, put_job
from tests.support.helpers import HttpTarget, free_port, wait_until
from tests.support.processes import alive, descendants
from tests.support.swagger import validating_client

pytestmark = pytest.mark.e2e

FLOWER_CAP = 123
ANNOUNCED = "takt: API and console at"


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any TAKT_/FLOWER_ variable, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKT_", "FLOWER_"))}
    return env | {"PYTHONUNBUFFERED": "1"} | settings


def takt(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """Run a `takt` command to its end; its exit status and everything it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout


def start_up(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / "up.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "up"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, log


def stop_up(process: subprocess.Popen[bytes]) -> None:
    group = descendants(process.pid)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    finally:
        for pid in group | descendants(process.pid):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def answers_ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@dataclass
class Up:
    """The module's running `takt up`."""

    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    api: str
    healthy_when_announced: bool

    @property
    def data(self) -> Path:
        return self.workdir / ".takt"

    @property
    def printed(self) -> str:
        return self.log.read_text(errors="replace")

    def child(self, word: str) -> int | None:
        """The pid of the live child whose command line holds ``word``."""
        found = [
            pid for pid in descendants(self.process.pid) if word in cmdline(pid) and alive(pid)
        ]
        return found[0] if found else None

    def wait_for_child(self, word: str, other_than: int | None = None) -> int:
        """The pid of the child whose command line holds ``word``, once there is one (and
        it is not ``other_than``)."""

        def new() -> int:
            found = self.child(word)
            return found if found is not None and found != other_than else 0

        return wait_until(new, timeout=30, message=f"a {word.strip()} process")

    @property
    def valkey_port(self) -> int:
        found = re.search(r"embedded Valkey at 127\.0\.0\.1:(\d+)", self.printed)
        assert found, self.printed
        return int(found.group(1))

    def http(self) -> httpx.Client:
        token = (self.data / "admin-token").read_text().strip()
        return validating_client(
            base_url=self.api, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    workdir = tmp_path_factory.mktemp("first-hour")
    port = free_port()
    env = clean_env(
        TAKT_API_PORT=str(port),
        TAKT_FLOWER_PORT=str(free_port()),
        TAKT_FLOWER_MAX_TASKS=str(FLOWER_CAP),
    )
    process, log = start_up(workdir, env)
    api = f"http://127.0.0.1:{port}"
    try:
        # The moment the URLs are printed, the API must answer.
        wait_until(lambda: ANNOUNCED in log.read_text(), timeout=60, message="the URLs")
        healthy = answers(f"{api}/healthz")
        yield Up(process, workdir, log, api, healthy)
    finally:
        stop_up(process)


# --- item 3: announce once healthy ------------------------------------------------------


def test_the_urls_are_announced_once_the_api_answers(up: Up) -> None:
    # Given `takt up` starting; when it prints "API and console at", then /healthz answers
    assert up.healthy_when_announced, up.printed


# --- item 2: one `takt up` per data folder ---------------------------------------------


def test_a_second_up_on_the_same_folder_says_already_running_and_starts_nothing(
    up: Up,
) -> None:
    # Given a running `takt up`, and its Valkey
    valkeys = {pid for pid in descendants(up.process.pid) if "valkey-server" in cmdline(pid)}

    # When a second one starts on the same folder (other ports, so nothing else stops it)
    env = clean_env(TAKT_API_PORT=str(free_port()), TAKT_FLOWER_PORT=str(free_port()))
    code, printed = takt("up", env=env, cwd=up.workdir, timeout=30)

    # Then it stops at once with one line naming the first one, and started no Valkey
    assert code == 1
    assert printed == f"takt: already running (pid {up.process.pid})\n"
    assert {p for p in descendants(up.process.pid) if "valkey-server" in cmdline(p)} == valkeys
    assert int((up.data / "takt.lock").read_text()) == up.process.pid


def test_a_valkey_left_running_by_a_killed_up_is_stopped_before_another_starts(
    tmp_path: Path,
) -> None:
    # Given the embedded Valkey of a `takt up` that was killed (SIGKILL: it could not stop
    # its server), with a key written
    left = start_embedded_server(tmp_path, maxmemory="64mb")
    try:
        redis.Redis(**left.connection_kwargs).set("kept", "yes")

        # When the next `takt up` starts its server on the same folder
        again = start_embedded_server(tmp_path, maxmemory="64mb")
        try:
            # Then the one left over was stopped (its AOF written out), not run beside it
            assert left.exit_code() is not None
            assert redis.Redis(**again.connection_kwargs).get("kept") == b"yes"
        finally:
            again.stop()
    finally:
        left.stop()


def test_the_lock_is_held_in_process_too(tmp_path: Path) -> None:
    # Given a folder held by a lock; when it is taken again, then FolderInUse names the pid
    lock = FolderLock.take(tmp_path)
    try:
        with pytest.raises(FolderInUse, match=rf"already running \(pid {os.getpid()}\)"):
            FolderLock.take(tmp_path)
    finally:
        lock.release()
    # and once released it can be taken again
    FolderLock.take(tmp_path).release()


# --- item 6: every command finds the embedded store ------------------------------------


def test_takt_manage_finds_the_embedded_store_without_takt_redis_url(up: Up) -> None:
    # Given `takt up` with an embedded store: its URL (with the password) sits in the folder
    store_url = up.data / STORE_URL_FILE
    assert stat.S_IMODE(store_url.stat().st_mode) == 0o600
    assert f"127.0.0.1:{up.valkey_port}" in store_url.read_text()

    # When the README's `takt manage VerifyStore` runs from the same folder, no TAKT_REDIS_URL
    code, printed = takt("manage", "VerifyStore", env=clean_env(), cwd=up.workdir)

    # Then it reaches the store
    assert code == 0, printed
    assert "TAKT_REDIS_URL" not in printed


def test_a_store_url_is_used_only_while_its_takt_up_holds_the_folder(tmp_path: Path) -> None:
    # Given a store-url file in a folder
    lock = FolderLock.take(tmp_path)
    lock.publish_store_url("redis://:pw@127.0.0.1:1/0")
    settings = load_settings({"TAKT_DATA_DIR": str(tmp_path)})

    # While a `takt up` holds the folder, the settings find the store there
    assert settings.store_url == "redis://:pw@127.0.0.1:1/0"

    # When that `takt up` is gone and left the file behind (killed), it is stale: ignored
    lock.release()
    (tmp_path / STORE_URL_FILE).write_text("redis://:pw@127.0.0.1:1/0\n")
    with pytest.raises(ConfigurationError, match="TAKT_REDIS_URL is not set"):
        _ = settings.store_url


# --- item 15: Flower's memory is capped ------------------------------------------------


def test_flower_runs_with_the_task_cap_of_the_setting(up: Up) -> None:
    # Given `takt up` with TAKT_FLOWER_MAX_TASKS; then its Flower runs with that cap
    flower = up.wait_for_child(" flower")
    assert f"--max_tasks={FLOWER_CAP}" in cmdline(flower)


def test_the_flower_cap_is_modest_by_default() -> None:
    assert load_settings({}).flower_max_tasks == 10_000


# --- item 5: what dies is restarted -----------------------------------------------------


def test_restart_delays_double_up_to_a_cap_and_reset_after_a_stable_run() -> None:
    backoff = Backoff()
    assert [backoff.delay_s(ran_s=0.5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay_s(ran_s=120) == 1
    assert backoff.delay_s(ran_s=0.5) == 2


@pytest.mark.parametrize("optional", [True, False], ids=["flower", "core-role"])
def test_a_failing_child_is_restarted_with_backoff_and_only_an_optional_one_given_up(
    optional: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a child that fails at once, every time
    role = ChildRole("flower", [sys.executable, "-c", "raise SystemExit(3)"], {}, optional)
    child = Process(role, dict(os.environ))
    now = 0.0
    child.start(now)

    # When the supervisor tends it through five ends in a row
    for _ in range(5):
        assert child.popen is not None
        child.popen.wait()
        now += 0.1
        child.tend(now)  # notices the end
        if child.given_up:
            break
        assert child.restart_at is not None
        now = child.restart_at
        child.tend(now)  # starts it again

    # Then each restart waited twice as long; Flower alone is then left stopped, with a
    # warning, while a core role is started again
    printed = capsys.readouterr().err
    for delay in ("1", "2", "4", "8"):
        assert f"flower exited with 3; restarting it in {delay} s" in printed
    assert child.given_up is optional
    assert ("leaving it stopped" in printed) is optional
    if child.popen is not None:
        child.popen.wait()


def run_a_job(up: Up, target: HttpTarget, name: str) -> None:
    """A job created now runs: the API, the beat and the worker all reach the store."""
    collection = collection_path(f"first-hour-{name}")
    with up.http() as http:
        created = http.put(collection, params=API_VERSION, json={"location": "local"})
        assert created.status_code in (200, 201), created.text
        put_job(http, collection, name, http_job(f"{target.url}/{name}"))
        wait_until(lambda: history(http, collection, name), timeout=30, message="the run")
    assert target.requests_to(f"/{name}")


def test_a_killed_valkey_comes_back_on_its_port_and_jobs_run_again(
    up: Up, target: HttpTarget
) -> None:
    # Given the embedded Valkey of a running `takt up`
    port, password = up.valkey_port, (up.data / "valkey-password").read_text().strip()
    first = up.wait_for_child("valkey-server")

    # When it is killed
    os.kill(first, signal.SIGKILL)

    # Then another one answers on the same port with the same password
    up.wait_for_child("valkey-server", other_than=first)
    again = redis.Redis(port=port, password=password, socket_timeout=1)
    wait_until(lambda: answers_ping(again), timeout=20, message="Valkey to answer")
    assert "restarting it in 1 s" in up.printed
    # and the API, the beat and the worker reconnect: a job created now runs
    wait_until(lambda: answers(f"{up.api}/healthz"), timeout=20, message="a healthy API")
    run_a_job(up, target, "after-valkey")


def test_a_killed_worker_is_restarted(up: Up, target: HttpTarget) -> None:
    # Given the worker of a running `takt up`
    first = up.wait_for_child(" worker")

    # When it is killed, then another one starts and runs jobs
    os.kill(first, signal.SIGKILL)
    up.wait_for_child(" worker", other_than=first)
    run_a_job(up, target, "after-worker")
    assert up.process.poll() is None


# --- items 3 and 4: checks before anything starts --------------------------------------


def test_a_taken_api_port_is_one_line_naming_the_setting(tmp_path: Path, listening: int) -> None:
    # Given the API's port taken by something else
    env = clean_env(TAKT_API_PORT=str(listening), TAKT_FLOWER_PORT=str(free_port()))

    # When `takt up` starts
    code, printed = takt("up", env=env, cwd=tmp_path, timeout=30)

    # Then one line says which setting to change, and nothing was started
    assert code == 2
    assert printed == f"takt: port {listening} is in use; set TAKT_API_PORT\n"
    assert not (tmp_path / ".takt" / "valkey").exists()


def test_a_store_that_does_not_answer_is_one_line_without_its_password(tmp_path: Path) -> None:
    # Given TAKT_REDIS_URL pointing at nothing
    dead = free_port()
    env = clean_env(
        TAKT_REDIS_URL=f"redis://:hunter2@127.0.0.1:{dead}/0",
        TAKT_API_PORT=str(free_port()),
        TAKT_FLOWER_PORT=str(free_port()),
    )
    line = (
        f"takt: the store at redis://127.0.0.1:{dead}/0 does not answer (Connection refused); "
        "check TAKT_REDIS_URL\n"
    )

    # When `takt up` starts, and `takt api` alone, then each prints that one line
    for command in ("up", "api"):
        code, printed = takt(command, env=env, cwd=tmp_path, timeout=30)
        assert (code, printed) == (2, line), command


def test_flower_port_taken_is_a_warning_and_the_scheduler_runs_on(
    tmp_path: Path, listening: int
) -> None:
    # Given Flower's port taken by something else
    port = free_port()
    env = clean_env(TAKT_API_PORT=str(port), TAKT_FLOWER_PORT=str(listening))

    # When `takt up` starts
    process, log = start_up(tmp_path, env)
    try:
        # Then it says why Flower is left out, and serves the API anyway
        wait_until(lambda: ANNOUNCED in log.read_text(), timeout=60, message="the URLs")
        printed = log.read_text()
        assert (
            f"takt: warning: Flower does not start: port {listening} is in use; "
            "set TAKT_FLOWER_PORT" in printed
        )
        assert "Flower at" not in printed
        assert answers(f"http://127.0.0.1:{port}/healthz")
        assert process.poll() is None
        running = " ".join(cmdline(pid) for pid in descendants(process.pid))
        assert " beat" in running
        assert " worker" in running
        assert " flower" not in running
    finally:
        stop_up(process)


# --- item 3: tracebacks stay whole ------------------------------------------------------


def test_a_crashing_beat_prints_a_whole_traceback_not_one_character_per_line(
    tmp_path: Path,
) -> None:
    # Given a beat whose store does not answer: it fails once Celery has set up its logging
    env = clean_env(TAKT_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")

    # When it runs
    code, printed = takt("beat", env=env, cwd=tmp_path)

    # Then its traceback reads as one, and no log line carries a lone character
    assert code != 0
    assert "Traceback (most recent call last):" in printed
    assert re.search(r"^  File \".*\", line \d+, in ", printed, re.MULTILINE), printed
    assert re.search(r"^[\w.]+Error: .*Connection refused", printed, re.MULTILINE), printed
    lone = [line for line in printed.splitlines() if re.search(r"/MainProcess\] .?$", line)]
    assert not lone, lone[:5]
