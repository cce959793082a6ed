"""Secrets are write-only, everywhere (issue 12, row 1): the secret rule, tried as an attacker.

A reader who could read a job's ``Authorization: Bearer <admin key>`` header would become an
administrator. These tests put every kind of credential the rule names into a job, in its
action and its error action, then read the job back through every read path with a reader's
key; they send what was read back (GET-modify-PUT, PATCH, classic PUT, the console's form),
check that the stored values (what a worker sends) are kept, and try to carry a kept secret
to another host.

Most tests run the API in-process (uvicorn in a thread, over the session's Valkey, no
worker); the last ones use the session stack (API, beat, worker as processes) and a real HTTP
target.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import uvicorn
from azure.mgmt.scheduler.models import (
    BasicAuthentication,
    HttpRequest,
    JobAction,
)

from scheduler.api.app import create_api
from scheduler.client import SchedulerClient
from scheduler.dispatch.routing import route_for
from scheduler.domain import credentials
from scheduler.domain.credentials import (
    MASK,
    is_secret_header,
    keep_stored,
    mask_uri,
    redact,
    secret_values,
)
from scheduler.domain.models import ActionType
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.errors import ValidationFailed
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore
from tests.e2e.test_azure_sdk import daily_job, make_client
from tests.e2e.test_cli import Takt
from tests.support.arm import API_VERSION, collection_path
from tests.support.helpers import ADMIN_TOKEN, HttpTarget, free_port, wait_until
from tests.support.stack import Stack
from tests.support.swagger import ValidatingTransport, validating_client

# -- the credentials ------------------------------------------------------------------------

URI_PASSWORD = "uri-password-51d2"
FUNCTION_CODE = "function-code-88aa"
SAS_SIGNATURE = "sas-signature-0c1f"
API_KEY = "api-key-7f3a9c"
BASIC_PASSWORD = "basic-password-4e9b"
ERROR_URI_PASSWORD = "error-uri-password-93b1"
ERROR_TOKEN = "error-token-d07e"
ERROR_PROXY = "error-proxy-credential-5a11"
ERROR_SIGNATURE = "error-webhook-signature-2c44"
SAS_TOKEN = "sv=2019-02-02&sig=queue-sas-signature-71ee"

#: Every credential of :func:`secret_job`; none may appear in any read.
SECRETS = (
    ADMIN_TOKEN,
    URI_PASSWORD,
    FUNCTION_CODE,
    SAS_SIGNATURE,
    API_KEY,
    BASIC_PASSWORD,
    ERROR_URI_PASSWORD,
    ERROR_TOKEN,
    ERROR_PROXY,
    ERROR_SIGNATURE,
)

SUB, RG = "sub1", "rg1"


def secret_job() -> dict[str, Any]:
    """A job holding every kind of credential, in its action and its error action."""
    return {
        "properties": {
            "startTime": "2030-01-07T10:00:00Z",
            "action": {
                "type": "Http",
                "request": {
                    "uri": (
                        f"http://hook:{URI_PASSWORD}@127.0.0.1:9/hook"
                        f"?code={FUNCTION_CODE}&Sig={SAS_SIGNATURE}&page=2"
                    ),
                    "method": "POST",
                    "headers": {
                        "Authorization": f"Bearer {ADMIN_TOKEN}",
                        "x-api-key": API_KEY,
                        "Content-Type": "application/json",
                    },
                    "body": "{}",
                    "authentication": {
                        "type": "Basic",
                        "username": "hook",
                        "password": BASIC_PASSWORD,
                    },
                },
                "retryPolicy": {"retryType": "None"},
                "errorAction": {
                    "type": "Http",
                    "request": {
                        "uri": (
                            f"http://alert:{ERROR_URI_PASSWORD}@127.0.0.1:9/alert"
                            f"?access_token={ERROR_TOKEN}"
                        ),
                        "method": "POST",
                        "headers": {
                            "Proxy-Authorization": ERROR_PROXY,
                            "X-Webhook-Signature": ERROR_SIGNATURE,
                        },
                    },
                },
            },
        }
    }


def queue_job(account: str = "devstoreaccount1") -> dict[str, Any]:
    return {
        "properties": {
            "startTime": "2030-01-07T10:00:00Z",
            "action": {
                "type": "StorageQueue",
                "queueMessage": {
                    "storageAccount": account,
                    "queueName": "orders",
                    "sasToken": SAS_TOKEN,
                    "message": "do it",
                },
            },
        }
    }


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


# -- the rule (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        pytest.param("https://h.example/p?x=1", "https://h.example/p?x=1", id="nothing"),
        pytest.param("https://u:pw@h.example/", f"https://u:{MASK}@h.example/", id="password"),
        pytest.param("https://tok@h.example/", f"https://{MASK}@h.example/", id="bare-user"),
        pytest.param("https://u:@h.example/", "https://u:@h.example/", id="empty-password"),
        pytest.param(
            "https://h.example/api?code=abc==&name=x&SIG=s%2Fg#top",
            f"https://h.example/api?code={MASK}&name=x&SIG={MASK}#top",
            id="query-any-case-fragment-kept",
        ),
        pytest.param(
            "https://h.example/?key=1&key=2&api%5Fkey=3&token=",
            f"https://h.example/?key={MASK}&key={MASK}&api%5Fkey={MASK}&token=",
            id="repeated-encoded-empty",
        ),
        pytest.param(
            "https://h.example/a@b?keyword=x", "https://h.example/a@b?keyword=x", id="at-in-path"
        ),
    ],
)
def test_uris_show_the_mask_in_place_of_credentials(uri: str, shown: str) -> None:
    assert mask_uri(uri) == shown


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("proxy-authorization", True),
        ("Cookie", True),
        ("X-Api-Key", True),
        ("Ocp-Apim-Subscription-Key", True),
        ("X-Auth-Token", True),
        ("X-Hub-Signature-256", True),
        ("X-Client-Secret", True),
        ("X-Password", True),
        ("Content-Type", False),
        ("Accept", False),
        ("X-Request-Id", False),
    ],
)
def test_header_names_that_hold_credentials(name: str, secret: bool) -> None:
    assert is_secret_header(name) is secret


def test_a_repeated_query_parameter_keeps_each_stored_value_in_order() -> None:
    stored = {"request": {"uri": "https://h.example/?key=one&x=1&key=two"}}
    sent = {"request": {"uri": f"https://h.example/?key={MASK}&x=2&key={MASK}"}}

    assert keep_stored(sent, stored)

    assert sent["request"]["uri"] == "https://h.example/?key=one&x=2&key=two"


def test_a_bare_user_info_is_kept_whole() -> None:
    stored = {"request": {"uri": "https://ghp_token@h.example/repo"}}
    sent = {"request": {"uri": f"https://{MASK}@h.example/other"}}

    assert keep_stored(sent, stored)

    assert sent["request"]["uri"] == "https://ghp_token@h.example/other"


def test_another_kind_of_authentication_keeps_nothing_of_the_old_one() -> None:
    stored = {"authentication": {"type": "Basic", "username": "u", "password": "pw"}}
    sent = {"authentication": {"type": "ClientCertificate", "pfx": MASK}}

    with pytest.raises(ValidationFailed, match=r"^properties\.authentication\.pfx: holds the mask"):
        keep_stored(sent, stored)


def test_echoed_credentials_are_redacted_in_every_form_a_worker_sends_them() -> None:
    job = secret_job()["properties"]
    basic = base64.b64encode(f"hook:{BASIC_PASSWORD}".encode()).decode()
    text = f"echo {ADMIN_TOKEN} Basic {basic} {FUNCTION_CODE} {ERROR_TOKEN} ok"

    shown = redact(text, secret_values(job))

    assert shown == f"echo {MASK} Basic {MASK} {MASK} {MASK} ok"


def test_the_public_names_are_sorted() -> None:
    assert credentials.__all__ == sorted(credentials.__all__)


# -- the in-process API ---------------------------------------------------------------------


class Api:
    """The API in-process, an administrator's client, a reader's key, one collection."""

    def __init__(self, base_url: str, client: httpx.Client, store: JobStore) -> None:
        self.base_url = base_url
        self.client = client
        self.store = store
        answer = client.post("/principals", json={"name": "auditor", "role": "reader"})
        assert answer.status_code == 201, answer.text
        self.reader_key: str = answer.json()["key"]
        self.reader = {"Authorization": f"Bearer {self.reader_key}"}
        self.collection = f"coll-{uuid.uuid4().hex[:8]}"
        self.arm = collection_path(self.collection, SUB, RG)
        self.classic = (
            f"/{SUB}/cloudservices/{RG}/resources/scheduler/~/jobcollections/{self.collection}"
        )
        self.console = f"/console/c/{SUB}/{RG}/{self.collection}"
        created = client.put(self.arm, params=API_VERSION, json={"location": "local"})
        assert created.status_code == 201, created.text

    def put(self, name: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.put(f"{self.arm}/jobs/{name}", params=API_VERSION, json=body)

    def get(self, name: str) -> dict[str, Any]:
        answer = self.client.get(f"{self.arm}/jobs/{name}", params=API_VERSION)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def stored(self, name: str) -> dict[str, Any]:
        """The job as the worker loads it: from the store, secrets and all."""
        jid = JobRef(CollectionRef(SUB, RG, self.collection), name).jid
        wire: dict[str, Any] = self.store.get_job(jid).properties.to_wire()
        wire.pop("status", None)
        return wire

    @contextmanager
    def browser(self, key: str) -> Iterator[httpx.Client]:
        """A console session for ``key``, as a browser holds it (a cookie)."""
        with signed_in(self.base_url, key) as browser:
            yield browser


@contextmanager
def signed_in(base_url: str, key: str) -> Iterator[httpx.Client]:
    with validating_client(base_url=base_url, timeout=10) as browser:
        answer = browser.post(
            "/console/signin",
            data={"key": key},
            headers={"Origin": base_url},
            follow_redirects=True,
        )
        assert answer.status_code == 200, answer.text
        assert "Job collections" in answer.text
        yield browser


@pytest.fixture
def api(settings: TaktSettings, store: JobStore) -> Iterator[Api]:
    port = free_port()
    config = uvicorn.Config(
        create_api(settings, store), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="secrets-api", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=15, message="the API to start")
        base_url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with validating_client(base_url=base_url, headers=headers, timeout=10) as client:
            yield Api(base_url, client, store)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _read(api: Api, path: str, **params: str) -> str:
    answer = api.client.get(path, params=params, headers=api.reader)
    assert answer.status_code == 200, answer.text
    return answer.text


def _console(api: Api, path: str) -> str:
    with api.browser(api.reader_key) as browser:
        answer = browser.get(path)
    assert answer.status_code == 200, answer.text
    return answer.text


READ_PATHS = {
    "arm-get": lambda api: _read(api, f"{api.arm}/jobs/j", **API_VERSION),
    "arm-list": lambda api: _read(api, f"{api.arm}/jobs", **API_VERSION),
    "classic-get": lambda api: _read(api, f"{api.classic}/jobs/j"),
    "classic-list": lambda api: _read(api, f"{api.classic}/jobs"),
    "console-jobs-page": lambda api: _console(api, api.console + "?job=j"),
    "console-properties-page": lambda api: _console(api, api.console + "/jobs/j"),
}


@pytest.mark.parametrize("path", list(READ_PATHS))
def test_a_reader_reads_no_credential(api: Api, path: str) -> None:
    # Given a job holding an admin key, URI passwords, query codes, keys and signatures
    created = api.put("j", secret_job())
    assert created.status_code == 201, created.text

    # When a reader reads it
    text = READ_PATHS[path](api)

    # Then no credential is in the answer, but the job is (masked)
    assert leaked(text) == []
    assert "127.0.0.1:9/hook" in text
    assert MASK in text


def test_the_client_and_the_cli_of_a_reader_show_no_credential(api: Api) -> None:
    # Given a job with credentials
    api.put("j", secret_job())

    # When a reader reads it with the Python client and with every job command of the CLI
    with SchedulerClient(
        api.base_url,
        api.reader_key,
        subscription=SUB,
        resource_group=RG,
        transport=ValidatingTransport(),
    ) as client:
        job = client.get_job(api.collection, "j")
        listed = client.list_jobs(api.collection)
    flags = {"--url": api.base_url, "--key": api.reader_key, "--subscription": SUB}
    takt = Takt([*(item for pair in flags.items() for item in pair), "--resource-group", RG])
    outputs = [
        takt("jobs", "show", api.collection, "j").output,
        takt("jobs", "show", api.collection, "j", "--json").output,
        takt("jobs", "list", api.collection).output,
        takt("jobs", "list", api.collection, "--json").output,
    ]

    # Then none holds a credential
    for text in (repr(job), repr(listed), json.dumps(job.to_wire()), *outputs):
        assert leaked(text) == []
    assert job.properties.action.request is not None
    assert job.properties.action.request.headers == {
        "Authorization": MASK,
        "x-api-key": MASK,
        "Content-Type": "application/json",
    }


def test_no_write_answer_and_no_admin_read_returns_a_credential(api: Api) -> None:
    # Given an administrator creating, replacing and patching a job with credentials
    created = api.put("j", secret_job())
    replaced = api.put("j", secret_job())
    patched = api.client.patch(
        f"{api.arm}/jobs/j", params=API_VERSION, json={"properties": {"displayName": "x"}}
    )
    read = api.client.get(f"{api.arm}/jobs/j", params=API_VERSION)

    # Then no answer, not even the administrator's, holds a credential
    for answer in (created, replaced, patched, read):
        assert answer.status_code in (200, 201), answer.text
        assert leaked(answer.text) == []


def test_reads_show_the_mask_in_place_of_each_credential(api: Api) -> None:
    api.put("j", secret_job())

    action = api.get("j")["properties"]["action"]

    request = action["request"]
    assert request["uri"] == f"http://hook:{MASK}@127.0.0.1:9/hook?code={MASK}&Sig={MASK}&page=2"
    assert request["headers"] == {
        "Authorization": MASK,
        "x-api-key": MASK,
        "Content-Type": "application/json",
    }
    # Azure's spec: the typed secret fields' "return value will always be empty"
    assert request["authentication"] == {"type": "Basic", "username": "hook", "password": ""}
    error = action["errorAction"]["request"]
    assert error["uri"] == f"http://alert:{MASK}@127.0.0.1:9/alert?access_token={MASK}"
    assert error["headers"] == {"Proxy-Authorization": MASK, "X-Webhook-Signature": MASK}


def test_a_queue_message_sas_token_reads_empty(api: Api) -> None:
    api.put("q", queue_job())

    message = api.get("q")["properties"]["action"]["queueMessage"]

    assert message["sasToken"] == ""
    assert api.stored("q")["action"]["queueMessage"]["sasToken"] == SAS_TOKEN


# -- writes that send the mask back ---------------------------------------------------------


def test_get_modify_put_keeps_every_stored_secret(api: Api) -> None:
    # Given a job with credentials, read back (masked) and changed
    api.put("j", secret_job())
    before = api.stored("j")
    read = api.get("j")
    read["properties"]["displayName"] = "renamed"
    read["properties"]["action"]["request"]["headers"]["X-Extra"] = "1"
    read["properties"].pop("status")

    # When the masked job is PUT back
    answer = api.put("j", read)

    # Then the store (what the worker sends) holds the real credentials
    assert answer.status_code == 200, answer.text
    after = api.stored("j")
    assert after["displayName"] == "renamed"
    assert after["action"]["request"]["headers"] == {
        **before["action"]["request"]["headers"],
        "X-Extra": "1",
    }
    assert after["action"]["request"]["uri"] == before["action"]["request"]["uri"]
    assert after["action"]["request"]["authentication"]["password"] == BASIC_PASSWORD
    assert after["action"]["errorAction"] == before["action"]["errorAction"]


def test_a_patch_that_sends_the_masked_action_back_keeps_the_secrets(api: Api) -> None:
    api.put("j", secret_job())
    before = api.stored("j")
    action = api.get("j")["properties"]["action"]
    action["request"]["method"] = "PUT"

    answer = api.client.patch(
        f"{api.arm}/jobs/j", params=API_VERSION, json={"properties": {"action": action}}
    )

    assert answer.status_code == 200, answer.text
    after = api.stored("j")["action"]
    assert after["request"]["method"] == "PUT"
    after["request"]["method"] = "POST"
    assert after == before["action"]


def test_a_classic_put_of_the_job_as_read_keeps_the_secrets(api: Api) -> None:
    api.put("j", secret_job())
    before = api.stored("j")
    flat = api.client.get(f"{api.classic}/jobs/j").json()
    flat["displayName"] = "classic"

    answer = api.client.put(f"{api.classic}/jobs/j", json=flat)

    assert answer.status_code == 200, answer.text
    assert leaked(answer.text) == []
    after = api.stored("j")
    assert after["displayName"] == "classic"
    assert after["action"] == before["action"]


def test_a_queue_message_sent_back_with_the_empty_sas_token_keeps_it(api: Api) -> None:
    api.put("q", queue_job())
    read = api.get("q")
    read["properties"].pop("status")
    read["properties"]["action"]["queueMessage"]["message"] = "do it again"

    answer = api.put("q", read)

    assert answer.status_code == 200, answer.text
    message = api.stored("q")["action"]["queueMessage"]
    assert (message["sasToken"], message["message"]) == (SAS_TOKEN, "do it again")


class _Form(HTMLParser):
    """The fields a browser would submit from the page's job form."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, list[str]] = {}
        self._in_form = False
        self._textarea: str | None = None
        self._select: str | None = None
        self._option: dict[str, str | None] | None = None
        self._first_option: dict[str, str] = {}
        self._chosen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "form" and attr.get("id") == "job-form":
            self._in_form = True
        if not self._in_form:
            return
        name = attr.get("name")
        if tag == "input" and name:
            kind = attr.get("type") or "text"
            if kind not in ("radio", "checkbox") or "checked" in attr:
                self.fields.setdefault(name, []).append(attr.get("value") or "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = [""]
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select:
            self._option = attr

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea][-1] += data
        if self._select and self._option is not None:
            value = self._option.get("value")
            value = data.strip() if value is None else value
            self._first_option.setdefault(self._select, value)
            if "selected" in self._option:
                self.fields[self._select] = [value]
                self._chosen.add(self._select)
            self._option = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select" and self._select:
            if self._select not in self._chosen and self._select in self._first_option:
                self.fields[self._select] = [self._first_option[self._select]]
            self._select = None


