"""`takt up`: one command starts everything; Ctrl-C stops everything; jobs survive."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scheduler.settings import cores
from tests.support.arm import collection_path, get_job, history, http_job, put_job
from tests.support.helpers import ROOT, HttpTarget, free_port, wait_until
from tests.support.processes import alive, descendants
from tests.support.swagger import validating_client

pytestmark = pytest.mark.e2e


def start_up(workdir: Path, port: int, flower_port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKT_", "FLOWER_"))}
    env.update(
        {
            "TAKT_API_PORT": str(port),
            "TAKT_DATA_DIR": str(workdir / ".takt"),
            "TAKT_FLOWER_PORT": str(flower_port),
        }
    )
    with (workdir / "up.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler", "up"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


README = ROOT / "README.md"


def readme_curl_example() -> str:
    """The shell block of the README's "Calling the API" section, as written."""
    section = README.read_text().split("## Calling the API", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def flower_workers(url: str, auth: tuple[str, str]) -> set[str]:
    """The workers Flower knows (none while it is not up)."""
    try:
        response = httpx.get(url, timeout=5, auth=auth)
    except httpx.TransportError:
        return set()
    return set(response.json()) if response.status_code == 200 else set()


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A folder for ``takt up``; what the test started and left running is killed after it.

    Only processes started during the test: the session's shared Valkey and stacks are
    children of pytest too, and later tests need them."""
    before = descendants(os.getpid())
    yield tmp_path
    for pid in descendants(os.getpid()) - before:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_up_serves_runs_jobs_stops_cleanly_and_keeps_jobs(
    workdir: Path, target: HttpTarget
) -> None:
    # Given `takt up` with no Redis configured
    port, flower_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    up = start_up(workdir, port, flower_port)
    wait_until(lambda: healthy(url), timeout=30, message="takt up to be healthy")

    # Then the generated admin key sits in the data dir, readable by the owner only
    token_file = workdir / ".takt" / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    http = validating_client(
        base_url=url,
        timeout=10,
        headers={"Authorization": f"Bearer {token_file.read_text().strip()}"},
    )

    # When the README's curl example is run as written (against this test's port)
    script = readme_curl_example().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then its job ran and its history shows Completed
    assert result.returncode == 0, result.stderr
    assert '"status":"Completed"' in result.stdout, result.stdout

    # When a job is created, it runs
    collection = collection_path("persisted")
    assert (
        http.put(
            collection, params={"api-version": "2016-03-01"}, json={"location": "local"}
        ).status_code
        == 201
    )
    put_job(http, collection, "hello", http_job(f"{target.url}/hello"))
    wait_until(lambda: history(http, collection, "hello"), timeout=10)
    assert target.requests_to("/hello")

    # and Flower, alongside, knows a worker per core (behind the login generated next to
    # the key)
    login = (workdir / ".takt" / "flower-credentials").read_text().strip().split(":", 1)
    flower = f"http://127.0.0.1:{flower_port}/api/workers?refresh=1"
    workers = {f"worker-{n}@{socket.gethostname()}" for n in range(1, cores() + 1)}
    wait_until(
        lambda: workers <= flower_workers(flower, (login[0], login[1])),
        timeout=30,
        message=f"Flower to list the workers {sorted(workers)}",
    )

    # When Ctrl-C reaches takt up
    group = descendants(up.pid)
    assert len(group) >= 4 + cores()  # valkey, api, beat, a worker per core, flower
    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=30) == 0

    # Then no process of the group is left
    wait_until(
        lambda: not any(alive(pid) for pid in group), timeout=10, message="every child to exit"
    )

    # When it starts again, the job is still there
    up = start_up(workdir, port, flower_port)
    try:
        wait_until(lambda: healthy(url), timeout=30, message="takt up to be healthy again")
        job = get_job(http, collection, "hello")
        assert job["properties"]["state"] == "Completed"
        assert len(history(http, collection, "hello")) == 1
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=30)
        http.close()
