"""Property-based fuzzing of every route in the API's own OpenAPI document (schemathesis).

Three promises are checked against the stack's real API process:

- no input, valid or not, makes any route answer 5xx (schemathesis' ``not_a_server_error``);
  integer query parameters are also tried at -1, 2^63 and 10^30 on every run;
- every route except ``/healthz`` answers 401 without a valid key (``/openapi.json`` and
  ``/docs`` are not in the document's ``paths``; they are public on purpose).

The fuzz run is bounded (a fixed number of examples per operation, one fixed seed and
derandomised, so CI and a developer see the same cases) to stay within about a minute and
a half on two cores. Cases are aimed at one collection with a seed job, so that bodies get
past routing into the models and the store (see ``_aim``), and whatever a case changed is
undone after it (see ``_tidy``). schemathesis 4.32 emits no Python warnings on this run,
so ``filterwarnings = error`` needs no exception here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error

from scheduler.api import create_api
from scheduler.settings import load_settings
from tests.support.arm import API_VERSION, collection_path, error_code, http_job, put_job
from tests.support.stack import Stack
from tests.support.swagger import check_answer, validating_client

pytestmark = pytest.mark.e2e

#: Examples per operation in the generate phase (plus schemathesis' explicit/coverage cases).
EXAMPLES_PER_OPERATION = 15
PUBLIC_PATHS = {"/healthz"}

# A fuzzed job that happens to be valid is scheduled and run by the session's real worker:
# point every well-formed http(s) URI at a closed loopback port so such a run fails at once
# instead of calling whatever host hypothesis invented. Malformed URIs are left as they are,
# so the validation of ``uri`` is still fuzzed.
_WELL_FORMED_URI = re.compile(r"^https?://[^\s/]+", re.IGNORECASE)
_NOWHERE = "http://127.0.0.1:9"


def _defuse(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                _WELL_FORMED_URI.sub(_NOWHERE, item)
                if key == "uri" and isinstance(item, str)
                else _defuse(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_defuse(item) for item in value]
    return value


def _openapi_document() -> dict[str, Any]:
    """The document the API serves at /openapi.json, built from the app without running it.

    Collection needs the operations before the session's server exists, and schemathesis'
    fixture-based lazy loader reads ``Node._nodeid``, which pytest 9.2 no longer has. The
    requests themselves still go to the stack's real API process (``base_url`` below), and
    ``test_the_served_document_is_the_one_fuzzed`` checks that the two documents agree.
    """
    settings = load_settings({}, redis_url="redis://127.0.0.1:9/0", admin_token="unused")
    document: dict[str, Any] = create_api(settings).openapi()
    return document


schema = schemathesis.openapi.from_dict(_openapi_document())
# One seed for every run, so CI and a developer see the same cases (and the same failures).
schema.config.seed = 2016_03_01


_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
FUZZ_NAMES = {"subscriptionId": "fuzz", "resourceGroupName": "fuzz", "jobCollectionName": "fuzz"}
SEED_JOB = "seed"


def _seed_job() -> dict[str, Any]:
    return http_job(
        f"{_NOWHERE}/seed",
        start=datetime(2099, 1, 1, tzinfo=UTC),
        recurrence={"frequency": "Day", "interval": 1},
    )


def _restore(stack: Stack) -> None:
    """Put the fuzz collection and its seed job back as they were."""
    collection = collection_path("fuzz", sub="fuzz", rg="fuzz")
    response = stack.http.put(collection, params=API_VERSION, json={"location": "local"})
    assert response.status_code in (200, 201), response.text
    put_job(stack.http, collection, SEED_JOB, _seed_job())


@pytest.fixture
def fuzz_collection(stack: Stack) -> None:
    _restore(stack)


def _aim(case: Case[Any]) -> None:
    """Point a case at the fuzz collection so that it gets past routing into the models.

    Names and api-version have their own tests (test_api.py); random ones would only ever
    meet the same 400 and the bodies behind them would never be parsed. A PUT keeps its
    generated job name when it is a valid one; everything else addresses the seed job.
    """
    names = dict(case.path_parameters or {})
    for key in names:
        if key != "jobName":
            names[key] = FUZZ_NAMES.get(key, "fuzz")
        elif case.method.upper() != "PUT" or not _VALID_NAME.match(str(names[key])):
            names[key] = SEED_JOB
    case.path_parameters = names
    case.query = {**(case.query or {}), **API_VERSION}
    case.body = _defuse(case.body)


def _tidy(stack: Stack, case: Case[Any], status: int) -> None:
    """After a change went through, undo it: other tests share the beat and the worker."""
    if case.method.upper() in {"GET", "HEAD", "OPTIONS"} or not 200 <= status < 300:
        return
    job = case.path_parameters.get("jobName")
    if case.method.upper() == "PUT" and job not in (None, SEED_JOB):
        collection = collection_path("fuzz", sub="fuzz", rg="fuzz")
        stack.http.delete(f"{collection}/jobs/{job}", params=API_VERSION)
    _restore(stack)


def matches_microsofts_swagger(ctx: Any, response: Any, case: Case[Any]) -> None:
    """Every fuzzed ARM answer fits Microsoft's swagger, as every other answer of the API
    tests does (tests/support/swagger.py); schemathesis' own client is not an httpx one."""
    request = response.request
    check_answer(
        str(request.method), urlsplit(str(request.url)).path, response.status_code, response.content
    )


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_any_route_answer_5xx(
    case: Case[Any], stack: Stack, fuzz_collection: None
) -> None:
    _aim(case)
    response = case.call_and_validate(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {stack.token}"},
        checks=[not_a_server_error, matches_microsofts_swagger],
        timeout=10,
    )
    _tidy(stack, case, response.status_code)