def _form_of(html: str) -> dict[str, list[str]]:
    parser = _Form()
    parser.feed(html)
    return parser.fields


@pytest.mark.parametrize("mode", ["fields", "json"])
def test_the_console_form_saved_as_shown_keeps_the_secrets(api: Api, mode: str) -> None:
    # Given an administrator's console session on the properties of a job with credentials
    api.put("j", secret_job())
    before = api.stored("j")
    with api.browser(ADMIN_TOKEN) as browser:
        page = browser.get(f"{api.console}/jobs/j")
        assert leaked(page.text) == []
        form = _form_of(page.text)

        # When the form is saved as the browser would send it, with a new display name
        form["displayName"] = ["from the console"]
        form["mode"] = [mode]
        if mode == "json":
            document = json.loads(form["jobJson"][0])
            document["displayName"] = "from the console"
            form["jobJson"] = [json.dumps(document)]
        saved = browser.post(f"{api.console}/jobs/j", data=form)

    # Then it is saved, and the store still holds every real credential
    assert saved.status_code == 303, saved.text
    after = api.stored("j")
    assert after["displayName"] == "from the console"
    assert after["action"]["request"]["uri"] == before["action"]["request"]["uri"]
    assert after["action"]["request"]["headers"] == before["action"]["request"]["headers"]
    assert (
        after["action"]["request"]["authentication"]
        == (before["action"]["request"]["authentication"])
    )
    error, stored_error = after["action"]["errorAction"], before["action"]["errorAction"]
    assert error["request"]["uri"] == stored_error["request"]["uri"]
    assert error["request"]["headers"] == stored_error["request"]["headers"]


