"""The Python client: requests it builds, paging, error mapping (over a mock transport; the
client against the real API is tests/e2e/test_client_live.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import scheduler.client
from scheduler.client import AsyncSchedulerClient, Collection, Job, SchedulerClient
from scheduler.domain.models import JobCollectionQuota, JobProperties, JobState
from scheduler.errors import (
    ApiError,
    AuthenticationFailed,
    ClientError,
    CollectionNotFound,
    Conflict,
    Forbidden,
    JobNotFound,
    NotFound,
    QuotaExceeded,
    TaktError,
    ValidationFailed,
)

BASE = "http://takt.test"
PREFIX = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Scheduler"

Handler = Callable[[httpx.Request], httpx.Response]


def properties(uri: str = "http://127.0.0.1:9/x", **extra: Any) -> dict[str, Any]:
    return {"action": {"type": "Http", "request": {"uri": uri, "method": "GET"}}, **extra}


def job_answer(collection: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"{PREFIX}/jobCollections/{collection}/jobs/{name}",
        "type": "Microsoft.Scheduler/jobCollections/jobs",
        "name": f"{collection}/{name}",
        "properties": {**properties(), "state": "Enabled", **extra},
    }


class Recorder:
    """A MockTransport handler that records requests and answers from a queue (or a default)."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self.answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0) if self.answers else httpx.Response(200)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(recorder: Recorder) -> Iterator[SchedulerClient]:
    with SchedulerClient(
        BASE,
        "secret-key",
        subscription="sub",
        resource_group="rg",
        transport=httpx.MockTransport(recorder),
    ) as takt:
        yield takt


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


# Exports


def test_the_package_exports_what_it_means_to() -> None:
    # ruff (RUF022) keeps the order sorted, constants first.
    assert scheduler.client.__all__ == [
        "API_VERSION",
        "USE_CLIENT_DEFAULT",
        "AsyncSchedulerClient",
        "Collection",
        "HistoryRecord",
        "Job",
        "Principal",
        "SchedulerClient",
        "UseClientDefault",
    ]


def test_both_clients_have_the_same_public_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    assert public(SchedulerClient) - {"close"} == public(AsyncSchedulerClient) - {"aclose"}


# Request building

JOB = f"{PREFIX}/jobCollections/c/jobs/j"
COLLECTION = f"{PREFIX}/jobCollections/c"
REQUESTS: list[tuple[str, Callable[[SchedulerClient], object], str, str, Any]] = [
    (
        "create-collection",
        lambda t: t.create_collection("c", sku="Standard", quota={"maxJobCount": 5}),
        "PUT",
        COLLECTION,
        {
            "location": "local",
            "properties": {"sku": {"name": "Standard"}, "quota": {"maxJobCount": 5}},
        },
    ),
    (
        "create-collection-quota-model",
        lambda t: t.create_collection(
            "c", location=None, quota=JobCollectionQuota(max_job_count=2)
        ),
        "PUT",
        COLLECTION,
        {"location": None, "properties": {"quota": {"maxJobCount": 2}}},
    ),
    ("get-collection", lambda t: t.get_collection("c"), "GET", COLLECTION, None),
    (
        "update-collection",
        lambda t: t.update_collection("c", {"tags": {"team": "billing"}}),
        "PATCH",
        COLLECTION,
        {"tags": {"team": "billing"}},
    ),
    ("delete-collection", lambda t: t.delete_collection("c"), "DELETE", COLLECTION, None),
    ("enable-collection", lambda t: t.enable_collection("c"), "POST", f"{COLLECTION}/enable", None),
    (
        "disable-collection",
        lambda t: t.disable_collection("c"),
        "POST",
        f"{COLLECTION}/disable",
        None,
    ),
    (
        "create-job-flat",
        lambda t: t.create_job("c", "j", properties()),
        "PUT",
        JOB,
        {"properties": properties()},
    ),
    (
        "create-job-envelope",
        lambda t: t.create_job("c", "j", {"properties": properties()}),
        "PUT",
        JOB,
        {"properties": properties()},
    ),
    (
        "create-job-model",
        lambda t: t.create_job("c", "j", JobProperties.model_validate(properties())),
        "PUT",
        JOB,
        {"properties": properties()},
    ),
    ("get-job", lambda t: t.get_job("c", "j"), "GET", JOB, None),
    (
        "update-job",
        lambda t: t.update_job("c", "j", {"recurrence": {"frequency": "Hour"}}),
        "PATCH",
        JOB,
        {"properties": {"recurrence": {"frequency": "Hour"}}},
    ),
    ("run-job", lambda t: t.run_job("c", "j"), "POST", f"{JOB}/run", None),
    (
        "enable-job",
        lambda t: t.enable_job("c", "j"),
        "PATCH",
        JOB,
        {"properties": {"state": "Enabled"}},
    ),
    (
        "disable-job",
        lambda t: t.disable_job("c", "j"),
        "PATCH",
        JOB,
        {"properties": {"state": "Disabled"}},
    ),
    (
        "rename-job",
        lambda t: t.rename_job("c", "j", "Nightly invoices"),
        "PATCH",
        JOB,
        {"properties": {"displayName": "Nightly invoices"}},
    ),
    (
        "chown-job",
        lambda t: t.change_owner("c", "j", "ops"),
        "PATCH",
        JOB,
        {"properties": {"owner": "ops"}},
    ),
    ("delete-job", lambda t: t.delete_job("c", "j"), "DELETE", JOB, None),
]