def _integer_query_parameters(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (path, parameter["name"])
        for path, item in document["paths"].items()
        for parameter in item.get("get", {}).get("parameters", [])
        if parameter["in"] == "query" and "integer" in str(parameter.get("schema", {}))
    ]


@pytest.mark.parametrize("value", [-1, 2**63, 10**30], ids=["negative", "2^63", "10^30"])
def test_integer_query_parameters_at_the_extremes_are_not_server_errors(
    stack: Stack, fuzz_collection: None, value: int
) -> None:
    # The generated run may or may not reach these values; they are where an unbounded
    # integer meets Redis' 64-bit indexes, so every one is tried on every run.
    document = stack.http.get("/openapi.json").json()
    targets = _integer_query_parameters(document)
    assert targets, "no GET route takes an integer query parameter"
    answers = {}
    for path, name in targets:
        concrete = path.format_map({**FUZZ_NAMES, "jobName": SEED_JOB})
        response = stack.http.get(concrete, params={**API_VERSION, name: str(value)})
        answers[(path, name)] = response.status_code
    assert {target: code for target, code in answers.items() if code >= 500} == {}


def _concrete(path: str) -> str:
    """A path template with every ``{parameter}`` filled with a valid name."""
    return re.sub(r"\{[^}]+\}", "x1", path)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-takt-key"}, {"Authorization": "Basic YTpi"}],
    ids=["no-key", "wrong-key", "not-bearer"],
)
def test_every_documented_route_but_health_answers_401_without_a_valid_key(
    stack: Stack, headers: dict[str, str]
) -> None:
    # Given every (method, path) the API documents
    document = stack.http.get("/openapi.json").json()
    operations = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete"} and path not in PUBLIC_PATHS
    ]
    assert len(operations) >= 5, operations

    # When each is called without a valid key
    answers = {}
    with validating_client(base_url=stack.api_url, timeout=10) as client:
        for method, path in operations:
            response = client.request(
                method,
                _concrete(path),
                params={"api-version": "2016-03-01"},
                headers=headers,
                json={} if method in {"PUT", "PATCH", "POST"} else None,
            )
            answers[(method, path)] = (response.status_code, error_code(response))

    # Then each one is a 401 with an error body (ARM's; Service Management's XML on MSDN's
    # classic collection operations) saying AuthenticationFailed
    wrong = {
        operation: answer
        for operation, answer in answers.items()
        if answer != (401, "AuthenticationFailed")
    }
    assert wrong == {}


def test_the_served_document_is_the_one_fuzzed(stack: Stack) -> None:
    assert stack.http.get("/openapi.json").json() == _openapi_document()


def test_the_public_endpoints_need_no_key(stack: Stack) -> None:
    for path in ("/healthz", "/openapi.json", "/docs"):
        assert httpx.get(f"{stack.api_url}{path}").status_code == 200, path