# -- a kept secret never goes to another place ----------------------------------------------


def _to_new_host(read: dict[str, Any]) -> None:
    """Masked headers kept, the request sent to another host."""
    request = read["action"]["request"]
    request["uri"] = "http://collector.example/steal"
    request.pop("authentication")


def _masked_uri_to_new_host(read: dict[str, Any]) -> None:
    request = read["action"]["request"]
    request["uri"] = request["uri"].replace("127.0.0.1:9", "collector.example")
    request["headers"] = {"Content-Type": "application/json"}
    request.pop("authentication")


def _empty_password_to_new_host(read: dict[str, Any]) -> None:
    request = read["action"]["request"]
    request["uri"] = "http://collector.example/steal"
    request["headers"] = {}


def _to_new_port(read: dict[str, Any]) -> None:
    request = read["action"]["request"]
    request["uri"] = request["uri"].replace("127.0.0.1:9", "127.0.0.1:8080")


def _error_action_to_new_host(read: dict[str, Any]) -> None:
    error = read["action"]["errorAction"]["request"]
    error["uri"] = "https://collector.example/steal"
    read["action"]["errorAction"]["type"] = "Https"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(_to_new_host, "properties.action.request.headers", id="header"),
        pytest.param(_masked_uri_to_new_host, "properties.action.request.uri", id="uri"),
        pytest.param(
            _empty_password_to_new_host,
            "properties.action.request.authentication.password",
            id="basic-password",
        ),
        pytest.param(_to_new_port, "properties.action.request", id="port"),
        pytest.param(
            _error_action_to_new_host, "properties.action.errorAction.request", id="error-action"
        ),
    ],
)
def test_a_masked_secret_sent_to_another_host_is_refused(api: Api, change: Any, field: str) -> None:
    # Given a job with credentials, read back masked by an administrator who does not know them
    api.put("j", secret_job())
    before = api.stored("j")
    read = api.get("j")["properties"]
    read.pop("status")

    # When the masks are sent back with the request aimed elsewhere
    change(read)
    answer = api.put("j", {"properties": read})

    # Then it is refused, naming the field, and nothing changed
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["message"].startswith(field), error
    assert "host" in error["message"]
    assert api.stored("j") == before


