"""Every ARM answer the API tests receive, validated against Microsoft's swagger.

``tests/data/azure/scheduler-2016-03-01.json`` is Microsoft's own OpenAPI 2.0 document of
Azure Scheduler. :func:`check_response` finds the operation a request named (method and
path template), and validates the answer strictly:

- a status the operation declares: the body against the declared schema (JSON Schema, with
  ``date-time`` and ``duration`` formats checked); a declared status without a schema has
  an empty body;
- an error (4xx, 5xx): ARM's error body, ``{"error": {"code": str, "message": str}}``;
- any other status is a failure.

Only ARM paths are checked (``/subscriptions/.../providers/Microsoft.Scheduler/...``): the
classic API, the console, ``/metrics`` and Takt's other routes are not Microsoft's to
describe, nor are :data:`TAKT_ARM_EXTENSIONS`, Takt's own routes under the ARM prefix. An
ARM path the swagger has no operation for is not skipped: its error must still be ARM's
error body, and a success there is a failure (a route the check cannot judge).

Strict: a string member is a string (``null`` is refused), enums hold only their values,
formats parse. The only widening is :data:`EXTENSIONS`, the enum values Takt documents as
extensions (docs/azure-compatibility.md); nothing else is relaxed.

Every client an API test talks to the API with runs every answer through it, so an answer
that breaks the spec fails the test that received it: the stack's client
(tests/support/stack.py), the Azure SDK's (a per-call policy in tests/e2e/test_azure_sdk.py),
and any client a test builds itself, made with :func:`validating_client` or passed through
:func:`validated` (httpx clients, async ones, Starlette's ``TestClient``); a one-off
``httpx.get`` goes through :func:`checked`, and Takt's own ``SchedulerClient`` gets a
:class:`ValidatingTransport`. :data:`COUNTS` counts the answers checked and
left alone; set ``SWAGGER_CHECK_LOG`` to a file to get one line per validated answer.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

import httpx
import isodate
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from tests.support.helpers import ROOT

__all__ = [
    "ARM_PATH",
    "COUNTS",
    "EXTENSIONS",
    "SWAGGER_FILE",
    "TAKT_ARM_EXTENSIONS",
    "SpecViolation",
    "ValidatingTransport",
    "check_answer",
    "check_async_response",
    "check_response",
    "checked",
    "is_described",
    "validated",
    "validating_client",
]

SWAGGER_FILE = ROOT / "tests" / "data" / "azure" / "scheduler-2016-03-01.json"

#: Enum values Takt adds (its documented extensions), by the definition member that holds
#: the enum: recurrences every second or every year, Celery and Command actions.
EXTENSIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("JobRecurrence", "frequency"): ("Second", "Year"),
    ("JobMaxRecurrence", "frequency"): ("Second", "Year"),
    ("JobAction", "type"): ("Celery", "Command"),
    ("JobErrorAction", "type"): ("Celery", "Command"),
}

#: A path of Azure Resource Manager's Microsoft.Scheduler provider (ARM paths ignore case).
ARM_PATH = re.compile(
    r"^/subscriptions/[^/]+/(?:resourceGroups/[^/]+/)?providers/Microsoft\.Scheduler(?:/|$)",
    re.IGNORECASE,
)

#: Takt's own routes under the ARM prefix (docs/azure-compatibility.md, "Takt extensions"):
#: a job's next occurrences and a collection's job templates.
TAKT_ARM_EXTENSIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("GET", re.compile(r"/jobCollections/[^/]+/jobs/[^/]+/occurrences$", re.IGNORECASE)),
    ("GET", re.compile(r"/jobCollections/[^/]+/templates$", re.IGNORECASE)),
)

#: Answers seen by the check: ``validated`` (against the swagger), ``not ARM`` (left alone).
COUNTS: Counter[str] = Counter()

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


class SpecViolation(AssertionError):
    """An answer Microsoft's swagger does not allow."""


_formats = FormatChecker(formats=())


@_formats.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return True


@_formats.checks("duration", raises=(ValueError, isodate.ISO8601Error))
def _duration(value: object) -> bool:
    if isinstance(value, str):
        isodate.parse_duration(value)
    return True


@cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SWAGGER_FILE.read_text())
    widened = copy.deepcopy(document)
    for (definition, member), values in EXTENSIONS.items():
        widened["definitions"][definition]["properties"][member]["enum"].extend(values)
    _apply_discriminators(widened["definitions"])
    return widened


def _apply_discriminators(definitions: dict[str, Any]) -> None:
    """JSON Schema knows no ``discriminator``: each polymorphic base (HttpAuthentication)
    gets "if its discriminator names a subtype, it is that subtype" written as Draft 4
    can say it, so the subtype's members (``password``, ``secret``, ...) are checked too."""
    for name, base in definitions.items():
        member = base.get("discriminator")
        if member is None:
            continue
        cases = []
        for sub in definitions.values():
            if {"$ref": f"#/definitions/{name}"} in sub.get("allOf", ()):
                value = sub["x-ms-discriminator-value"]
                other = {"properties": {member: {"not": {"enum": [value]}}}}
                cases.append({"anyOf": [other, {"properties": sub["properties"]}]})
        base["allOf"] = cases


