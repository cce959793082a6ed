"""Every ARM answer the API tests receive, validated against Microsoft's swagger.

``tests/data/azure/scheduler-2016-03-01.json`` is Microsoft's own OpenAPI 2.0 document of
Azure Scheduler. :func:`check_response` finds the operation a request named (method and
path template), and validates the answer strictly:

- a status the operation declares: the body against the declared schema (JSON Schema, with
  ``date-time`` and ``duration`` formats checked); a declared status without a schema has
  an empty body;
- an error (4xx, 5xx): ARM's error body, ``{"error": {"code": str, "message": str}}``;
- any other status is a failure.

Strict: a string member is a string (``null`` is refused), enums hold only their values,
formats parse. The only widening is :data:`EXTENSIONS`, the enum values Takt documents as
extensions (docs/azure-compatibility.md); nothing else is relaxed. Paths the swagger does not
know (the classic API, Takt's own routes) are left alone.

The stack's client (tests/support/stack.py) and the Azure SDK's client of the tests run every
answer through it, so an answer that breaks the spec fails the test that received it. Set
``SWAGGER_CHECK_LOG`` to a file to get one line per validated answer (how many were checked).
"""

from __future__ import annotations

import copy
import json
import os
import re
from datetime import datetime
from functools import cache
from typing import Any

import httpx
import isodate
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from tests.support.helpers import ROOT

__all__ = ["EXTENSIONS", "SWAGGER_FILE", "SpecViolation", "check_answer", "check_response"]

SWAGGER_FILE = ROOT / "tests" / "data" / "azure" / "scheduler-2016-03-01.json"

#: Enum values Takt adds (its documented extensions), by the definition member that holds
#: the enum: recurrences every second or every year, Celery and Command actions.
EXTENSIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("JobRecurrence", "frequency"): ("Second", "Year"),
    ("JobMaxRecurrence", "frequency"): ("Second", "Year"),
    ("JobAction", "type"): ("Celery", "Command"),
    ("JobErrorAction", "type"): ("Celery", "Command"),
}

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


def check_answer(method: str, path: str, status: int, body: bytes) -> bool:
    """Raise :class:`SpecViolation` if the answer breaks the swagger; False when the
    swagger has no such operation (nothing checked), True when it was checked."""
    operation = _operation(method.upper(), path)
    if operation is None:
        return False
    where = f"{method} {path} answered {status}"
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
    log = os.environ.get("SWAGGER_CHECK_LOG")
    if log:
        with open(log, "a") as out:
            out.write(where + "\n")


def check_response(response: httpx.Response) -> None:
    """An httpx ``response`` event hook: validate the answer (reading its body)."""
    response.read()
    request = response.request
    check_answer(request.method, request.url.path, response.status_code, response.content)