def test_a_patch_that_moves_the_request_to_another_host_is_refused(api: Api) -> None:
    # Given a job with credentials
    api.put("j", secret_job())
    before = api.stored("j")

    # When a patch names only a new URI, on another host (the credentials it does not name
    # would follow it there)
    answer = api.client.patch(
        f"{api.arm}/jobs/j",
        params=API_VERSION,
        json={"properties": {"action": {"request": {"uri": "http://collector.example/x"}}}},
    )

    # Then it is refused, naming a credential that would have gone along, and nothing changed
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"].startswith("properties.action.request.")
    assert api.stored("j") == before


def test_a_patch_on_the_same_host_keeps_the_credentials(api: Api) -> None:
    api.put("j", secret_job())
    before = api.stored("j")["action"]

    answer = api.client.patch(
        f"{api.arm}/jobs/j",
        params=API_VERSION,
        json={"properties": {"action": {"request": {"headers": {"X-Extra": "1"}}}}},
    )

    assert answer.status_code == 200, answer.text
    after = api.stored("j")["action"]
    assert after["request"]["headers"].pop("X-Extra") == "1"
    assert after == before


def test_an_empty_sas_token_for_another_storage_account_is_refused(api: Api) -> None:
    api.put("q", queue_job())
    before = api.stored("q")
    read = api.get("q")["properties"]
    read.pop("status")
    read["action"]["queueMessage"]["storageAccount"] = "attackeraccount"

    answer = api.put("q", {"properties": read})

    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("properties.action.queueMessage.sasToken"), message
    assert api.stored("q") == before