def answer_for(method: str, path: str) -> httpx.Response:
    if method in ("DELETE", "POST"):
        return httpx.Response(200)
    if "/jobs/" in path:
        return httpx.Response(200, json=job_answer("c", "j"))
    return httpx.Response(200, json={"name": "c", "location": "local", "properties": {}})


@pytest.mark.parametrize(
    ("call", "method", "path", "body"),
    [case[1:] for case in REQUESTS],
    ids=[case[0] for case in REQUESTS],
)
def test_each_method_sends_azures_request(
    recorder: Recorder,
    client: SchedulerClient,
    call: Callable[[SchedulerClient], object],
    method: str,
    path: str,
    body: Any,
) -> None:
    # Given an answer of the right shape
    recorder.answers.append(answer_for(method, path))

    # When the method is called
    call(client)

    # Then one request went out: method, path, api-version, key and body as Azure's
    [request] = recorder.requests
    assert (request.method, request.url.path) == (method, path)
    assert request.url.params["api-version"] == "2016-03-01"
    assert request.headers["Authorization"] == "Bearer secret-key"
    assert body_of(request) == body


def test_results_are_typed_records(recorder: Recorder, client: SchedulerClient) -> None:
    recorder.answers.append(httpx.Response(200, json=job_answer("c", "j", displayName="Nightly")))

    job = client.get_job("c", "j")

    assert isinstance(job, Job)
    assert (job.collection, job.name, job.id) == ("c", "j", JOB)
    assert job.properties.state is JobState.ENABLED
    assert job.properties.display_name == "Nightly"
    assert job.to_wire()["name"] == "c/j"


def test_names_are_quoted_into_one_path_segment(
    recorder: Recorder, client: SchedulerClient
) -> None:
    recorder.answers.append(httpx.Response(200))

    client.delete_job("a b", "x/y")

    assert recorder.last.url.raw_path.decode().startswith(
        f"{PREFIX}/jobCollections/a%20b/jobs/x%2Fy?"
    )


@pytest.mark.parametrize(
    ("group", "path"),
    [
        ("rg", f"{PREFIX}/jobCollections"),
        ("other", f"{PREFIX.replace('/rg/', '/other/')}/jobCollections"),
        (None, "/subscriptions/sub/providers/Microsoft.Scheduler/jobCollections"),
    ],
    ids=["own-group", "another-group", "whole-subscription"],
)
def test_list_collections_by_group_or_subscription(
    recorder: Recorder, client: SchedulerClient, group: str | None, path: str
) -> None:
    recorder.answers.append(
        httpx.Response(200, json={"value": [{"name": "c", "location": "local", "properties": {}}]})
    )

    found = client.list_collections() if group == "rg" else client.list_collections(group)

    assert recorder.last.url.path == path
    assert found == [Collection(name="c", location="local", properties=found[0].properties)]


