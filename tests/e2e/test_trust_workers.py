"""The worker side of trust: no silent failure, no secret in logs, nothing forged runs,
and the outbound network policy (issue 12, rows 6, 8, 9 and 11)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from scheduler.api import create_api
from scheduler.clock import to_ms
from scheduler.dispatch import publish_occurrence
from scheduler.domain.models import ActionType, JobCollection, JobErrorAction, JobProperties
from scheduler.errors import StoreError
from scheduler.service.outbound import NetworkPolicy
from scheduler.settings import TaktSettings, load_settings
from scheduler.store.jobs import JobStore
from scheduler.store.ledger import LedgerEntry
from scheduler.store.principals import ADMIN_PRINCIPAL, Role, ensure_principal_key
from tests.support.arm import (
    API_VERSION,
    collection_path,
    get_job,
    history,
    new_collection,
    put_job,
)
from tests.support.helpers import ADMIN_TOKEN, HttpTarget, wait_until
from tests.support.stack import Stack
from tests.support.swagger import validated
from workers.actions import run_action, unexpected_failure
from workers.app import create_celery_app
from workers.attempt import RunRequest
from workers.context import WorkerContext
from workers.execution import Verdict, execute
from workers.wire import Connections, Origin, RawAnswer

with warnings.catch_warnings():
    # Starlette now asks for its httpx fork; the httpx it warns about works the same here.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CID = "s/rg/trust"


# -- helpers -------------------------------------------------------------------------------


class Worker:
    """A worker context run in this process; error actions it chains are kept to run."""

    def __init__(self, settings: TaktSettings) -> None:
        self.chained: list[RunRequest] = []
        self.ctx = WorkerContext(
            settings,
            publish=lambda run, _type, _queue: self.chained.append(run),
            send_task=lambda *_: None,
        )

    def occurrence(self, jid: str, occurrence_ms: int) -> list[Verdict]:
        """Run an occurrence the way the beat hands it out (entered in the ledger first)
        and every retry the way Celery delivers them, then any chained error action."""
        self.ctx.ledger.expect(LedgerEntry(jid, occurrence_ms), self.ctx.store.time_ms())
        verdicts = self.attempts(RunRequest(jid, occurrence_ms))
        while self.chained:
            verdicts += self.attempts(self.chained.pop(0))
        return verdicts

    def attempts(self, run: RunRequest) -> list[Verdict]:
        verdicts = [execute(self.ctx, run)]
        while verdicts[-1].retry_in is not None:
            run = run if verdicts[-1].again else run.next_attempt()
            verdicts.append(execute(self.ctx, run))
        return verdicts


@pytest.fixture
def worker(settings: TaktSettings) -> Iterator[Worker]:
    running = Worker(settings)
    yield running
    running.ctx.close()


#: An ActiveDirectoryOAuth authentication of the tests' own token endpoint.
OAUTH = {
    "type": "ActiveDirectoryOAuth",
    "tenant": "t",
    "audience": "https://management.core.windows.net/",
    "clientId": "c",
    "secret": "client-secret-value",
}


def _job(action: dict[str, Any], **extra: Any) -> JobProperties:
    return JobProperties.model_validate({"action": action, **extra})


def _http(uri: str, **request: Any) -> dict[str, Any]:
    return {"type": "Http", "request": {"uri": uri, "method": "POST", **request}}


def _retried(action: dict[str, Any], count: int) -> dict[str, Any]:
    policy = {"retryType": "Fixed", "retryCount": count, "retryInterval": "PT1S"}
    return {**action, "retryPolicy": policy}


def _add(store: JobStore, name: str, properties: JobProperties) -> str:
    store.put_collection(CID, JobCollection())
    jid = f"{CID}/{name}"
    store.put_job(jid, properties, owner="admin", next_fire_ms=None)
    return jid


def _tamper(store: JobStore, jid: str, change: dict[str, Any]) -> None:
    """Rewrite the stored definition behind validation's back (as redis-cli could)."""
    definition = json.loads(str(store.redis.hget(store.keys.job(jid), "def")))
    definition["action"] = {**definition["action"], **change}
    store.redis.hset(store.keys.job(jid), "def", json.dumps(definition))