def test_a_mask_with_no_stored_value_is_refused(api: Api) -> None:
    # Given a job copied from another one's read (masks and all) under a new name
    api.put("j", secret_job())
    copied = api.get("j")["properties"]
    copied.pop("status")

    # When it is created
    answer = api.put("copy", {"properties": copied})

    # Then it is refused: the mask is not a credential, and there is none to keep
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"].startswith("properties.action.request")
    assert MASK in answer.json()["error"]["message"]


def test_the_secrets_can_still_be_replaced_and_removed(api: Api) -> None:
    api.put("j", secret_job())
    read = api.get("j")["properties"]
    read.pop("status")
    request = read["action"]["request"]
    request["headers"]["Authorization"] = "Bearer rotated"
    request["headers"].pop("x-api-key")
    request["uri"] = "http://127.0.0.1:9/hook?code=rotated&page=2"
    request["authentication"]["password"] = "rotated-password"

    answer = api.put("j", {"properties": read})

    assert answer.status_code == 200, answer.text
    after = api.stored("j")["action"]["request"]
    assert after["uri"] == "http://127.0.0.1:9/hook?code=rotated&page=2"
    assert after["headers"] == {
        "Authorization": "Bearer rotated",
        "Content-Type": "application/json",
    }
    assert after["authentication"]["password"] == "rotated-password"