def test_filters_and_top_are_odata_query_parameters(
    recorder: Recorder, client: SchedulerClient
) -> None:
    recorder.answers += [httpx.Response(200, json={"value": []})] * 2

    client.list_jobs("c", state=JobState.DISABLED, top=5)
    client.history("c", "j", status="Failed")

    jobs_request, history_request = recorder.requests
    assert jobs_request.url.params["$filter"] == "state eq 'Disabled'"
    assert jobs_request.url.params["$top"] == "5"
    assert history_request.url.path == f"{JOB}/history"
    assert history_request.url.params["$filter"] == "status eq 'Failed'"
    assert "$top" not in history_request.url.params


def test_occurrences_are_aware_datetimes(recorder: Recorder, client: SchedulerClient) -> None:
    answer = {"value": ["2030-01-01T09:00:00Z", "2030-01-02T09:00:00Z"]}
    recorder.answers.append(httpx.Response(200, json=answer))

    moments = client.occurrences("c", "j", count=2)

    assert recorder.last.url.params["count"] == "2"
    assert moments == [datetime(2030, 1, 1, 9, tzinfo=UTC), datetime(2030, 1, 2, 9, tzinfo=UTC)]


def test_principals_routes_need_no_api_version(recorder: Recorder, client: SchedulerClient) -> None:
    recorder.answers += [
        httpx.Response(201, json={"name": "ci", "role": "reader", "key": "takt_new"}),
        httpx.Response(200, json={"value": [{"name": "ci", "role": "reader"}]}),
        httpx.Response(200),
    ]

    key = client.add_principal("ci", "reader")
    listed = client.list_principals()
    client.revoke_principal("ci")

    assert key == "takt_new"
    assert [(p.name, p.role) for p in listed] == [("ci", "reader")]
    assert [(r.method, r.url.path) for r in recorder.requests] == [
        ("POST", "/principals"),
        ("GET", "/principals"),
        ("DELETE", "/principals/ci"),
    ]
    assert body_of(recorder.requests[0]) == {"name": "ci", "role": "reader"}
    assert all("api-version" not in r.url.params for r in recorder.requests)


# Paging


def page(names: list[str], next_link: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"value": [job_answer("c", name) for name in names]}
    if next_link:
        body["nextLink"] = next_link
    return httpx.Response(200, json=body)


def test_lists_follow_next_link_to_the_last_page(
    recorder: Recorder, client: SchedulerClient
) -> None:
    # Given three pages linked by absolute nextLinks
    link = f"{BASE}{COLLECTION}/jobs?api-version=2016-03-01&$skip="
    recorder.answers += [page(["a", "b"], link + "2"), page(["c", "d"], link + "4"), page(["e"])]

    # When the jobs are listed
    jobs = client.list_jobs("c")

    # Then every page was fetched, the links as given, with the key
    assert [job.name for job in jobs] == ["a", "b", "c", "d", "e"]
    assert [str(r.url) for r in recorder.requests[1:]] == [link + "2", link + "4"]
    assert all(r.headers["Authorization"] == "Bearer secret-key" for r in recorder.requests)


def test_top_caps_the_items_and_stops_paging(recorder: Recorder, client: SchedulerClient) -> None:
    link = f"{BASE}{COLLECTION}/jobs?api-version=2016-03-01&$top=3&$skip=3"
    recorder.answers += [page(["a", "b", "c"], link), page(["d", "e", "f"])]

    jobs = client.list_jobs("c", top=3)

    assert [job.name for job in jobs] == ["a", "b", "c"]
    assert len(recorder.requests) == 1


def test_a_next_link_to_another_origin_is_not_followed(
    recorder: Recorder, client: SchedulerClient
) -> None:
    recorder.answers.append(page(["a"], "https://elsewhere.example/steal?api-version=2016-03-01"))

    with pytest.raises(ClientError, match=r"elsewhere\.example"):
        client.list_jobs("c")

    assert len(recorder.requests) == 1