@cache
def _operations() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    """(path regex, method, operation) of every operation of the swagger."""
    found = []
    for template, methods in _document()["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        for method, operation in methods.items():
            found.append((re.compile(f"^{pattern}$", re.IGNORECASE), method.upper(), operation))
    return found


def _operation(method: str, path: str) -> dict[str, Any] | None:
    for pattern, verb, operation in _operations():
        if verb == method and pattern.match(path):
            return operation
    return None


def _validator(schema: dict[str, Any]) -> Draft4Validator:
    return _validator_of(json.dumps(schema, sort_keys=True))


@cache
def _validator_of(schema: str) -> Draft4Validator:
    root = {**_document(), **json.loads(schema)}  # "#/definitions/..." resolves in the swagger
    return Draft4Validator(root, format_checker=_formats)


def is_described(method: str, path: str) -> bool:
    """Whether Microsoft's swagger is the judge of ``method path``: an ARM path that is not
    one of Takt's extensions."""
    method = method.upper()
    extension = any(verb == method and r.search(path) for verb, r in TAKT_ARM_EXTENSIONS)
    return bool(ARM_PATH.match(path)) and not extension


def check_answer(method: str, path: str, status: int, body: bytes) -> bool:
    """Raise :class:`SpecViolation` if the answer breaks the swagger; False when the path
    is not Microsoft's to describe (nothing checked), True when it was checked."""
    method = method.upper()
    where = f"{method} {path} answered {status}"
    if not is_described(method, path):
        COUNTS["not ARM"] += 1
        return False
    operation = _operation(method, path)
    if operation is None:
        _check_unknown_operation(where, status, body)
        return True
    declared = operation["responses"].get(str(status))
    if declared is None and status >= 400:
        _validate(_ERROR_SCHEMA, body, where)
    elif declared is None:
        raise SpecViolation(f"{where}: the swagger declares {sorted(operation['responses'])}")
    elif "schema" in declared:
        _validate(declared["schema"], body, where)
    elif body.strip():
        raise SpecViolation(f"{where}: the swagger declares no body, got {body[:200]!r}")
    _log(where)
    return True


def _check_unknown_operation(where: str, status: int, body: bytes) -> None:
    """An ARM path the swagger has no operation for (a wrong method, an unknown child):
    Azure answers ARM's error body; anything else is an answer the check cannot judge."""
    if status < 400:
        raise SpecViolation(f"{where}: the swagger has no such operation")
    _validate(_ERROR_SCHEMA, body, where)
    _log(where)


def _validate(schema: dict[str, Any], body: bytes, where: str) -> None:
    try:
        instance = json.loads(body)
    except ValueError as exc:
        raise SpecViolation(f"{where}: not JSON ({exc}): {body[:200]!r}") from None
    errors = sorted(_validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        raise SpecViolation(f"{where}: {'; '.join(_describe(e) for e in errors[:5])}")


def _describe(error: ValidationError) -> str:
    subtype = [e for e in error.context or () if e.validator != "not"]
    if subtype:  # a discriminated subtype: say what it refused, not only that none fitted
        error = best_match(subtype)
    path = "/".join(str(part) for part in error.absolute_path) or "(body)"
    return f"{path}: {error.message}"


def _log(where: str) -> None:
    COUNTS["validated"] += 1
    log = os.environ.get("SWAGGER_CHECK_LOG")
    if log:
        with open(log, "a") as out:
            out.write(where + "\n")


_CHECKED = "takt_swagger_checked"  # marks an answer checked, so a second look is free


def check_response(response: httpx.Response) -> None:
    """An httpx ``response`` event hook: validate the answer (reading its body)."""
    if response.extensions.get(_CHECKED):
        return
    request = response.request
    response.extensions[_CHECKED] = True
    if not is_described(request.method, request.url.path):
        COUNTS["not ARM"] += 1  # its body is not read: another route may stream without end
        return
    response.read()
    check_answer(request.method, request.url.path, response.status_code, response.content)


async def check_async_response(response: httpx.Response) -> None:
    """The same hook for an ``httpx.AsyncClient``."""
    request = response.request
    if not response.extensions.get(_CHECKED) and is_described(request.method, request.url.path):
        await response.aread()
    check_response(response)


def checked(response: httpx.Response) -> httpx.Response:
    """``response``, validated: for one-off calls (``checked(httpx.get(url))``)."""
    check_response(response)
    return response


Client = TypeVar("Client", httpx.Client, httpx.AsyncClient)


def validated(client: Client) -> Client:
    """``client`` (an httpx client, or Starlette's ``TestClient``, which is one), with every
    answer it receives validated from now on."""
    hooks = client.event_hooks
    hook = check_async_response if isinstance(client, httpx.AsyncClient) else check_response
    if hook not in hooks["response"]:
        client.event_hooks = {**hooks, "response": [*hooks["response"], hook]}
    return client


def validating_client(**kwargs: Any) -> httpx.Client:
    """An ``httpx.Client(**kwargs)`` whose every answer is validated."""
    return validated(httpx.Client(**kwargs))


class ValidatingTransport(httpx.BaseTransport):
    """A transport that validates every answer before its client sees it: for clients a
    test cannot hook, only hand a transport (Takt's ``SchedulerClient``)."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if not is_described(request.method, request.url.path):
            COUNTS["not ARM"] += 1
            return response
        body = response.read()
        response.close()
        check_answer(request.method, request.url.path, response.status_code, body)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(body),
            extensions={**response.extensions, _CHECKED: True},
        )

    def close(self) -> None:
        self._inner.close()
