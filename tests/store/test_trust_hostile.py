"""Hostile input against every write path: refused with a 4xx, the store left as it was.

One table of hostile inputs (body sizes, JSON depth, values that overflow later, control
characters, names, owners, targets, wrong JSON types) crossed with every way a job, a
collection or a principal gets written: the ARM API (PUT and PATCH of a job and of a
collection), the classic API (PUT, POST and PATCH of a job, PUT of a collection), adding
a principal, the console's new-job, save-job and change-owner forms, the Python client,
and the ImportJobs management command. Each case asserts that

- the write is refused with a 4xx (never a 2xx, never a 5xx); the API answers with an ARM
  error body ``{"error": {"code", "message"}}``, the console with its form and the
  message, the client and ImportJobs with a Takt exception;
- the message names the field, where there is one to name;
- the store is unchanged: every key under the deployment's prefix, type and value, is
  the same after the attempt as before it (and is put back if it is not, so that one
  accepted case cannot decide the next one).

The API runs in this process (uvicorn in a thread, over a real Valkey, no worker, no
beat), so the body limit is met on a real socket and nothing else writes to the store.
``test_the_valid_job_is_accepted_on_every_path`` proves that each path writes the job the
hostile cases start from, so that a refusal is about the hostile part, not the rest.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import redis
import uvicorn

from scheduler.api import create_api
from scheduler.client import SchedulerClient
from scheduler.console.forms import form_values
from scheduler.domain.models import ActionType
from scheduler.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    TaktError,
    ValidationFailed,
)
from scheduler.service.management import run_command_line
from scheduler.settings import TaktSettings, load_settings
from scheduler.store.jobs import JobStore
from tests.support.arm import API_VERSION
from tests.support.helpers import ADMIN_TOKEN, free_port, wait_until
from tests.support.swagger import ValidatingTransport, validating_client

SUB, RG, COLL = "sub1", "rg1", "hostile"
SEED = "seed"  # the job PATCH and the console's save form change
VICTIM = "victim"  # the job PUT and the new-job form would create
READER = "hostile-reader"
MiB = 1024 * 1024

_ARM_COLLECTIONS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Scheduler"
_ARM_COLLECTION = f"{_ARM_COLLECTIONS}/jobCollections/{COLL}"
_CLASSIC = f"/{SUB}/cloudservices/{RG}/resources/scheduler"
_CLASSIC_JOBS = f"{_CLASSIC}/~/jobcollections/{COLL}/jobs"
_CONSOLE = f"/console/c/{SUB}/{RG}/{COLL}"


# -- the valid job every case starts from ------------------------------------------------------


def valid_properties() -> dict[str, Any]:
    return {
        "startTime": "2099-01-01T00:00:00Z",
        "action": {
            "type": "Http",
            "request": {"uri": "http://example.test/hook", "method": "POST", "body": "{}"},
            "retryPolicy": {"retryType": "None"},
        },
        "recurrence": {"frequency": "Day", "interval": 1},
    }


def nested(depth: int) -> Any:
    """A list ``depth`` levels deep: ``[[[...]]]``."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# -- the hostile inputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    """One hostile input; the paths it applies to follow from what it carries.

    Attributes:
        id: The case's name in the test id.
        fields: The message must contain one of these (case-insensitive); empty: no field
            to name (a body too large or not JSON at all).
        properties: Turns a valid job's properties (wire form) into the hostile ones.
        raw: An HTTP body sent as it is (JSON content type) on the API paths.
        form: Console form fields over a valid job's form (form mode, not JSON).
        job_name / collection_name: A name to create a job (or a principal) or a
            collection under.
        import_text: An ImportJobs file as it is.
        collection: A collection's body (PUT, PATCH, an import's definition).
        status: The exact status expected where the issue fixes one (413 for a body over
            the limit); otherwise any 4xx.
        dict_only: ``properties`` returns a dict (the client can send it).
        chunked: Send ``raw`` or the form chunked, without a Content-Length, so that
            only a limit enforced while reading meets it.
    """

    id: str
    fields: tuple[str, ...] = ()
    properties: Callable[[dict[str, Any]], Any] | None = None
    raw: bytes | None = None
    form: dict[str, str] | None = None
    job_name: str | None = None
    collection_name: str | None = None
    import_text: str | None = None
    collection: Any = None
    status: int | None = None
    dict_only: bool = True
    chunked: bool = False


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    """A mutation that sets the member at the dotted ``path`` (created as needed)."""

    def mutate(properties: dict[str, Any]) -> Any:
        *parents, last = path.split(".")
        node = properties
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = value
        return properties

    return mutate


def _replace(value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda _: value


def _celery_args(depth: int) -> Callable[[dict[str, Any]], Any]:
    def mutate(properties: dict[str, Any]) -> Any:
        properties["action"] = {
            "type": "Celery",
            "celeryTask": {"name": "tasks.add", "args": [nested(depth)]},
        }
        return properties

    return mutate


def _error_action_uri(uri: str) -> Callable[[dict[str, Any]], Any]:
    def mutate(properties: dict[str, Any]) -> Any:
        properties["action"]["errorAction"] = {
            "type": "Http",
            "request": {"uri": uri, "method": "POST"},
        }
        return properties

    return mutate


_FAR_EAST_END = "9999-12-31T23:59:59-14:00"  # 10000-01-01 in UTC: past datetime.max
_FAR_WEST_START = "0001-01-01T00:00:00+14:00"  # year 0 in UTC: before datetime.min
_HUGE = 10**30

PROPERTY_CASES = [
    Hostile("start-9999-minus14", ("startTime",), _set("startTime", _FAR_EAST_END)),
    Hostile("start-0001-plus14", ("startTime",), _set("startTime", _FAR_WEST_START)),
    Hostile("start-naive", ("startTime",), _set("startTime", "2030-01-01T00:00:00")),
    Hostile("end-time-overflow", ("endTime",), _set("recurrence.endTime", _FAR_EAST_END)),
    Hostile(
        "retry-interval-P99999999Y",
        ("retryInterval",),
        _set(
            "action.retryPolicy",
            {"retryType": "Fixed", "retryCount": 3, "retryInterval": "P99999999Y"},
        ),
    ),
    Hostile("timeout-P99999999Y", ("timeout",), _set("action.request.timeout", "P99999999Y")),
    Hostile("interval-1e30", ("interval",), _set("recurrence.interval", _HUGE)),
    Hostile("count-minus-1", ("count",), _set("recurrence.count", -1)),
    Hostile("count-1e30", ("count",), _set("recurrence.count", _HUGE)),
    Hostile("uri-tab", ("uri",), _set("action.request.uri", "http://example.test/a\tb")),
    Hostile(
        "uri-crlf",
        ("uri",),
        _set("action.request.uri", "http://example.test/a\r\nX-Injected: 1"),
    ),
    Hostile("uri-space", ("uri",), _set("action.request.uri", "http://example.test/a b")),
    Hostile("uri-nul", ("uri",), _set("action.request.uri", "http://example.test/a\x00b")),
    Hostile("uri-no-host", ("uri",), _set("action.request.uri", "http://:8080/x")),
    Hostile("uri-javascript", ("uri",), _set("action.request.uri", "javascript:alert(1)")),
    Hostile(
        "uri-3000-chars",
        ("uri",),
        _set("action.request.uri", "http://example.test/" + "a" * 2980),
    ),
    Hostile(
        "uri-link-local-literal",
        ("uri",),
        _set("action.request.uri", "http://169.254.169.254/latest/meta-data/"),
    ),
    Hostile("error-uri-crlf", ("errorAction",), _error_action_uri("http://example.test/\r\nX: 1")),
    Hostile("header-name-colon", ("headers",), _set("action.request.headers", {"X-A:b": "1"})),
    Hostile("header-name-space", ("headers",), _set("action.request.headers", {"X A": "1"})),
    Hostile(
        "header-value-crlf",
        ("headers",),
        _set("action.request.headers", {"X-A": "1\r\nX-Injected: 2"}),
    ),
    Hostile(
        "headers-51",
        ("headers",),
        _set("action.request.headers", {f"X-H{i}": "1" for i in range(51)}),
    ),
    Hostile("body-8193-chars", ("body",), _set("action.request.body", "x" * 8193)),
    Hostile("method-FETCH", ("method",), _set("action.request.method", "FETCH")),
    Hostile("celery-args-100-deep", ("args", "depth", "deep", "nest"), _celery_args(100)),
    Hostile("owner-unknown", ("owner",), _set("owner", "nobody-such")),
    Hostile("owner-a-reader", ("owner",), _set("owner", READER)),
    Hostile("hours-25", ("hours",), _set("recurrence.schedule", {"hours": [25]})),
    Hostile("minutes-minus-1", ("minutes",), _set("recurrence.schedule", {"minutes": [-1]})),
    Hostile("month-days-0", ("monthDays",), _set("recurrence.schedule", {"monthDays": [0]})),
    Hostile(
        "monthly-occurrence-1e30",
        ("monthlyOccurrences", "occurrence"),
        _set(
            "recurrence.schedule",
            {"monthlyOccurrences": [{"day": "Friday", "Occurrence": _HUGE}]},
        ),
    ),
    Hostile(
        "months-13",
        ("months",),
        _set("recurrence", {"frequency": "Year", "schedule": {"months": [13]}}),
    ),
    Hostile(
        "week-days-unknown",
        ("weekDays",),
        _set("recurrence", {"frequency": "Week", "schedule": {"weekDays": ["Funday"]}}),
    ),
    Hostile("time-zone-path", ("timeZone",), _set("recurrence.timeZone", "../../../etc/passwd")),
    Hostile("time-zone-nul", ("timeZone",), _set("recurrence.timeZone", "Europe/Berlin\x00")),
    Hostile("cron-9-fields", ("cron",), _set("recurrence", {"cron": "* * * * * * * * *"})),
    Hostile("cron-step-0", ("cron",), _set("recurrence", {"cron": "*/0 * * * *"})),
    Hostile("cron-minute-60", ("cron",), _set("recurrence", {"cron": "60 * * * *"})),
    Hostile("cron-day-31-feb", ("cron",), _set("recurrence", {"cron": "0 0 31 2 *"})),
    Hostile(
        "starting-deadline-P99999999Y",
        ("startingDeadline",),
        _set("startingDeadline", "P99999999Y"),
    ),
    Hostile("starting-deadline-negative", ("startingDeadline",), _set("startingDeadline", "-PT1S")),
    Hostile(
        "retry-count-1e30",
        ("retryCount",),
        _set("action.retryPolicy", {"retryType": "Fixed", "retryCount": _HUGE}),
    ),
    Hostile("queue-with-space", ("queue",), _set("queue", "a b")),
    Hostile("header-value-nul", ("headers",), _set("action.request.headers", {"X-A": "a\x00b"})),
    Hostile("header-name-empty", ("headers",), _set("action.request.headers", {"": "1"})),
    Hostile(
        "storage-account-a-host",
        ("storageAccount",),
        _set(
            "action",
            {
                "type": "StorageQueue",
                "queueMessage": {
                    "storageAccount": "169.254.169.254/x?",
                    "queueName": "q",
                    "message": "m",
                },
            },
        ),
    ),
    Hostile(
        "celery-kwargs-100-deep",
        ("kwargs", "depth", "deep", "nest"),
        _set(
            "action",
            {"type": "Celery", "celeryTask": {"name": "t.x", "kwargs": {"a": nested(100)}}},
        ),
    ),
    Hostile(
        "celery-task-name-space",
        ("name",),
        _set("action", {"type": "Celery", "celeryTask": {"name": "a b"}}),
    ),
    Hostile(
        "command-absolute-path",
        ("command",),
        _set("action", {"type": "Command", "command": "ExportJobs --collection c --to /etc/x"}),
    ),
    Hostile(
        "command-dot-dot",
        ("command",),
        _set("action", {"type": "Command", "command": "ImportJobs --from ../../x.json"}),
    ),
    Hostile("display-name-lone-surrogate", ("displayName",), _set("displayName", "a\ud800b")),
    Hostile(
        "uri-lone-surrogate",
        ("uri",),
        _set("action.request.uri", "http://example.test/\ud800"),
    ),
    Hostile("action-a-string", ("action",), _set("action", "Http")),
    Hostile("action-an-array", ("action",), _set("action", [])),
    Hostile("action-null", ("action",), _set("action", None)),
    Hostile(
        "properties-a-string",
        ("properties", "body", "job"),
        _replace("x"),
        dict_only=False,
    ),
    Hostile(
        "properties-an-array",
        ("properties", "body", "job"),
        _replace([]),
        dict_only=False,
    ),
    Hostile(
        "properties-null",
        ("properties", "body", "job", "action"),
        _replace(None),
        dict_only=False,
    ),
]

_BIG = b'{"properties": {"displayName": "' + b"x" * (2 * MiB) + b'"}}'
RAW_CASES = [
    Hostile("body-2MiB", raw=_BIG, status=413),
    Hostile("body-2MiB-chunked", raw=_BIG, status=413, chunked=True),
    Hostile("json-5000-deep-arrays", raw=b'{"properties": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    Hostile(
        "json-5000-deep-objects",
        raw=b'{"properties": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
    ),
    Hostile("json-invalid", raw=b'{"properties": '),
    Hostile("json-not-utf8", raw=b'{"properties": {"displayName": "\xff\xfe"}}'),
    Hostile("json-a-string", raw=b'"x"'),
    Hostile("json-an-array", raw=b"[]"),
    Hostile("json-null", raw=b"null"),
    Hostile("json-nan", raw=b'{"properties": {"startTime": NaN, "recurrence": {"interval": NaN}}}'),
    Hostile(
        "json-5000-digit-number",
        raw=b'{"properties": {"recurrence": {"interval": ' + b"9" * 5000 + b"}}}",
    ),
    Hostile("json-1e999", raw=b'{"properties": {"recurrence": {"interval": 1e999}}}'),
]

COLLECTION_BODY_CASES = [
    Hostile(
        "quota-max-job-count-1e30",
        ("maxJobCount",),
        collection={"properties": {"quota": {"maxJobCount": _HUGE}}},
    ),
    Hostile(
        "quota-max-job-occurrence-1e30",
        ("maxJobOccurrence",),
        collection={"properties": {"quota": {"maxJobOccurrence": _HUGE}}},
    ),
    Hostile(
        "quota-max-recurrence-interval-1e30",
        ("interval", "maxRecurrence"),
        collection={
            "properties": {"quota": {"maxRecurrence": {"frequency": "Minute", "interval": _HUGE}}}
        },
    ),
    Hostile("collection-queue-crlf", ("queue",), collection={"properties": {"queue": "a\r\nb"}}),
    Hostile("tags-lone-surrogate", ("tags",), collection={"tags": {"team": "a\ud800b"}}),
    Hostile("collection-a-string", ("body", "collection", "definition"), collection="x"),
]

#: Names; those with a "/" or empty may not reach a route at all on a URL path (a 404 or
#: 405 then names no field).
NAMES = [
    ("xss", "<img src=x>"),
    ("dot-dot-slash", "../"),
    ("300-chars", "a" * 300),
    ("empty", ""),
    ("control-bell", "a\x07b"),
    ("control-newline", "a\nb"),
    ("bidi-override", "a\u202eb"),
]
PRINCIPAL_NAME_CASES = [Hostile(f"principal-name-{i}", ("name",), job_name=n) for i, n in NAMES]
JOB_NAME_CASES = [Hostile(f"job-name-{i}", ("jobName", "name"), job_name=n) for i, n in NAMES]
COLLECTION_NAME_CASES = [
    Hostile(f"collection-name-{i}", ("jobCollectionName", "collection"), collection_name=n)
    for i, n in NAMES
]

FORM_CASES = [
    Hostile(
        "form-start-overflow",
        ("startTime",),
        form={"startTime": "9999-12-31T23:59", "timeZone": "Etc/GMT+12"},
    ),
    Hostile(
        "form-start-underflow",
        ("startTime",),
        form={"startTime": "0001-01-01T00:00", "timeZone": "Etc/GMT-14"},
    ),
    Hostile(
        "form-end-overflow",
        ("endTime",),
        form={"endKind": "endTime", "endTime": "9999-12-31T23:59", "timeZone": "Etc/GMT+12"},
    ),
    Hostile("form-uri-crlf", ("uri",), form={"uri": "http://example.test/a\r\nX-I: 1"}),
    Hostile("form-uri-space", ("uri",), form={"uri": "http://example.test/a b"}),
    Hostile("form-uri-link-local", ("uri",), form={"uri": "http://169.254.169.254/x"}),
    Hostile("form-header-name-space", ("headers",), form={"headers": "X A: 1"}),
    Hostile("form-method-FETCH", ("method",), form={"method": "FETCH"}),
    Hostile(
        "form-retry-interval-P99999999Y",
        ("retryInterval",),
        form={"retryType": "Fixed", "retryInterval": "P99999999Y"},
    ),
    Hostile(
        "form-celery-args-100-deep",
        ("celeryArgs", "args", "depth"),
        form={
            "actionType": "Celery",
            "celeryTask": "tasks.add",
            "celeryArgs": json.dumps([nested(100)]),
        },
    ),
    Hostile(
        "form-job-json-5000-deep",
        ("jobJson", "job JSON"),
        form={"mode": "json", "jobJson": "[" * 5000 + "]" * 5000},
    ),
    Hostile(
        "form-job-json-invalid", ("jobJson", "job JSON"), form={"mode": "json", "jobJson": "{"}
    ),
    Hostile("form-owner-a-reader", ("owner",), form={"owner": READER}),
    Hostile("form-body-2MiB", form={"body": "x" * (2 * MiB)}, status=413),
    Hostile("form-body-2MiB-chunked", form={"body": "x" * (2 * MiB)}, status=413, chunked=True),
]

IMPORT_CASES = [
    Hostile("import-not-json", ("json", "from"), import_text='{"collection": '),
    Hostile(
        "import-5000-deep",
        ("json", "deep", "depth", "from"),
        import_text='{"collection": "sub1/rg1/x", "jobs": ' + "[" * 5000 + "]" * 5000 + "}",
    ),
    Hostile(
        "import-an-array", ("collection", "document", "export", "body", "from"), import_text="[]"
    ),
    Hostile(
        "import-null", ("collection", "document", "export", "body", "from"), import_text="null"
    ),
    Hostile(
        "import-jobs-a-string",
        ("jobs",),
        import_text='{"collection": "sub1/rg1/imported", "definition": {}, "jobs": "x"}',
    ),
    Hostile(
        "import-no-collection",
        ("collection",),
        import_text='{"definition": {}, "jobs": []}',
    ),
]


# -- the deployment under attack ---------------------------------------------------------------


@dataclass
class World:
    """The API in this process over a store of the module's own prefix."""

    settings: TaktSettings
    store: JobStore
    raw: redis.Redis
    base_url: str
    api: httpx.Client
    console: httpx.Client
    csrf: str

    @property
    def pattern(self) -> str:
        return "{" + self.settings.key_prefix + "}:*"