def _entries(store: JobStore, jid: str) -> list[tuple[str, str, int, str]]:
    """(actionName, status, retryCount, message) of each entry, oldest first."""
    return [
        (
            e.entry.action_name.value,
            e.entry.status.value,
            e.entry.retry_count,
            e.entry.message or "",
        )
        for e in reversed(store.history(jid))
    ]


def _owed(store: JobStore) -> list[str]:
    return [str(m) for m in store.redis.zrange(store.keys.ledger, 0, -1)]


def _with(settings: TaktSettings, **changes: Any) -> TaktSettings:
    return settings.model_copy(update=changes)


# -- row 6: no silent failure ----------------------------------------------------------------


def test_an_http_call_that_raises_fails_with_a_message_then_retries_and_runs_the_error_action(
    store: JobStore,
    worker: Worker,
    target: HttpTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a job with 2 retries and an error action, whose call to its target raises
    # something no handler expects, echoing the request's credential
    jid = _add(
        store,
        "raises",
        _job(
            {
                **_retried(_http(f"{target.url}/main"), 2),
                "errorAction": _http(f"{target.url}/alarm"),
            }
        ),
    )
    _tamper(
        store,
        jid,
        {
            "request": {
                "uri": f"{target.url}/main",
                "method": "GET",
                "headers": {"Authorization": "Bearer HEADERSECRET"},
            }
        },
    )
    send = Connections.exchange

    def explode(connections: Connections, origin: Origin, request: bytes, **kw: Any) -> RawAnswer:
        if request.startswith(b"GET /main "):
            head = request.split(b"\r\n\r\n", 1)[0].decode()
            authorization = head.split("Authorization: ", 1)[1].split("\r\n", 1)[0]
            raise RuntimeError(f"codec broke on {authorization}")
        return send(connections, origin, request, **kw)

    monkeypatch.setattr(Connections, "exchange", explode)

    # When its occurrence runs
    worker.occurrence(jid, 1_000)

    # Then every attempt is a Failed entry that says why, the retries ran, then the error
    # action, and nothing is owed any more
    entries = _entries(store, jid)
    assert [e[:3] for e in entries] == [
        ("MainAction", "Failed", 0),
        ("MainAction", "Failed", 1),
        ("MainAction", "Failed", 2),
        ("ErrorAction", "Completed", 0),
    ]
    assert entries[0][3].startswith("Http Action - RuntimeError: codec broke on ")
    assert all("Traceback" not in e[3] and "HEADERSECRET" not in e[3] for e in entries)
    assert len(target.requests_to("/alarm")) == 1
    assert _owed(store) == []


def test_a_stored_header_http_cannot_send_is_a_failed_attempt_naming_the_field(
    store: JobStore, worker: Worker, target: HttpTarget
) -> None:
    # Given a job whose stored header value was given a character outside ASCII behind
    # validation's back, next to a credential
    jid = _add(store, "header", _job(_http(f"{target.url}/main")))
    headers = {"X-Name": "Zo\u00eb", "Authorization": "Bearer HEADERSECRET"}
    _tamper(
        store, jid, {"request": {"uri": f"{target.url}/main", "method": "GET", "headers": headers}}
    )

    # When its occurrence runs
    worker.occurrence(jid, 1_000)

    # Then the attempt is a Failed entry naming the field, nothing was sent, and no
    # secret is in the message
    [(name, status, retry, message)] = _entries(store, jid)
    assert (name, status, retry) == ("MainAction", "Failed", 0)
    assert "properties.action.request.headers" in message
    assert "HEADERSECRET" not in message
    assert target.received == []
    assert _owed(store) == []


def test_a_stored_uri_with_a_tab_and_crlf_is_a_failed_attempt_naming_the_field(
    store: JobStore, worker: Worker, target: HttpTarget
) -> None:
    # Given a job whose stored URI was given a tab and a CRLF behind validation's back,
    # and a secret in its query
    jid = _add(store, "tab", _job(_http(f"{target.url}/main")))
    bad = f"{target.url}/ma\tin?sig=SIGSECRET\r\nX-Evil: 1"
    _tamper(store, jid, {"request": {"uri": bad, "method": "GET"}})

    # When its occurrence runs
    verdicts = worker.occurrence(jid, 1_000)

    # Then the attempt is a Failed entry naming the field, nothing was sent, nothing is
    # owed any more, and no secret is in the message
    assert [v.word for v in verdicts] == ["failed"]
    [(name, status, retry, message)] = _entries(store, jid)
    assert (name, status, retry) == ("MainAction", "Failed", 0)
    assert "properties.action.request.uri" in message
    assert "SIGSECRET" not in message
    assert target.received == []
    assert _owed(store) == []
    assert store.redis.hget(store.keys.job(jid), "faultedCount") == "1"


def test_a_command_action_that_raises_is_a_failed_attempt_with_retries_and_error_action(
    store: JobStore, worker: Worker, target: HttpTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Command job with one retry whose command raises something unexpected
    def explode(*_: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("workers.actions.run_command_line", explode)
    jid = _add(
        store,
        "cmd",
        _job(
            {
                **_retried({"type": "Command", "command": "VerifyStore"}, 1),
                "errorAction": _http(f"{target.url}/alarm"),
            }
        ),
    )

    # When its occurrence runs
    worker.occurrence(jid, 1_000)

    # Then both attempts are Failed entries naming the error, and the error action ran
    entries = _entries(store, jid)
    assert [e[:3] for e in entries] == [
        ("MainAction", "Failed", 0),
        ("MainAction", "Failed", 1),
        ("ErrorAction", "Completed", 0),
    ]
    assert "RuntimeError: disk on fire" in entries[0][3]
    assert len(target.requests_to("/alarm")) == 1


def test_import_jobs_from_a_path_that_cannot_be_read_is_a_failed_attempt(
    store: JobStore, worker: Worker
) -> None:
    # Given a Command job importing from a file that does not exist
    jid = _add(
        store,
        "import",
        _job({"type": "Command", "command": "ImportJobs --from no/such/file.json"}),
    )

    # When it runs
    worker.occurrence(jid, 1_000)

    # Then its attempt is a Failed entry with a message
    [(name, status, _, message)] = _entries(store, jid)
    assert (name, status) == ("MainAction", "Failed")
    assert message.startswith("Command Action - ")


def test_a_store_error_while_recording_leaves_the_attempt_owed(
    store: JobStore, worker: Worker, target: HttpTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job, and a store that fails when the attempt is recorded
    jid = _add(store, "lost", _job(_http(f"{target.url}/ok")))

    def away(*_: Any) -> None:
        raise StoreError("job store: connection refused")

    monkeypatch.setattr(JobStore, "record_attempt", away)

    # When its occurrence runs, the store error reaches the task (which retries it)
    with pytest.raises(StoreError):
        worker.occurrence(jid, 1_000)

    # Then the attempt is still owed, for the beat to deliver again
    assert _owed(store) == [LedgerEntry(jid, 1_000).member]


# -- row 8: no secret in any log line --------------------------------------------------------


def test_no_log_line_at_any_level_carries_a_uri_or_header_secret(
    settings: TaktSettings, store: JobStore, target: HttpTarget, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker of the real Celery app, an Http job with secrets in its query and its
    # Authorization header, and a StorageQueue job with a SAS token
    app = create_celery_app(_with(settings, storage_queue_endpoint=f"{target.url}/{{account}}"))
    http_jid = _add(
        store,
        "keyed",
        _job(
            _http(
                f"{target.url}/hook?sig=SIGSECRET&code=CODESECRET&plain=1",
                headers={"Authorization": "Bearer HEADERSECRET"},
            )
        ),
    )
    queue_jid = _add(
        store,
        "queued",
        _job(
            {
                "type": "StorageQueue",
                "queueMessage": {
                    "storageAccount": "acct",
                    "queueName": "jobs",
                    "sasToken": "?sv=2021&sig=SASSECRET",
                    "message": "hi",
                },
            }
        ),
    )
    target.answer("/acct/jobs/messages", 201)
    for name in ("", "httpx", "httpcore", "workers", "scheduler", "celery"):
        caplog.set_level(logging.DEBUG, logger=name or None)

    # When both run
    try:
        for jid in (http_jid, queue_jid):
            app.context.ledger.expect(LedgerEntry(jid, 1_000), store.time_ms())
            execute(app.context, RunRequest(jid, 1_000))
    finally:
        app.context.close()

    # Then both requests were sent, and no log line holds any of the secrets
    assert target.requests_to("/hook?sig=SIGSECRET&code=CODESECRET&plain=1")
    assert target.requests_to("/acct/jobs/messages?sv=2021&sig=SASSECRET")
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in ("SIGSECRET", "CODESECRET", "HEADERSECRET", "SASSECRET"):
        assert secret not in text


# -- row 9: a forged task runs nothing -----------------------------------------------------


def test_an_attempt_the_ledger_does_not_owe_runs_nothing(
    store: JobStore, worker: Worker, target: HttpTarget
) -> None:
    # Given a job scheduled for 2030
    future_ms = to_ms(datetime(2030, 1, 1, tzinfo=UTC))
    action = {**_http(f"{target.url}/later"), "errorAction": _http(f"{target.url}/later")}
    jid = _add(store, "later", _job(action))
    store.set_job_state(jid, store.get_job(jid).state, future_ms)
    before = store.get_job(jid).properties.status

    # When task messages nobody handed out arrive: the occurrence, a retry, its error action
    verdicts = [
        execute(worker.ctx, RunRequest(jid, future_ms)),
        execute(worker.ctx, RunRequest(jid, future_ms, attempt=3)),
        execute(worker.ctx, RunRequest(jid, future_ms, error=True)),
        execute(worker.ctx, RunRequest(jid, future_ms, manual=True)),
    ]

    # Then nothing ran, nothing was recorded, and the job is as it was
    assert [v.word for v in verdicts] == ["not-owed"] * 4
    assert target.requests_to("/later") == []
    assert store.history(jid) == []
    after = store.get_job(jid)
    assert (after.state.value, after.properties.status) == ("Enabled", before)

    # And an attempt that is owed runs
    worker.occurrence(jid, future_ms)
    assert [e[:2] for e in _entries(store, jid)] == [("MainAction", "Completed")]


def test_the_lease_is_refused_without_a_ledger_entry_in_the_same_round_trip(
    store: JobStore,
) -> None:
    # Given a job with one owed attempt
    jid = _add(store, "leased", _job(_http("http://127.0.0.1:9/x")))
    owed = LedgerEntry(jid, 5)
    store.redis.zadd(store.keys.ledger, {owed.member: 1})

    # Then only the owed attempt gets a lease
    assert store.acquire_lease(jid, 5, "m0", 60_000, owed.member).taken
    forged = LedgerEntry(jid, 5, attempt=1)
    lease = store.acquire_lease(jid, 5, "m1", 60_000, forged.member)
    assert (lease.taken, lease.done, lease.owed) == (False, False, False)
    assert store.redis.exists(store.keys.lease(jid, 5, "m1")) == 0


@pytest.mark.e2e
def test_a_task_forged_into_the_broker_runs_nothing_on_a_real_worker(
    stack: Stack, target: HttpTarget
) -> None:
    # Given a job scheduled for 2030
    collection = new_collection(stack.http)
    later = datetime(2030, 6, 1, tzinfo=UTC)
    body = {
        "properties": {
            "startTime": later.isoformat(),
            "action": {"type": "Http", "request": {"uri": f"{target.url}/2030", "method": "GET"}},
        }
    }
    put_job(stack.http, collection, "later", body)
    before = get_job(stack.http, collection, "later")["properties"]
    jid = f"{_jid_of(collection)}/later"

    # When a task message for it is published straight into the broker (as Flower's
    # async-apply does), by the real Celery app
    settings = load_settings(
        {}, redis_url=stack.env["TAKT_REDIS_URL"], key_prefix=stack.prefix, admin_token="x"
    )
    app = create_celery_app(settings)
    publish_occurrence(app, stack.prefix, jid, to_ms(later), ActionType.HTTP)
    wait_until(
        lambda: f"{jid}@{to_ms(later)} is not owed" in (stack.log_dir / "worker.log").read_text(),
        timeout=10,
        message="the worker to drop the forged task",
    )

    # Then nothing ran, no history, the job's state and next run are unchanged
    assert target.requests_to("/2030") == []
    assert history(stack.http, collection, "later") == []
    after = get_job(stack.http, collection, "later")["properties"]
    assert (after["state"], after["status"]) == (before["state"], before["status"])

    # And a legitimate run still works
    ran = stack.http.post(f"{collection}/jobs/later/run", params=API_VERSION)
    assert ran.status_code == 200, ran.text
    wait_until(lambda: history(stack.http, collection, "later"), timeout=10, message="the run")
    assert len(target.requests_to("/2030")) == 1

    # And the worker's log has no httpx request line (they carry full URLs, row 8)
    assert "HTTP Request:" not in (stack.log_dir / "worker.log").read_text()


def _jid_of(collection: str) -> str:
    """The store's job id prefix of an ARM collection path (sub/rg/name)."""
    parts = collection.strip("/").split("/")
    return f"{parts[1]}/{parts[3]}/{parts[-1]}"


# -- jobs share no cookies (issue 15) ---------------------------------------------------------


class CookieSetter:
    """A real HTTP server that answers every request with ``Set-Cookie: session=stolen``
    (a token to the token path, 201 to a queue's messages), recording each request's
    ``Cookie`` headers by path."""

    def __init__(self) -> None:
        self.cookies: dict[str, list[list[str]]] = {}
        self.lock = threading.Lock()
        setter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                with setter.lock:
                    setter.cookies.setdefault(path, []).append(self.headers.get_all("Cookie", []))
                status, body = 200, b"ok"
                if path.endswith("/oauth2/token"):
                    body = b'{"access_token": "token", "expires_in": "3600"}'
                elif path.endswith("/messages"):
                    status = 201
                self.send_response(status)
                self.send_header("Set-Cookie", "session=stolen; Path=/; Max-Age=3600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def cookies_to(self, path: str) -> list[list[str]]:
        with self.lock:
            return list(self.cookies.get(path, []))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cookie_setter() -> Iterator[CookieSetter]:
    server = CookieSetter()
    try:
        yield server
    finally:
        server.close()


def _add_owned(store: JobStore, cid: str, owner: str, properties: JobProperties) -> str:
    store.put_collection(cid, JobCollection())
    jid = f"{cid}/job"
    store.put_job(jid, properties, owner=owner, next_fire_ms=None)
    return jid


def _planting(kind: str, url: str) -> dict[str, Any]:
    """The first tenant's action, whose answers from ``url``'s host set a cookie."""
    if kind == "http":
        return _http(f"{url}/plant", method="GET")
    if kind == "token":
        # The token endpoint plants it; the action itself goes to another host name.
        oauth = {**OAUTH}
        port = url.rsplit(":", 1)[1]
        return _http(f"http://localhost:{port}/plant", method="GET", authentication=oauth)
    return {
        "type": "StorageQueue",
        "queueMessage": {
            "storageAccount": "acct",
            "queueName": "jobs",
            "sasToken": "sv=1&sig=x",
            "message": "m",
        },
    }


@pytest.mark.parametrize("kind", ["http", "token", "storage-queue"])
def test_a_cookie_one_jobs_endpoint_sets_never_reaches_another_jobs_request(
    settings: TaktSettings, store: JobStore, cookie_setter: CookieSetter, kind: str
) -> None:
    # Given a worker, and a tenant's job whose calls are answered with a Set-Cookie
    url = cookie_setter.url
    worker = Worker(
        _with(settings, oauth_authority=url, storage_queue_endpoint=f"{url}/{{account}}")
    )
    planter = _add_owned(store, "s/rg/alice", "alice", _job(_planting(kind, url)))
    # And another tenant's job calling the same host
    victim = _add_owned(store, "s/rg/bob", "bob", _job(_http(f"{url}/victim", method="GET")))

    # When the first job runs, then the other one, then the first one's next occurrence
    try:
        worker.occurrence(planter, 1_000)
        worker.occurrence(victim, 1_000)
        worker.occurrence(planter, 2_000)
    finally:
        worker.ctx.close()

    # Then every call was answered, and no request carried a cookie
    for jid in (planter, victim):
        assert [e[1] for e in _entries(store, jid)] == ["Completed"] * (1 + (jid == planter))
    assert cookie_setter.cookies_to("/victim") == [[]]
    assert all(sent == [] for calls in cookie_setter.cookies.values() for sent in calls)


def test_a_jobs_own_cookie_header_is_sent_as_written_and_to_that_job_only(
    settings: TaktSettings, store: JobStore, cookie_setter: CookieSetter
) -> None:
    # Given a job whose definition holds a Cookie header, and another tenant's job
    url = cookie_setter.url
    worker = Worker(settings)
    own = _add_owned(
        store, "s/rg/alice", "alice", _job(_http(f"{url}/own", headers={"Cookie": "mine=1"}))
    )
    other = _add_owned(store, "s/rg/bob", "bob", _job(_http(f"{url}/other", method="GET")))

    # When both run twice, in turn
    try:
        for occurrence_ms in (1_000, 2_000):
            worker.occurrence(own, occurrence_ms)
            worker.occurrence(other, occurrence_ms)
    finally:
        worker.ctx.close()

    # Then the job sent exactly its own cookie each time, and the other job none
    assert cookie_setter.cookies_to("/own") == [["mine=1"], ["mine=1"]]
    assert cookie_setter.cookies_to("/other") == [[], []]


# -- row 11: the outbound policy -------------------------------------------------------------


@pytest.fixture
def api(settings: TaktSettings, store: JobStore) -> Iterator[TestClient]:
    guarded = _with(settings, action_allow_networks="127.0.0.0/8,10.0.0.0/8")
    with validated(TestClient(create_api(guarded, store, runner=lambda *_: None))) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


@pytest.mark.parametrize(
    ("where", "uri", "network"),
    [
        ("action", "http://169.254.169.254/latest/meta-data/", "169.254.0.0/16"),
        ("action", "http://[fe80::1]/x", "fe80::/10"),
        ("action", "http://[fd00:ec2::254]/x", "fd00:ec2::254"),
        ("action", "http://[::ffff:169.254.169.254]/x", "169.254.0.0/16"),
        ("errorAction", "https://169.254.169.254/x", "169.254.0.0/16"),
        ("action", "http://192.168.1.1/x", "TAKT_ACTION_ALLOW_NETWORKS"),
    ],
    ids=["metadata", "link-local-v6", "ec2-v6", "v4-mapped", "error-action", "not-allowed"],
)
def test_a_literal_address_outside_the_policy_is_refused_at_write_time(
    api: TestClient, store: JobStore, where: str, uri: str, network: str
) -> None:
    # Given a collection, and a policy allowing only 127.0.0.0/8 and 10.0.0.0/8
    collection = collection_path(f"out-{uuid.uuid4().hex[:8]}")
    assert api.put(collection, params=API_VERSION, json={"location": "x"}).status_code == 201
    action: dict[str, Any] = {
        "type": "Http",
        "request": {"uri": "http://10.0.0.1/", "method": "GET"},
    }
    field = "properties.action.request.uri"
    if where == "errorAction":
        action["errorAction"] = {"type": "Http", "request": {"uri": uri, "method": "GET"}}
        field = "properties.action.errorAction.request.uri"
    else:
        action["request"]["uri"] = uri

    # When a job aims at the address
    answer = api.put(
        f"{collection}/jobs/j", params=API_VERSION, json={"properties": {"action": action}}
    )

    # Then it is refused with a 400 naming the field and the network, and nothing is stored
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith(field)
    assert network in message
    assert store.redis.exists(store.keys.job(f"{_jid_of(collection)}/j")) == 0


def test_a_name_resolving_into_a_denied_network_is_refused_at_connect_time(
    settings: TaktSettings, store: JobStore, target: HttpTarget
) -> None:
    # Given a policy denying loopback, and a job aimed at localhost with one retry
    worker = Worker(_with(settings, action_deny_networks="127.0.0.0/8,::1/128"))
    port = target.url.rsplit(":", 1)[1]
    jid = _add(store, "local", _job(_retried(_http(f"http://localhost:{port}/in"), 1)))

    # When it runs
    try:
        worker.occurrence(jid, 1_000)
    finally:
        worker.ctx.close()

    # Then both attempts are Failed entries naming the policy, and nothing reached the target
    entries = _entries(store, jid)
    assert [e[:3] for e in entries] == [("MainAction", "Failed", 0), ("MainAction", "Failed", 1)]
    assert "Refused by TAKT_ACTION_DENY_NETWORKS" in entries[0][3]
    assert "127.0.0.0/8" in entries[0][3] or "::1/128" in entries[0][3]
    assert target.requests_to("/in") == []


def test_the_allow_list_excludes_every_other_network(
    settings: TaktSettings, store: JobStore, target: HttpTarget
) -> None:
    # Given a policy allowing only 10.0.0.0/8
    worker = Worker(_with(settings, action_allow_networks="10.0.0.0/8"))
    jid = _add(store, "outside", _job(_http(f"{target.url}/in")))

    # When a job aimed at 127.0.0.1 runs
    try:
        worker.occurrence(jid, 1_000)
    finally:
        worker.ctx.close()

    # Then it is refused by the allow list
    [(_, status, _, message)] = _entries(store, jid)
    assert status == "Failed"
    assert "Refused by TAKT_ACTION_ALLOW_NETWORKS: 127.0.0.1 is outside 10.0.0.0/8" in message
    assert target.requests_to("/in") == []


def test_token_and_storage_queue_calls_obey_the_policy(
    settings: TaktSettings, store: JobStore, target: HttpTarget
) -> None:
    # Given a policy denying loopback, a token authority and a queue endpoint on localhost
    port = target.url.rsplit(":", 1)[1]
    worker = Worker(
        _with(
            settings,
            action_deny_networks="127.0.0.0/8,::1/128",
            oauth_authority=f"http://localhost:{port}",
            storage_queue_endpoint=f"http://localhost:{port}/{{account}}",
        )
    )
    oauth = {**OAUTH}
    allowed = "http://10.255.255.1/never"  # allowed, but the token call is refused first
    token_jid = _add(store, "token", _job(_http(allowed, authentication=oauth)))
    queue_jid = _add(
        store,
        "queue",
        _job(
            {
                "type": "StorageQueue",
                "queueMessage": {
                    "storageAccount": "acct",
                    "queueName": "jobs",
                    "sasToken": "sv=1&sig=x",
                    "message": "m",
                },
            }
        ),
    )

    # When both run
    try:
        worker.occurrence(token_jid, 1_000)
        worker.occurrence(queue_jid, 1_000)
    finally:
        worker.ctx.close()

    # Then both are Failed entries naming the policy, and the target saw nothing
    for jid in (token_jid, queue_jid):
        [(_, status, _, message)] = _entries(store, jid)
        assert status == "Failed"
        assert "Refused by TAKT_ACTION_DENY_NETWORKS" in message
    assert target.received == []


def test_a_name_is_resolved_once_and_the_checked_address_is_the_one_connected(
    settings: TaktSettings,
    store: JobStore,
    target: HttpTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a name whose DNS answer changes after the first look-up (rebinding) to a
    # denied address where nothing listens
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "127.0.0.9", "127.0.0.9"])

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return real(next(answers), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    worker = Worker(_with(settings, action_deny_networks="127.0.0.9/32"))
    port = target.url.rsplit(":", 1)[1]
    jid = _add(store, "rebind", _job(_http(f"http://rebind.test:{port}/in")))

    # When it runs
    try:
        worker.occurrence(jid, 1_000)
    finally:
        worker.ctx.close()

    # Then the request went to the address that was checked, with the name as its Host
    [(_, status, _, message)] = _entries(store, jid)
    assert status == "Completed", message
    [received] = target.requests_to("/in")
    assert received.headers["Host"] == f"rebind.test:{port}"


def test_default_settings_reach_loopback_and_never_follow_redirects(
    store: JobStore, worker: Worker, target: HttpTarget
) -> None:
    # Given the default policy and a target that redirects to the metadata address
    target.answer("/moved", 302, b"")
    jid = _add(store, "plain", _job(_http(f"{target.url}/moved")))

    # When it runs
    worker.occurrence(jid, 1_000)

    # Then 127.0.0.1 was reached, and the redirect was not followed
    [(_, status, _, message)] = _entries(store, jid)
    assert status == "Failed"
    assert "'302'" in message
    assert len(target.requests_to("/moved")) == 1
    assert worker.ctx.http.follow_redirects is False


def test_import_jobs_applies_the_deployments_outbound_policy(
    settings: TaktSettings, store: JobStore
) -> None:
    # Given a deployment denying 10.0.0.0/8, and an export file with a job aimed there
    guarded = _with(settings, action_deny_networks="10.0.0.0/8")
    ensure_principal_key(store, ADMIN_PRINCIPAL, Role.ADMIN, ADMIN_TOKEN)
    folder = guarded.data_dir / "exchange"
    folder.mkdir(mode=0o700)
    job = {"startTime": "2030-01-01T00:00:00Z", "action": _http("http://10.1.2.3/hook")}
    document = {"collection": CID, "jobs": [{"name": "inside", "properties": job}]}
    (folder / "in.json").write_text(json.dumps(document))
    worker = Worker(guarded)

    # When a Command job imports it
    try:
        outcome = run_action(
            worker.ctx,
            JobErrorAction(type=ActionType.COMMAND, command="ImportJobs --from in.json"),
            f"{CID}/cmd",
            0,
            "m0",
        )
    finally:
        worker.ctx.close()

    # Then the import is refused naming the field and the setting, and nothing is stored
    assert not outcome.succeeded
    assert "jobs[0].properties.action.request.uri: " in outcome.message
    assert "Refused by TAKT_ACTION_DENY_NETWORKS: 10.1.2.3 is in 10.0.0.0/8" in outcome.message
    assert store.job_names(CID) == []


def test_an_exception_echoing_a_credential_leaves_it_out_of_the_message() -> None:
    # Given an action with credentials in its header, its URI and its Basic password
    action = JobErrorAction.model_validate(
        _http(
            "http://user:URIPASSWORD@example.test/p?sig=SIGSECRET&page=2",
            headers={"Authorization": "Bearer TOKENSECRET"},
            authentication={"type": "Basic", "username": "u", "password": "BASICSECRET"},
        )
    )
    # And an exception that echoes them all (as h11 does with an illegal header value)
    exc = RuntimeError(
        "Illegal header value b'Bearer TOKENSECRET' for BASICSECRET\n"
        "at http://user:URIPASSWORD@example.test/p?sig=SIGSECRET&page=2"
    )

    # When it becomes the attempt's message
    message = unexpected_failure(action, exc)

    # Then it says what happened, on one line, without any of them
    assert message.startswith("Http Action - RuntimeError: Illegal header value")
    assert "\n" not in message
    assert "example.test/p" in message
    for secret in ("TOKENSECRET", "BASICSECRET", "URIPASSWORD", "SIGSECRET"):
        assert secret not in message


def test_the_policy_of_a_service_built_without_settings_is_the_default_one(
    settings: TaktSettings,
) -> None:
    assert NetworkPolicy.default() == NetworkPolicy.from_settings(settings)