# -- task messages ---------------------------------------------------------------------------


def test_a_published_task_message_carries_no_secret(
    api: Api, settings: TaktSettings, store: JobStore
) -> None:
    # Given a job with credentials in a deployment no worker serves
    api.put("j", secret_job())
    queue = route_for(ActionType.HTTP).queue(settings.key_prefix)

    # When it is run by hand (the API publishes a task on the broker)
    answer = api.client.post(f"{api.arm}/jobs/j/run", params=API_VERSION)
    assert answer.status_code == 200, answer.text

    # Then the task message (what Flower shows) names the job and holds no credential
    messages = wait_until(lambda: store.redis.lrange(queue, 0, -1), message="the task message")
    raw = "".join(messages)
    body = "".join(base64.b64decode(json.loads(m)["body"]).decode() for m in messages)
    assert "/jobs/j" in body or f"{api.collection}/j" in body
    assert leaked(raw + body) == []
    store.redis.delete(queue)


# -- the whole stack: what the target receives, what history shows ---------------------------


@pytest.mark.e2e
def test_a_round_tripped_job_sends_the_real_credentials_and_nothing_echoes_them(
    stack: Stack, target: HttpTarget
) -> None:
    # Given a job whose target echoes the credentials it receives into the history
    http = stack.http
    arm = collection_path(f"coll-{uuid.uuid4().hex[:8]}", SUB, RG)
    assert http.put(arm, params=API_VERSION, json={"location": "local"}).status_code == 201
    path = f"/hook?code={FUNCTION_CODE}&sig={SAS_SIGNATURE}"
    target.answer(path, 500, f"echo: Bearer {ADMIN_TOKEN} {API_KEY} {FUNCTION_CODE}".encode())
    job = secret_job()
    request = job["properties"]["action"]["request"]
    request["uri"] = target.url + path
    del request["authentication"]
    job["properties"]["action"]["errorAction"] = {
        "type": "Http",
        "request": {"uri": f"{target.url}/alert", "method": "POST"},
    }
    created = http.put(f"{arm}/jobs/echo", params=API_VERSION, json=job)
    assert created.status_code == 201, created.text
    reader = http.post("/principals", json={"name": f"r-{uuid.uuid4().hex[:6]}", "role": "reader"})
    reader_headers = {"Authorization": f"Bearer {reader.json()['key']}"}
    try:
        # When an administrator round-trips it (GET, change, PUT) and runs it
        read = http.get(f"{arm}/jobs/echo", params=API_VERSION).json()
        read["properties"].pop("status")
        read["properties"]["displayName"] = "round-tripped"
        replaced = http.put(f"{arm}/jobs/echo", params=API_VERSION, json=read)
        assert replaced.status_code == 200, replaced.text
        assert http.post(f"{arm}/jobs/echo/run", params=API_VERSION).status_code == 200

        # Then the target received the real credentials
        received = wait_until(lambda: target.requests_to(path), timeout=15, message="the call")
        headers = {k.lower(): v for k, v in received[0].headers.items()}
        assert headers["authorization"] == f"Bearer {ADMIN_TOKEN}"
        assert headers["x-api-key"] == API_KEY

        # and the error action (another receiver) is told what failed, without the credentials
        alert = wait_until(lambda: target.requests_to("/alert"), timeout=15, message="the alert")
        told = {k.lower(): v for k, v in alert[0].headers.items()}["x-takt-failure-message"]
        assert leaked(told) == []
        assert f"echo: {MASK} {MASK} {MASK}" in told

        # and the history, read by a reader, shows what the target echoed, masked
        entries = wait_until(
            lambda: http.get(f"{arm}/jobs/echo/history", params=API_VERSION).json()["value"],
            timeout=15,
            message="the history entry",
        )
        answer = http.get(f"{arm}/jobs/echo/history", params=API_VERSION, headers=reader_headers)
        assert answer.status_code == 200, answer.text
        assert leaked(answer.text) == []
        assert f"echo: {MASK} {MASK} {MASK}" in answer.text
        classic = http.get(
            f"/{SUB}/cloudservices/{RG}/resources/scheduler/~/jobcollections/"
            f"{arm.rsplit('/', 1)[1]}/jobs/echo/history",
            headers=reader_headers,
        )
        assert classic.status_code == 200, classic.text
        assert leaked(classic.text) == []
        entry = entries[0]["id"].rsplit("/", 1)[1]
        console = arm.split("/")
        base = f"/console/c/{console[2]}/{console[4]}/{console[8]}/jobs/echo/results"
        with signed_in(stack.api_url, reader.json()["key"]) as browser:
            for page in (base, f"{base}/{entry}"):
                shown = browser.get(page)
                assert shown.status_code == 200, shown.text
                assert leaked(shown.text) == []
    finally:
        http.delete(f"/principals/{reader.json()['name']}")


