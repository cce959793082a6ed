"""Microsoft's ``azure-mgmt-scheduler`` 7.0.0, unchanged, against the stack's real API.

Every operation the SDK offers is driven at least once, and each test checks what came back
(deserialised by the SDK's own models), not only that nothing was raised. The client is
configured the way ``docs/azure-compatibility.md`` tells users to configure it: ``base_url``
pointing at Takt, a ``TokenCredential`` that hands out a Takt API key, and a per-call policy
that allows a bearer token over plain ``http://`` (the test API listens on loopback).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.scheduler import SchedulerManagementClient
from azure.mgmt.scheduler.models import (
    BasicAuthentication,
    HttpRequest,
    JobAction,
    JobCollectionDefinition,
    JobCollectionProperties,
    JobCollectionQuota,
    JobDefinition,
    JobMaxRecurrence,
    JobProperties,
    JobRecurrence,
    JobRecurrenceSchedule,
    JobRecurrenceScheduleMonthlyOccurrence,
    RetryPolicy,
    ServiceBusQueueMessage,
    ServiceBusTopicMessage,
    Sku,
    StorageQueueMessage,
)

from tests.support.helpers import HttpTarget, wait_until
from tests.support.stack import Stack
from tests.support.swagger import check_answer

pytestmark = pytest.mark.e2e

#: Far enough ahead that no job of these tests fires on its own.
FAR = datetime(2099, 1, 1, 9, 0, tzinfo=UTC)
RG = "rg-sdk"


class ApiKeyCredential:
    """An ``azure.core.credentials.TokenCredential`` whose token is a Takt API key.

    Takt does not talk to Microsoft Entra ID: its bearer tokens are its own API keys, so the
    credential ignores the scopes and hands out the key, valid for an hour (the SDK asks
    again when it nears expiry).
    """

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._api_key, int(time.time()) + 3600)


class AllowPlainHttp(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Lets azure-core's bearer policy send the key to an ``http://`` URL.

    ``BearerTokenCredentialPolicy`` refuses non-https URLs unless the request context says
    ``enforce_https=False``; this per-call policy runs before it and says so for every request
    (pages and LRO polls included). Use it for loopback only; put Takt behind TLS otherwise.
    """

    def on_request(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        request.context["enforce_https"] = False


class MatchesMicrosoftsSwagger(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Every answer the SDK receives must fit Microsoft's swagger (tests/support/swagger.py)."""

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:  # type: ignore[type-arg]
        http = response.http_response
        path = urlsplit(request.http_request.url).path
        check_answer(request.http_request.method, path, http.status_code, http.body())


def make_client(stack: Stack, subscription: str, api_key: str | None = None) -> Any:
    return SchedulerManagementClient(
        ApiKeyCredential(api_key or stack.token),
        subscription,
        base_url=stack.api_url,
        per_call_policies=[AllowPlainHttp(), MatchesMicrosoftsSwagger()],
        polling_interval=0.1,
        # A failure should surface at once, not after the SDK's backoff retries.
        retry_total=0,
    )


@dataclass
class Sdk:
    """An SDK client on a subscription of its own, so listings see only this test's things."""

    client: Any
    subscription: str

    def new_collection(self, rg: str = RG) -> str:
        name = f"coll-{uuid.uuid4().hex[:8]}"
        self.client.job_collections.create_or_update(rg, name, collection_definition())
        return name


@pytest.fixture
def sdk(stack: Stack) -> Iterator[Sdk]:
    subscription = f"sub-{uuid.uuid4().hex[:10]}"
    client = make_client(stack, subscription)
    try:
        yield Sdk(client, subscription)
    finally:
        client.close()


def with_status(response: PipelineResponse, deserialized: Any, _: Any) -> tuple[int, Any]:  # type: ignore[type-arg]
    """The SDK's ``cls`` hook: keep the HTTP status next to the deserialised model."""
    return response.http_response.status_code, deserialized


def arm_error(error: HttpResponseError) -> tuple[str, str]:
    """The ``code`` and ``message`` of the ARM error body, as the SDK parsed them."""
    assert error.error is not None, error
    return str(error.error.code), str(error.error.message)


def collection_definition(**tags: str) -> JobCollectionDefinition:
    return JobCollectionDefinition(
        location="local",
        tags=tags or None,
        properties=JobCollectionProperties(
            sku=Sku(name="Standard"),
            quota=JobCollectionQuota(
                max_job_count=100,
                max_recurrence=JobMaxRecurrence(frequency="Minute", interval=1),
            ),
        ),
    )


def http_action(uri: str, method: str = "GET", kind: str = "Http") -> JobAction:
    return JobAction(
        type=kind,
        request=HttpRequest(uri=uri, method=method),
        retry_policy=RetryPolicy(retry_type="None"),
    )


def daily_job(action: JobAction, state: str | None = None) -> JobDefinition:
    return JobDefinition(
        properties=JobProperties(
            start_time=FAR,
            action=action,
            recurrence=JobRecurrence(frequency="Day", interval=1),
            state=state,
        )
    )


def names_of(items: Any) -> set[str]:
    """Job names without their collection prefix (ARM names jobs ``collection/job``)."""
    return {item.name.rsplit("/", 1)[-1] for item in items}


# -- job collections --------------------------------------------------------------------------


def test_collection_create_is_201_replace_is_200_and_get_returns_it(sdk: Sdk) -> None:
    ops = sdk.client.job_collections
    name = f"coll-{uuid.uuid4().hex[:8]}"

    # When the collection is created, then replaced with tags
    created_status, created = ops.create_or_update(
        RG, name, collection_definition(), cls=with_status
    )
    replaced_status, replaced = ops.create_or_update(
        RG, name, collection_definition(team="a"), cls=with_status
    )
    fetched = ops.get(RG, name)

    # Then the codes are ARM's and the SDK reads back what was written
    assert (created_status, replaced_status) == (201, 200)
    expected_id = (
        f"/subscriptions/{sdk.subscription}/resourceGroups/{RG}"
        f"/providers/Microsoft.Scheduler/jobCollections/{name}"
    )
    for collection in (created, replaced, fetched):
        assert collection.id == expected_id
        assert collection.name == name
        assert collection.type == "Microsoft.Scheduler/jobCollections"
        assert collection.location == "local"
        assert collection.properties.sku.name == "Standard"
        assert collection.properties.quota.max_job_count == 100
        assert collection.properties.quota.max_recurrence.frequency == "Minute"
    assert created.tags is None
    assert replaced.tags == fetched.tags == {"team": "a"}


def test_collections_are_listed_by_subscription_and_by_resource_group(sdk: Sdk) -> None:
    # Given two collections in one resource group and one in another
    in_a = {sdk.new_collection("rg-a"), sdk.new_collection("rg-a")}
    in_b = {sdk.new_collection("rg-b")}

    # When they are listed
    by_subscription = list(sdk.client.job_collections.list_by_subscription())
    by_group_a = list(sdk.client.job_collections.list_by_resource_group("rg-a"))
    by_group_b = list(sdk.client.job_collections.list_by_resource_group("rg-b"))

    # Then each listing holds exactly its own, as full definitions
    assert {c.name for c in by_subscription} == in_a | in_b
    assert {c.name for c in by_group_a} == in_a
    assert {c.name for c in by_group_b} == in_b
    assert all(c.location == "local" for c in by_subscription)
    assert all("/resourceGroups/rg-a/" in c.id for c in by_group_a)


def test_collection_patch_changes_what_it_names_and_keeps_the_rest(sdk: Sdk) -> None:
    name = sdk.new_collection()

    # When only the tags are patched
    patched = sdk.client.job_collections.patch(
        RG, name, JobCollectionDefinition(tags={"owner": "ops"})
    )

    # Then the tags changed and location, sku and quota stayed
    fetched = sdk.client.job_collections.get(RG, name)
    for collection in (patched, fetched):
        assert collection.tags == {"owner": "ops"}
        assert collection.location == "local"
        assert collection.properties.sku.name == "Standard"
        assert collection.properties.quota.max_job_count == 100


def test_collection_disable_and_enable_switch_every_job(sdk: Sdk) -> None:
    # Given a collection with three enabled jobs
    name = sdk.new_collection()
    jobs = [f"job-{i}" for i in range(3)]
    for job in jobs:
        sdk.client.jobs.create_or_update(RG, name, job, daily_job(http_action("http://x.test/")))

    def states() -> set[str]:
        return {sdk.client.jobs.get(RG, name, job).properties.state for job in jobs}

    # When the collection is disabled (a long-running operation for the SDK)
    disabling = sdk.client.job_collections.begin_disable(RG, name)
    disabling.result(timeout=10)

    # Then the poller finished and every job is Disabled
    assert disabling.done()
    assert disabling.status() == "Succeeded"
    assert states() == {"Disabled"}

    # When it is enabled again, every job is Enabled and scheduled where it was
    enabling = sdk.client.job_collections.begin_enable(RG, name)
    enabling.result(timeout=10)
    assert enabling.status() == "Succeeded"
    assert states() == {"Enabled"}
    for job in jobs:
        assert sdk.client.jobs.get(RG, name, job).properties.status.next_execution_time == FAR


def test_collection_delete_removes_it_and_its_jobs(sdk: Sdk) -> None:
    # Given a collection with a job
    name = sdk.new_collection()
    sdk.client.jobs.create_or_update(RG, name, "doomed", daily_job(http_action("http://x.test/")))

    # When it is deleted (a long-running operation for the SDK)
    deleting = sdk.client.job_collections.begin_delete(RG, name)
    deleting.result(timeout=10)

    # Then neither it nor its job can be read, and it is not listed
    assert deleting.status() == "Succeeded"
    with pytest.raises(ResourceNotFoundError) as missing:
        sdk.client.job_collections.get(RG, name)
    assert missing.value.status_code == 404
    with pytest.raises(ResourceNotFoundError):
        sdk.client.jobs.get(RG, name, "doomed")
    assert name not in {c.name for c in sdk.client.job_collections.list_by_resource_group(RG)}


# -- jobs: create_or_update and get ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["Http", "Https"])
def test_http_jobs_are_created_replaced_and_read_back(sdk: Sdk, kind: str) -> None:
    name = sdk.new_collection()
    scheme = kind.lower()
    request = HttpRequest(
        uri=f"{scheme}://example.test/hook?x=1",
        method="POST",
        headers={"Content-Type": "application/json", "X-Custom": "yes"},
        body='{"hello": "world"}',
        authentication=BasicAuthentication(username="user", password="hunter2"),
    )
    action = JobAction(
        type=kind,
        request=request,
        retry_policy=RetryPolicy(
            retry_type="Fixed", retry_interval=timedelta(minutes=2), retry_count=3
        ),
    )

    # When the job is created and then replaced with another method
    created_status, created = sdk.client.jobs.create_or_update(
        RG, name, "web", daily_job(action), cls=with_status
    )
    request.method = "PUT"
    replaced_status, replaced = sdk.client.jobs.create_or_update(
        RG, name, "web", daily_job(action), cls=with_status
    )
    fetched = sdk.client.jobs.get(RG, name, "web")

    # Then 201 then 200, and the SDK's models hold every field (secrets empty)
    assert (created_status, replaced_status) == (201, 200)
    assert created.properties.action.request.method == "POST"
    for job in (replaced, fetched):
        assert job.id.endswith(f"/jobCollections/{name}/jobs/web")
        assert job.name == f"{name}/web"
        assert job.type == "Microsoft.Scheduler/jobCollections/jobs"
        props = job.properties
        assert props.state == "Enabled"
        assert props.start_time == FAR
        assert props.status.next_execution_time == FAR
        assert props.status.execution_count == 0
        assert props.action.type == kind
        got = props.action.request
        assert (got.uri, got.method) == (f"{scheme}://example.test/hook?x=1", "PUT")
        assert got.headers == {"Content-Type": "application/json", "X-Custom": "yes"}
        assert got.body == '{"hello": "world"}'
        assert isinstance(got.authentication, BasicAuthentication)
        assert got.authentication.username == "user"
        assert got.authentication.password == ""
        retry = props.action.retry_policy
        assert (retry.retry_type, retry.retry_count) == ("Fixed", 3)
        assert retry.retry_interval == timedelta(minutes=2)
        assert props.recurrence.frequency == "Day"


def test_storage_queue_jobs_are_created_and_read_back(sdk: Sdk) -> None:
    name = sdk.new_collection()
    action = JobAction(
        type="StorageQueue",
        queue_message=StorageQueueMessage(
            storage_account="devstoreaccount1",
            queue_name="orders",
            sas_token="sv=2019&sig=secret",
            message="do it",
        ),
    )

    status, created = sdk.client.jobs.create_or_update(
        RG, name, "queue", daily_job(action), cls=with_status
    )
    fetched = sdk.client.jobs.get(RG, name, "queue")

    assert status == 201
    for job in (created, fetched):
        message = job.properties.action.queue_message
        assert job.properties.action.type == "StorageQueue"
        assert (message.storage_account, message.queue_name) == ("devstoreaccount1", "orders")
        assert message.message == "do it"
        assert message.sas_token == ""


@pytest.mark.parametrize(
    "action",
    [
        JobAction(
            type="ServiceBusQueue",
            service_bus_queue_message=ServiceBusQueueMessage(
                namespace="ns", queue_name="q", message="m", transport_type="AMQP"
            ),
        ),
        JobAction(
            type="ServiceBusTopic",
            service_bus_topic_message=ServiceBusTopicMessage(
                namespace="ns", topic_path="t", message="m", transport_type="AMQP"
            ),
        ),
    ],
    ids=["ServiceBusQueue", "ServiceBusTopic"],
)
def test_service_bus_jobs_azure_would_refuse_are_refused_with_a_400(
    sdk: Sdk, action: JobAction
) -> None:
    # Given a Service Bus job whose namespace Azure refuses ("ns": under 6 characters)
    name = sdk.new_collection()

    with pytest.raises(HttpResponseError) as refused:
        sdk.client.jobs.create_or_update(RG, name, "bus", daily_job(action))

    assert refused.value.status_code == 400
    code, message = arm_error(refused.value)
    assert code == "BadRequest"
    assert "Message.namespace: 'ns' does not fit: 6 to 50 letters" in message
    with pytest.raises(ResourceNotFoundError):
        sdk.client.jobs.get(RG, name, "bus")


def test_advanced_schedules_round_trip_and_plan_the_right_instants(sdk: Sdk) -> None:
    name = sdk.new_collection()
    weekly = JobRecurrence(
        frequency="Week",
        interval=1,
        schedule=JobRecurrenceSchedule(
            week_days=["Monday", "Friday"], hours=[9, 17], minutes=[0, 30]
        ),
    )
    monthly = JobRecurrence(
        frequency="Month",
        interval=1,
        schedule=JobRecurrenceSchedule(
            monthly_occurrences=[
                JobRecurrenceScheduleMonthlyOccurrence(day="Monday", occurrence=1),
                JobRecurrenceScheduleMonthlyOccurrence(day="Friday", occurrence=-1),
            ]
        ),
    )
    action = http_action("http://x.test/")

    # When both are created
    for job, recurrence in (("weekly", weekly), ("monthly", monthly)):
        definition = JobDefinition(
            properties=JobProperties(start_time=FAR, action=action, recurrence=recurrence)
        )
        sdk.client.jobs.create_or_update(RG, name, job, definition)
    week = sdk.client.jobs.get(RG, name, "weekly").properties
    month = sdk.client.jobs.get(RG, name, "monthly").properties

    # Then the schedules read back as written
    schedule = week.recurrence.schedule
    assert (week.recurrence.frequency, week.recurrence.interval) == ("Week", 1)
    assert schedule.week_days == ["Monday", "Friday"]
    assert (schedule.hours, schedule.minutes) == ([9, 17], [0, 30])
    occurrences = month.recurrence.schedule.monthly_occurrences
    assert [(o.day, o.occurrence) for o in occurrences] == [("Monday", 1), ("Friday", -1)]

    # and the next execution is the first instant on or after startTime that fits the rule:
    # 2099-01-01 is a Thursday, so Friday 2 January at 09:00; the first Monday is 5 January
    assert week.status.next_execution_time == datetime(2099, 1, 2, 9, 0, tzinfo=UTC)
    assert month.status.next_execution_time == datetime(2099, 1, 5, 9, 0, tzinfo=UTC)


# -- jobs: list, patch, delete ---------------------------------------------------------------


def test_job_list_filters_by_state(sdk: Sdk) -> None:
    # Given three enabled and two disabled jobs
    name = sdk.new_collection()
    action = http_action("http://x.test/")
    enabled = {f"on-{i}" for i in range(3)}
    disabled = {f"off-{i}" for i in range(2)}
    for job in enabled:
        sdk.client.jobs.create_or_update(RG, name, job, daily_job(action))
    for job in disabled:
        sdk.client.jobs.create_or_update(RG, name, job, daily_job(action, state="Disabled"))

    # When they are listed with and without a state filter
    everything = list(sdk.client.jobs.list(RG, name))
    only_enabled = list(sdk.client.jobs.list(RG, name, filter="state eq 'Enabled'"))
    only_disabled = list(sdk.client.jobs.list(RG, name, filter="state eq 'Disabled'"))

    # Then each listing holds exactly the matching jobs, as full definitions
    assert names_of(everything) == enabled | disabled
    assert names_of(only_enabled) == enabled
    assert names_of(only_disabled) == disabled
    assert {job.properties.state for job in only_enabled} == {"Enabled"}
    assert all(job.properties.action.request.uri == "http://x.test/" for job in everything)


def test_job_list_pages_through_every_job(sdk: Sdk) -> None:
    # Given seven jobs
    name = sdk.new_collection()
    action = http_action("http://x.test/")
    jobs = {f"job-{i:02d}" for i in range(7)}
    for job in jobs:
        sdk.client.jobs.create_or_update(RG, name, job, daily_job(action))

    # When they are listed three at a time
    pages = [list(page) for page in sdk.client.jobs.list(RG, name, top=3).by_page()]

    # Then the SDK follows nextLink across three pages and sees each job once
    assert [len(page) for page in pages] == [3, 3, 1]
    seen = [job for page in pages for job in page]
    assert names_of(seen) == jobs
    assert len(seen) == len(jobs)
    # and $skip starts further in
    assert len(list(sdk.client.jobs.list(RG, name, top=3, skip=5))) == 2


def test_job_patch_changes_the_state_and_keeps_every_other_field(sdk: Sdk) -> None:
    # Given an enabled job with headers and a weekly schedule
    name = sdk.new_collection()
    action = JobAction(
        type="Http",
        request=HttpRequest(uri="http://x.test/keep", method="POST", headers={"X-Keep": "me"}),
        retry_policy=RetryPolicy(retry_type="None"),
    )
    recurrence = JobRecurrence(
        frequency="Week", interval=2, schedule=JobRecurrenceSchedule(week_days=["Tuesday"])
    )
    definition = JobDefinition(
        properties=JobProperties(start_time=FAR, action=action, recurrence=recurrence)
    )
    sdk.client.jobs.create_or_update(RG, name, "keep", definition)

    # When only its state is patched
    patch = JobDefinition(properties=JobProperties(state="Disabled"))
    patched = sdk.client.jobs.patch(RG, name, "keep", patch)

    # Then it is Disabled and the rest is as it was
    fetched = sdk.client.jobs.get(RG, name, "keep")
    for job in (patched, fetched):
        props = job.properties
        assert props.state == "Disabled"
        assert props.start_time == FAR
        assert props.action.type == "Http"
        assert props.action.request.uri == "http://x.test/keep"
        assert props.action.request.method == "POST"
        assert props.action.request.headers == {"X-Keep": "me"}
        assert props.action.retry_policy.retry_type == "None"
        assert (props.recurrence.frequency, props.recurrence.interval) == ("Week", 2)
        assert props.recurrence.schedule.week_days == ["Tuesday"]


def test_job_delete_removes_it(sdk: Sdk) -> None:
    name = sdk.new_collection()
    action = http_action("http://x.test/")
    sdk.client.jobs.create_or_update(RG, name, "gone", daily_job(action))
    sdk.client.jobs.create_or_update(RG, name, "stays", daily_job(action))

    assert sdk.client.jobs.delete(RG, name, "gone") is None

    with pytest.raises(ResourceNotFoundError) as missing:
        sdk.client.jobs.get(RG, name, "gone")
    assert missing.value.status_code == 404
    assert names_of(sdk.client.jobs.list(RG, name)) == {"stays"}


# -- jobs: run and history --------------------------------------------------------------------


def history_of(sdk: Sdk, collection: str, job: str, **query: Any) -> list[Any]:
    return list(sdk.client.jobs.list_job_history(RG, collection, job, **query))


def run_and_wait(sdk: Sdk, collection: str, job: str, entries: int) -> None:
    """Run the job now and wait until its history holds ``entries`` entries."""
    assert sdk.client.jobs.run(RG, collection, job) is None
    wait_until(
        lambda: len(history_of(sdk, collection, job)) >= entries,
        timeout=15,
        interval=0.1,
        message=f"{entries} history entries of {job}",
    )


def test_run_calls_the_target_now_and_writes_history(sdk: Sdk, target: HttpTarget) -> None:
    # Given a job whose schedule starts in 2099
    name = sdk.new_collection()
    sdk.client.jobs.create_or_update(
        RG, name, "now", daily_job(http_action(f"{target.url}/run-now", method="POST"))
    )

    # When it is run by hand
    run_and_wait(sdk, name, "now", entries=1)

    # Then the target got the call, history says Completed, the schedule is unchanged
    assert [r.method for r in target.requests_to("/run-now")] == ["POST"]
    [entry] = history_of(sdk, name, "now")
    assert entry.name.startswith(f"{name}/now/")
    assert entry.type == "Microsoft.Scheduler/jobCollections/jobs/history"
    assert entry.properties.status == "Completed"
    assert entry.properties.action_name == "MainAction"
    assert "200" in entry.properties.message
    assert entry.properties.start_time <= entry.properties.end_time
    job = sdk.client.jobs.get(RG, name, "now").properties
    assert job.state == "Enabled"
    assert job.status.execution_count == 1
    assert job.status.next_execution_time == FAR


def test_run_of_a_disabled_job_is_a_409(sdk: Sdk, target: HttpTarget) -> None:
    name = sdk.new_collection()
    action = http_action(f"{target.url}/never")
    sdk.client.jobs.create_or_update(RG, name, "off", daily_job(action, state="Disabled"))

    with pytest.raises(HttpResponseError) as refused:
        sdk.client.jobs.run(RG, name, "off")

    # The SDK maps 409 to ResourceExistsError, a subclass of HttpResponseError.
    assert isinstance(refused.value, ResourceExistsError)
    assert refused.value.status_code == 409
    code, message = arm_error(refused.value)
    assert code == "Conflict"
    assert "disabled" in message.lower()
    assert history_of(sdk, name, "off") == []


def test_history_filters_by_status_and_pages_newest_first(sdk: Sdk, target: HttpTarget) -> None:
    # Given a job run three times: success, failure (the target answers 500), success
    name = sdk.new_collection()
    sdk.client.jobs.create_or_update(
        RG, name, "flaky", daily_job(http_action(f"{target.url}/flaky"))
    )
    run_and_wait(sdk, name, "flaky", entries=1)
    target.answer("/flaky", 500, b"kaputt")
    run_and_wait(sdk, name, "flaky", entries=2)
    target.answer("/flaky", 200, b"ok")
    run_and_wait(sdk, name, "flaky", entries=3)

    # When the history is read filtered by status
    failed = history_of(sdk, name, "flaky", filter="status eq 'Failed'")
    completed = history_of(sdk, name, "flaky", filter="status eq 'Completed'")

    # Then each filter returns exactly its entries
    assert [e.properties.status for e in failed] == ["Failed"]
    assert "500" in failed[0].properties.message
    assert [e.properties.status for e in completed] == ["Completed", "Completed"]

    # When it is read one entry per page
    pager = sdk.client.jobs.list_job_history(RG, name, "flaky", top=1)
    pages = [list(page) for page in pager.by_page()]

    # Then the SDK follows nextLink over three pages, newest first
    assert [len(page) for page in pages] == [1, 1, 1]
    statuses = [page[0].properties.status for page in pages]
    assert statuses == ["Completed", "Failed", "Completed"]
    starts = [page[0].properties.start_time for page in pages]
    assert starts == sorted(starts, reverse=True)
    assert len({page[0].id for page in pages}) == 3
    job = sdk.client.jobs.get(RG, name, "flaky").properties
    assert (job.status.execution_count, job.status.failure_count) == (3, 1)


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda client: list(client.job_collections.list_by_subscription()),
        lambda client: client.job_collections.get(RG, "any"),
        lambda client: client.jobs.get(RG, "any", "job"),
    ],
    ids=["list", "get-collection", "get-job"],
)
def test_a_wrong_key_is_a_client_authentication_error(
    stack: Stack, call: Callable[[Any], Any]
) -> None:
    client = make_client(stack, "sub-wrong", api_key="not-a-takt-key")
    try:
        with pytest.raises(ClientAuthenticationError) as refused:
            call(client)
    finally:
        client.close()
    assert refused.value.status_code == 401