def _serve(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="hostile-api", daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=15, message="the API to start")
    return server, thread


def _no_manual_runs(jid: str, kind: ActionType, occurrence_ms: int, queue: str | None) -> None:
    """The runner of manual runs: none of the paths under test starts a job."""


def _seed(world: World) -> None:
    collection = world.api.put(_ARM_COLLECTION, params=API_VERSION, json={"location": "local"})
    assert collection.status_code in (200, 201), collection.text
    job = world.api.put(
        f"{_ARM_COLLECTION}/jobs/{SEED}",
        params=API_VERSION,
        json={"properties": valid_properties()},
    )
    assert job.status_code in (200, 201), job.text
    reader = world.api.post("/principals", json={"name": READER, "role": "reader"})
    assert reader.status_code == 201, reader.text


def _sign_in(console: httpx.Client, base_url: str) -> str:
    answer = console.post(
        "/console/signin", data={"key": ADMIN_TOKEN}, headers={"Origin": base_url}
    )
    assert answer.status_code == 303, answer.text
    match = re.search(r'data-csrf="([^"]+)"', console.get("/").text)
    assert match, "no CSRF token on the console's home page"
    return match.group(1)


@pytest.fixture(scope="module")
def world(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("hostile-data")
    settings = load_settings(
        {},
        redis_url=redis_url,
        key_prefix=f"hostile-{uuid.uuid4().hex[:10]}",
        data_dir=data_dir,
        admin_token=ADMIN_TOKEN,
    )
    store = JobStore.from_url(settings.store_url, settings.key_prefix)
    raw = redis.Redis.from_url(settings.store_url)
    port = free_port()
    server, thread = _serve(create_api(settings, store, _no_manual_runs), port)
    base_url = f"http://127.0.0.1:{port}"
    api = validating_client(
        base_url=base_url,
        timeout=30,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    console = httpx.Client(base_url=base_url, timeout=30)
    try:
        world = World(settings, store, raw, base_url, api, console, "")
        _seed(world)
        world.csrf = _sign_in(console, base_url)
        yield world
    finally:
        api.close()
        console.close()
        server.should_exit = True
        thread.join(timeout=15)
        for key in raw.scan_iter(match="{" + settings.key_prefix + "}:*"):
            raw.delete(key)
        raw.close()
        store.close()


# -- the store before and after ----------------------------------------------------------------


def _value(raw: redis.Redis, key: bytes, kind: str) -> Any:
    if kind == "string":
        return raw.get(key)
    if kind == "hash":
        return raw.hgetall(key)
    if kind == "list":
        return raw.lrange(key, 0, -1)
    if kind == "set":
        return raw.smembers(key)
    if kind == "zset":
        return raw.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        return raw.xrange(key)
    raise AssertionError(f"a key of type {kind} in the store: {key!r}")


@dataclass(frozen=True)
class Snapshot:
    """Every key under the prefix: its type and value (compared) and a DUMP (to put back)."""

    values: dict[bytes, tuple[str, Any]]
    dumps: dict[bytes, tuple[bytes, int]]

    @classmethod
    def take(cls, world: World) -> Snapshot:
        values, dumps = {}, {}
        for key in sorted(world.raw.scan_iter(match=world.pattern, count=1000)):
            found = world.raw.type(key)
            kind = found.decode() if isinstance(found, bytes) else found
            values[key] = (kind, _value(world.raw, key, kind))
            dump = world.raw.dump(key)
            assert isinstance(dump, bytes)
            dumps[key] = (dump, max(int(world.raw.pttl(key)), 0))
        return cls(values, dumps)

    def put_back(self, world: World) -> None:
        for key in world.raw.scan_iter(match=world.pattern, count=1000):
            if key not in self.dumps:
                world.raw.delete(key)
        for key, (dump, ttl_ms) in self.dumps.items():
            world.raw.restore(key, ttl_ms, dump, replace=True)

    def changes(self, after: Snapshot) -> list[str]:
        keys = sorted(set(self.values) | set(after.values))
        return [
            key.decode(errors="replace")
            for key in keys
            if self.values.get(key) != after.values.get(key)
        ]


# -- what a path answered ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A write path's answer in one shape: an HTTP status (or the status a client or
    command refusal stands for), the error message, and what is wrong with the form of
    the answer if anything (an API error that is not an ARM error body)."""

    status: int
    message: str
    malformed: str | None = None


def _api_outcome(response: httpx.Response) -> Outcome:
    try:
        body = response.json()
        error = body["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        return Outcome(response.status_code, response.text[:300], "not an ARM error body")
    if set(body) != {"error"} or not isinstance(code, str) or not isinstance(message, str):
        return Outcome(response.status_code, str(message), f"not an ARM error body: {body!r}")
    return Outcome(response.status_code, message)


_ALERT = re.compile(r'<div class="message error" role="alert">(.*?)</div>', re.S)


def _console_outcome(response: httpx.Response) -> Outcome:
    if response.headers.get("content-type", "").startswith("application/json"):
        return _api_outcome(response)
    alert = _ALERT.search(response.text)
    message = alert.group(1) if alert else ""
    malformed = None if alert or response.status_code < 400 else "no error message on the page"
    return Outcome(response.status_code, message, malformed)


def _client_status(exc: TaktError) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    for kind, status in ((ValidationFailed, 400), (NotFound, 404), (Forbidden, 403)):
        if isinstance(exc, kind):
            return status
    return 409 if isinstance(exc, Conflict) else 599  # 599: not an answer of the API at all


def _call_client(world: World, call: Callable[[SchedulerClient], Any]) -> Outcome:
    with SchedulerClient(
        world.base_url,
        ADMIN_TOKEN,
        subscription=SUB,
        resource_group=RG,
        transport=ValidatingTransport(),
    ) as client:
        try:
            call(client)
        except TaktError as exc:
            return Outcome(_client_status(exc), str(exc))
        except Exception as exc:  # not one of the exceptions the client promises
            return Outcome(599, f"the client raised {type(exc).__name__}: {exc}")
    return Outcome(200, "accepted")


def _import(world: World, text: str) -> Outcome:
    """Run ImportJobs on ``text``, a file of the command folder (TAKT_DATA_DIR/exchange)."""
    folder = world.settings.data_dir / "exchange"
    folder.mkdir(mode=0o700, exist_ok=True)
    name = f"import-{uuid.uuid4().hex[:8]}.json"
    (folder / name).write_text(text)
    line = f"ImportJobs --from {name}"
    try:
        result = run_command_line(world.store, line, datetime.now(UTC), world.settings)
    except TaktError as exc:
        return Outcome(400 if isinstance(exc, ValidationFailed) else 409, str(exc))
    except Exception as exc:  # a crash, as the worker would record it: not a refusal
        return Outcome(500, f"{type(exc).__name__}: {exc}")
    return Outcome(200 if result.ok else 400, result.report)


def _import_document(cid: str, jobs: list[tuple[str, Any]], definition: Any = None) -> str:
    """An ImportJobs file: a valid job first, so a refusal must be of the whole file."""
    entries = [{"name": "fine", "properties": valid_properties()}]
    entries += [{"name": name, "properties": properties} for name, properties in jobs]
    definition = {"location": "local"} if definition is None else definition
    return json.dumps({"collection": cid, "definition": definition, "jobs": entries})


# -- the write paths ---------------------------------------------------------------------------


def _segment(name: str) -> str:
    return quote(name, safe="")


_JSON = {"Content-Type": "application/json"}


def _chunks(body: bytes) -> Iterator[bytes]:
    """The body in 64 KiB pieces: httpx sends it chunked, with no Content-Length."""
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


def _raw(case: Hostile) -> bytes | Iterator[bytes]:
    assert case.raw is not None
    return _chunks(case.raw) if case.chunked else case.raw


def _send_json(world: World, method: str, url: str, body: bytes | Iterator[bytes]) -> Outcome:
    response = world.api.request(method, url, params=API_VERSION, content=body, headers=_JSON)
    return _api_outcome(response)


def _console_post(
    world: World, url: str, fields: dict[str, Any], *, chunked: bool = False
) -> Outcome:
    body = urlencode({"csrf": world.csrf, **fields}, doseq=True).encode()
    response = world.console.post(
        url,
        content=_chunks(body) if chunked else body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": world.base_url},
    )
    return _console_outcome(response)


def _form_over(properties: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    values = {k: v for k, v in form_values(properties).items() if v not in ("", None)}
    values["scheduleKind"] = "recurring" if properties.get("recurrence") else "once"
    return {**values, **fields}


def arm_put_job(world: World, case: Hostile) -> Outcome:
    url = f"{_ARM_COLLECTION}/jobs/{_segment(VICTIM)}"
    if case.job_name is not None:
        url = f"{_ARM_COLLECTION}/jobs/{_segment(case.job_name)}"
        return _send_json(
            world, "PUT", url, json.dumps({"properties": valid_properties()}).encode()
        )
    if case.properties is not None:
        body = {"properties": case.properties(valid_properties())}
        return _send_json(world, "PUT", url, json.dumps(body).encode())
    return _send_json(world, "PUT", url, _raw(case))


def arm_patch_job(world: World, case: Hostile) -> Outcome:
    url = f"{_ARM_COLLECTION}/jobs/{SEED}"
    if case.properties is not None:
        body = {"properties": case.properties(valid_properties())}
        return _send_json(world, "PATCH", url, json.dumps(body).encode())
    return _send_json(world, "PATCH", url, _raw(case))


def _collection_body(case: Hostile) -> bytes | Iterator[bytes]:
    return json.dumps(case.collection).encode() if case.collection is not None else _raw(case)


def arm_put_collection(world: World, case: Hostile) -> Outcome:
    if case.collection_name is not None:
        url = f"{_ARM_COLLECTIONS}/jobCollections/{_segment(case.collection_name)}"
        return _send_json(world, "PUT", url, b'{"location": "local"}')
    url = f"{_ARM_COLLECTIONS}/jobCollections/victim"
    return _send_json(world, "PUT", url, _collection_body(case))


def classic_put_job(world: World, case: Hostile) -> Outcome:
    url = f"{_CLASSIC_JOBS}/{_segment(case.job_name if case.job_name is not None else VICTIM)}"
    if case.job_name is not None:
        return _send_json(world, "PUT", url, json.dumps(valid_properties()).encode())
    if case.properties is not None:
        return _send_json(
            world, "PUT", url, json.dumps(case.properties(valid_properties())).encode()
        )
    return _send_json(world, "PUT", url, _raw(case))


def classic_post_job(world: World, case: Hostile) -> Outcome:
    if case.properties is not None:
        body = json.dumps(case.properties(valid_properties())).encode()
        return _send_json(world, "POST", _CLASSIC_JOBS, body)
    return _send_json(world, "POST", _CLASSIC_JOBS, _raw(case))


def classic_patch_job(world: World, case: Hostile) -> Outcome:
    url = f"{_CLASSIC_JOBS}/{SEED}"
    if case.properties is not None:
        return _send_json(
            world, "PATCH", url, json.dumps(case.properties(valid_properties())).encode()
        )
    return _send_json(world, "PATCH", url, _raw(case))


def classic_put_collection(world: World, case: Hostile) -> Outcome:
    name = case.collection_name if case.collection_name is not None else "victim"
    url = f"{_CLASSIC}/jobcollections/{_segment(name)}"
    if case.collection_name is not None:
        return _send_json(world, "PUT", url, b'{"location": "local"}')
    return _send_json(world, "PUT", url, _collection_body(case))


def arm_patch_collection(world: World, case: Hostile) -> Outcome:
    return _send_json(world, "PATCH", _ARM_COLLECTION, _collection_body(case))


def add_principal(world: World, case: Hostile) -> Outcome:
    if case.job_name is not None:
        body = json.dumps({"name": case.job_name, "role": "reader"}).encode()
        return _api_outcome(world.api.post("/principals", content=body, headers=_JSON))
    return _api_outcome(world.api.post("/principals", content=_raw(case), headers=_JSON))


def console_change_owner(world: World, case: Hostile) -> Outcome:
    assert case.form is not None
    return _console_post(world, f"{_CONSOLE}/jobs/{SEED}/owner", case.form)


def _console_fields(case: Hostile) -> dict[str, Any]:
    if case.properties is not None:
        return {"mode": "json", "jobJson": json.dumps(case.properties(valid_properties()))}
    assert case.form is not None
    return _form_over(valid_properties(), case.form)


def console_new_job(world: World, case: Hostile) -> Outcome:
    url = f"{_CONSOLE}/new"
    if case.job_name is not None:
        return _console_post(world, url, _form_over(valid_properties(), {"name": case.job_name}))
    fields = {"name": VICTIM, **_console_fields(case)}
    return _console_post(world, url, fields, chunked=case.chunked)


def console_save_job(world: World, case: Hostile) -> Outcome:
    url = f"{_CONSOLE}/jobs/{SEED}"
    return _console_post(world, url, _console_fields(case), chunked=case.chunked)


def client_create_job(world: World, case: Hostile) -> Outcome:
    if case.job_name is not None:
        name = case.job_name
        return _call_client(world, lambda c: c.create_job(COLL, name, valid_properties()))
    assert case.properties is not None
    properties = case.properties(valid_properties())
    return _call_client(world, lambda c: c.create_job(COLL, VICTIM, properties))


def client_update_job(world: World, case: Hostile) -> Outcome:
    assert case.properties is not None
    patch = case.properties(valid_properties())
    return _call_client(world, lambda c: c.update_job(COLL, SEED, patch))


def client_create_collection(world: World, case: Hostile) -> Outcome:
    assert case.collection_name is not None
    name = case.collection_name
    return _call_client(world, lambda c: c.create_collection(name))


def import_jobs(world: World, case: Hostile) -> Outcome:
    if case.import_text is not None:
        return _import(world, case.import_text)
    if case.collection is not None:
        return _import(world, _import_document(f"{SUB}/{RG}/imported", [], case.collection))
    if case.collection_name is not None:
        return _import(world, _import_document(f"{SUB}/{RG}/{case.collection_name}", []))
    if case.job_name is not None:
        document = _import_document(f"{SUB}/{RG}/imported", [(case.job_name, valid_properties())])
        return _import(world, document)
    assert case.properties is not None
    hostile = case.properties(valid_properties())
    return _import(world, _import_document(f"{SUB}/{RG}/imported", [("hostile", hostile)]))


@dataclass(frozen=True)
class WritePath:
    """A way to write; ``valid`` is what it writes when nothing in it is hostile."""

    id: str
    send: Callable[[World, Hostile], Outcome]
    cases: list[Hostile]
    valid: Hostile
    url_names: bool = False  # names travel in the URL path (routing may refuse them)


_DICT_CASES = [case for case in PROPERTY_CASES if case.dict_only]

_UNCHANGED = Hostile("valid", properties=lambda properties: properties)
_VALID_JOB_NAME = Hostile("valid", job_name="valid-job")
_VALID_COLLECTION_NAME = Hostile("valid", collection_name="valid-collection")
_JOB_CASES = PROPERTY_CASES + RAW_CASES + JOB_NAME_CASES

WRITE_PATHS = [
    WritePath("arm-put-job", arm_put_job, _JOB_CASES, _UNCHANGED, url_names=True),
    WritePath("arm-patch-job", arm_patch_job, PROPERTY_CASES + RAW_CASES, _UNCHANGED),
    WritePath(
        "arm-put-collection",
        arm_put_collection,
        RAW_CASES + COLLECTION_BODY_CASES + COLLECTION_NAME_CASES,
        _VALID_COLLECTION_NAME,
        url_names=True,
    ),
    WritePath(
        "arm-patch-collection",
        arm_patch_collection,
        RAW_CASES + COLLECTION_BODY_CASES,
        Hostile("valid", raw=b'{"tags": {"team": "billing"}}'),
    ),
    WritePath("classic-put-job", classic_put_job, _JOB_CASES, _UNCHANGED, url_names=True),
    WritePath("classic-post-job", classic_post_job, PROPERTY_CASES + RAW_CASES, _UNCHANGED),
    WritePath("classic-patch-job", classic_patch_job, _DICT_CASES + RAW_CASES, _UNCHANGED),
    WritePath(
        "classic-put-collection",
        classic_put_collection,
        RAW_CASES + COLLECTION_BODY_CASES + COLLECTION_NAME_CASES,
        _VALID_COLLECTION_NAME,
        url_names=True,
    ),
    WritePath(
        "add-principal",
        add_principal,
        RAW_CASES + PRINCIPAL_NAME_CASES,
        Hostile("valid", job_name="valid-principal"),
    ),
    WritePath(
        "console-new-job",
        console_new_job,
        PROPERTY_CASES + FORM_CASES + JOB_NAME_CASES,
        _VALID_JOB_NAME,
    ),
    WritePath(
        "console-save-job",
        console_save_job,
        PROPERTY_CASES + FORM_CASES,
        Hostile("valid", form={"displayName": "still valid"}),
    ),
    WritePath(
        "console-change-owner",
        console_change_owner,
        [
            Hostile("owner-unknown", ("owner",), form={"owner": "nobody-such"}),
            Hostile("owner-a-reader", ("owner",), form={"owner": READER}),
            Hostile("owner-xss", ("owner",), form={"owner": "<img src=x>"}),
            Hostile("owner-body-2MiB", form={"owner": "x" * (2 * MiB)}, status=413),
        ],
        Hostile("valid", form={"owner": "admin"}),
    ),
    WritePath(
        "client-create-job",
        client_create_job,
        _DICT_CASES + JOB_NAME_CASES,
        _UNCHANGED,
        url_names=True,
    ),
    WritePath("client-update-job", client_update_job, _DICT_CASES, _UNCHANGED),
    WritePath(
        "client-create-collection",
        client_create_collection,
        COLLECTION_NAME_CASES,
        _VALID_COLLECTION_NAME,
        url_names=True,
    ),
    WritePath(
        "import-jobs",
        import_jobs,
        PROPERTY_CASES
        + JOB_NAME_CASES
        + COLLECTION_NAME_CASES
        + COLLECTION_BODY_CASES
        + IMPORT_CASES,
        _UNCHANGED,
    ),
]

CASES = [
    pytest.param(path, case, id=f"{path.id}/{case.id}")
    for path in WRITE_PATHS
    for case in path.cases
]


def _names_no_field(path: WritePath, case: Hostile) -> bool:
    """A name with a slash, or none, on a URL path may stop at routing (404/405)."""
    name = case.job_name if case.job_name is not None else case.collection_name
    return path.url_names and name is not None and (name == "" or "/" in name)


# -- the suite ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "case"), CASES)
def test_hostile_input_is_refused_and_changes_nothing(
    world: World, path: WritePath, case: Hostile
) -> None:
    # Given the store as it is
    before = Snapshot.take(world)

    # When the hostile input is written through this path
    try:
        outcome = path.send(world, case)
    finally:
        after = Snapshot.take(world)
        changed = before.changes(after)
        if changed:
            before.put_back(world)

    # Then it is refused with a 4xx naming the field, in the path's error form, and the
    # store holds exactly what it held
    assert not _problems(path, case, outcome, changed), (
        f"{'; '.join(_problems(path, case, outcome, changed))}; "
        f"answer {outcome.status}: {outcome.message[:300]!r}"
    )


def _problems(path: WritePath, case: Hostile, outcome: Outcome, changed: list[str]) -> list[str]:
    """Every way the answer to a hostile case is wrong (none: it was refused properly)."""
    problems = []
    if case.status is not None and outcome.status != case.status:
        problems.append(f"status {outcome.status}, not {case.status}")
    elif not 400 <= outcome.status < 500:
        problems.append(f"status {outcome.status}, not a 4xx")
    if outcome.malformed is not None and outcome.status >= 400:
        problems.append(outcome.malformed)
    named = any(f.lower() in outcome.message.lower() for f in case.fields)
    if case.fields and outcome.status >= 400 and not named and not _names_no_field(path, case):
        problems.append(f"the message names none of {case.fields}")
    if changed:
        problems.append(f"the store changed: {changed}")
    return problems


@pytest.mark.parametrize("path", WRITE_PATHS, ids=[p.id for p in WRITE_PATHS])
def test_the_valid_job_is_accepted_on_every_path(world: World, path: WritePath) -> None:
    # Given the store as it is
    before = Snapshot.take(world)

    # When the valid job every hostile case starts from is written through this path
    try:
        outcome = path.send(world, path.valid)
    finally:
        changed = before.changes(Snapshot.take(world))
        before.put_back(world)

    # Then it is accepted (the console answers with a redirect) and it was written
    assert outcome.status in (200, 201, 303), f"{outcome.status}: {outcome.message[:300]!r}"
    assert changed