# Error mapping


def arm_error(status: int, code: str, message: str = "the server's words") -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "BadRequest", ValidationFailed),
        (401, "AuthenticationFailed", AuthenticationFailed),
        (403, "AuthorizationFailed", Forbidden),
        (404, "JobNotFound", JobNotFound),
        (404, "JobCollectionNotFound", CollectionNotFound),
        (404, "NotFound", NotFound),
        (409, "QuotaExceeded", QuotaExceeded),
        (409, "Conflict", Conflict),
        (503, "ServiceUnavailable", ApiError),
        (405, "MethodNotAllowed", ApiError),
    ],
    ids=lambda value: str(value) if not isinstance(value, type) else value.__name__,
)
def test_error_answers_become_the_projects_exceptions(
    recorder: Recorder, client: SchedulerClient, status: int, code: str, expected: type[TaktError]
) -> None:
    recorder.answers.append(arm_error(status, code))

    with pytest.raises(expected) as raised:
        client.get_job("c", "j")

    assert type(raised.value) is expected
    assert str(raised.value) == "the server's words"


def test_other_statuses_keep_status_and_code(recorder: Recorder, client: SchedulerClient) -> None:
    recorder.answers.append(arm_error(503, "ServiceUnavailable", "redis is down"))

    with pytest.raises(ApiError) as raised:
        client.get_collection("c")

    assert (raised.value.status, raised.value.code) == (503, "ServiceUnavailable")
    assert isinstance(raised.value, ClientError)


def test_a_400_names_its_field(recorder: Recorder, client: SchedulerClient) -> None:
    message = "properties.action.request.uri: must be an absolute http:// or https:// URI"
    recorder.answers.append(arm_error(400, "BadRequest", message))

    with pytest.raises(ValidationFailed) as raised:
        client.create_job("c", "j", properties("nope"))

    assert raised.value.field == "properties.action.request.uri"
    assert str(raised.value) == message


def test_an_error_without_an_arm_body_is_an_api_error(
    recorder: Recorder, client: SchedulerClient
) -> None:
    recorder.answers.append(httpx.Response(502, text="<html>Bad Gateway</html>"))

    with pytest.raises(ApiError, match="Bad Gateway") as raised:
        client.get_job("c", "j")

    assert (raised.value.status, raised.value.code) == (502, "")


def test_a_success_with_a_body_that_is_not_the_apis_is_a_client_error(
    recorder: Recorder, client: SchedulerClient
) -> None:
    recorder.answers.append(httpx.Response(200, json={"surprise": True}))

    with pytest.raises(ClientError, match="unexpected answer"):
        client.get_job("c", "j")


def test_transport_errors_become_client_errors_chained() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        SchedulerClient(BASE, "k", transport=httpx.MockTransport(refuse)) as takt,
        pytest.raises(ClientError, match="connection refused") as raised,
    ):
        takt.get_job("c", "j")

    assert isinstance(raised.value.__cause__, httpx.ConnectError)


# The async client shares the request layer


def test_the_async_client_sends_the_same_requests_and_pages() -> None:
    recorder = Recorder(
        page(["a"], f"{BASE}{COLLECTION}/jobs?api-version=2016-03-01&$skip=1"),
        page(["b"]),
        arm_error(404, "JobNotFound", "job 'x' not found"),
    )

    async def scenario() -> list[Job]:
        transport = httpx.MockTransport(recorder)
        async with AsyncSchedulerClient(
            BASE, "k", subscription="sub", resource_group="rg", transport=transport
        ) as takt:
            jobs = await takt.list_jobs("c")
            with pytest.raises(JobNotFound, match="job 'x' not found"):
                await takt.get_job("c", "x")
            return jobs

    jobs = asyncio.run(scenario())

    assert [job.name for job in jobs] == ["a", "b"]
    assert recorder.requests[0].url.path == f"{COLLECTION}/jobs"