@pytest.mark.e2e
def test_the_azure_sdk_get_modify_update_keeps_the_secrets(stack: Stack) -> None:
    # Given a job created with Microsoft's SDK, with a password and a key header
    client = make_client(stack, f"sub-{uuid.uuid4().hex[:10]}")
    name = f"coll-{uuid.uuid4().hex[:8]}"
    client.job_collections.create_or_update(RG, name, {"location": "local"})
    request = HttpRequest(
        uri=f"http://127.0.0.1:9/hook?code={FUNCTION_CODE}",
        method="POST",
        headers={"x-api-key": API_KEY},
        authentication=BasicAuthentication(username="user", password=BASIC_PASSWORD),
    )
    client.jobs.create_or_update(
        RG, name, "web", daily_job(JobAction(type="Http", request=request))
    )
    store = JobStore.from_url(stack.env["TAKT_REDIS_URL"], stack.prefix)
    jid = JobRef(CollectionRef(client._config.subscription_id, RG, name), "web").jid
    try:
        # When the job is read with the SDK (masked), changed and updated
        job = client.jobs.get(RG, name, "web")
        assert job.properties.action.request.authentication.password == ""
        assert job.properties.action.request.headers == {"x-api-key": MASK}
        job.properties.action.request.method = "PUT"
        job.properties.status = None
        client.jobs.create_or_update(RG, name, "web", job)

        # Then the stored job (what the worker sends) still holds the real credentials
        stored = store.get_job(jid).properties.action.request
        assert stored is not None
        assert stored.authentication is not None
        assert stored.method == "PUT"
        assert stored.authentication.password == BASIC_PASSWORD
        assert stored.headers == {"x-api-key": API_KEY}
        assert stored.uri == f"http://127.0.0.1:9/hook?code={FUNCTION_CODE}"
    finally:
        store.close()
        client.close()
