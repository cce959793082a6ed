"""ServiceBusQueue and ServiceBusTopic jobs made with Microsoft's SDK models fire on a real
deployment (API, beat and worker processes) and reach a local Service Bus.

The deployment is this module's own: its workers have ``TAKT_SERVICE_BUS_ENDPOINT`` pointed
at the local Service Bus (tests/support/service_bus.py, a strict HTTPS server that checks
each token's signature with the key) and trust its CA through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.mgmt.scheduler.models import (
    JobAction,
    JobCollectionDefinition,
    JobDefinition,
    JobErrorAction,
    JobProperties,
    RetryPolicy,
    ServiceBusAuthentication,
    ServiceBusBrokeredMessageProperties,
    ServiceBusQueueMessage,
    ServiceBusTopicMessage,
)

from scheduler.dispatch import ACTION_ROUTES
from scheduler.domain.models import ActionType
from tests.e2e.test_azure_sdk import make_client
from tests.support.helpers import wait_until
from tests.support.service_bus import LocalServiceBus, start_service_bus
from tests.support.stack import Stack, start_stack, stop_stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        ActionType.SERVICE_BUS_QUEUE not in ACTION_ROUTES,
        reason="scheduler/dispatch/routing.py has no route (task and queue) for Service Bus "
        "actions yet, so no beat could publish these jobs",
    ),
]

NAMESPACE = "contoso-e2e"
KEY_NAME = "SchedulerSend"
KEY = "ZTJlLXNlcnZpY2UtYnVzLWtleS1mb3ItdGFrdC10ZXN0cw=="
RG = "rg-bus"


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServiceBus]:
    local = start_service_bus(tmp_path_factory.mktemp("service-bus"))
    for entity in ("orders", "alerts/eu"):
        local.create(NAMESPACE, entity, KEY_NAME, KEY)
    try:
        yield local
    finally:
        local.close()


@pytest.fixture(scope="module")
def bus_stack(
    redis_url: str, bus: LocalServiceBus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {"TAKT_SERVICE_BUS_ENDPOINT": bus.endpoint_template, "SSL_CERT_FILE": bus.ca_file}
    stack, _ = start_stack(redis_url, tmp_path_factory.mktemp("bus-stack"), extra_env=env)
    yield stack
    stop_stack(stack)


@pytest.fixture
def client(bus_stack: Stack) -> Iterator[Any]:
    sdk = make_client(bus_stack, f"sub-{uuid.uuid4().hex[:10]}")
    try:
        yield sdk
    finally:
        sdk.close()


def _auth(key: str = KEY) -> ServiceBusAuthentication:
    return ServiceBusAuthentication(sas_key=key, sas_key_name=KEY_NAME, type="SharedAccessKey")


def _once_now(action: JobAction) -> JobDefinition:
    """A job without a recurrence: it runs once, at its start time (now)."""
    return JobDefinition(properties=JobProperties(start_time=datetime.now(UTC), action=action))


def _new_collection(client: Any) -> str:
    # No SKU: Takt's self-hosted default, which allows retries a second apart.
    name = f"coll-{uuid.uuid4().hex[:8]}"
    client.job_collections.create_or_update(RG, name, JobCollectionDefinition(location="local"))
    return name


def test_queue_and_topic_jobs_made_with_the_sdk_fire_and_arrive_signed(
    client: Any, bus: LocalServiceBus
) -> None:
    # Given a ServiceBusQueue and a ServiceBusTopic job, made with the SDK's models
    name = _new_collection(client)
    enqueue = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    queue_action = JobAction(
        type="ServiceBusQueue",
        service_bus_queue_message=ServiceBusQueueMessage(
            authentication=_auth(),
            brokered_message_properties=ServiceBusBrokeredMessageProperties(
                content_type="application/json",
                correlation_id=f"corr-{name}",
                label="nightly",
                message_id="m-1",
                time_to_live=timedelta(minutes=10),
                scheduled_enqueue_time_utc=enqueue,
            ),
            custom_message_properties={"Priority": "High", "Collection": name},
            message='{"report": "nightly"}',
            namespace=NAMESPACE,
            transport_type="NetMessaging",
            queue_name="orders",
        ),
        retry_policy=RetryPolicy(retry_type="None"),
    )
    topic_action = JobAction(
        type="ServiceBusTopic",
        service_bus_topic_message=ServiceBusTopicMessage(
            authentication=_auth(),
            custom_message_properties={"Collection": name},
            message="topic hello",
            namespace=NAMESPACE,
            transport_type="AMQP",
            topic_path="alerts/eu",
        ),
        retry_policy=RetryPolicy(retry_type="None"),
    )
    # When they are created
    client.jobs.create_or_update(RG, name, "to-queue", _once_now(queue_action))
    client.jobs.create_or_update(RG, name, "to-topic", _once_now(topic_action))

    # Then each message arrives, its token validated by the key, its properties as written
    def mine(entity: str) -> list[Any]:
        return [
            m
            for m in bus.messages(NAMESPACE, entity)
            if m.custom_properties.get("collection") == name
        ]

    [queued] = wait_until(lambda: mine("orders"), timeout=30, message="the queue's message")
    [published] = wait_until(lambda: mine("alerts/eu"), timeout=30, message="the topic's message")
    assert queued.body == b'{"report": "nightly"}'
    assert queued.content_type == "application/json"
    assert queued.broker_properties == {
        "CorrelationId": f"corr-{name}",
        "Label": "nightly",
        "MessageId": "m-1",
        "TimeToLive": 600.0,
        "ScheduledEnqueueTimeUtc": "Wed, 02 Jan 2030 03:04:05 GMT",
    }
    assert queued.custom_properties == {"priority": "High", "collection": name}
    assert (queued.token["skn"], published.token["skn"]) == (KEY_NAME, KEY_NAME)
    assert published.body == b"topic hello"
    # And the history says Completed with Service Bus's answer, the key read back as ""
    for job, kind, entity in (("to-queue", "queue", "orders"), ("to-topic", "topic", "alerts/eu")):
        entries = wait_until(
            lambda job=job: list(client.jobs.list_job_history(RG, name, job)),  # type: ignore[misc]
            timeout=15,
            message=f"the history of {job}",
        )
        assert entries[0].properties.status == "Completed"
        assert (
            f"Response from {kind} '{entity}' of namespace '{NAMESPACE}': '201' Created"
            in entries[0].properties.message
        )
    read = client.jobs.get(RG, name, "to-queue").properties.action.service_bus_queue_message
    assert read.authentication.sas_key == ""
    assert read.authentication.sas_key_name == KEY_NAME


def test_a_refused_message_is_retried_then_the_error_action_sends_to_the_topic(
    client: Any, bus: LocalServiceBus
) -> None:
    # Given a queue job signed with a wrong key, one retry, and a topic as its error action
    name = _new_collection(client)
    wrong = "d3Jvbmcta2V5LXRoYXQtc2VydmljZS1idXMtcmVmdXNlcw=="
    action = JobAction(
        type="ServiceBusQueue",
        service_bus_queue_message=ServiceBusQueueMessage(
            authentication=_auth(wrong),
            message="never arrives",
            namespace=NAMESPACE,
            queue_name="orders",
            custom_message_properties={"Collection": name},
        ),
        retry_policy=RetryPolicy(
            retry_type="Fixed", retry_interval=timedelta(seconds=1), retry_count=1
        ),
        error_action=JobErrorAction(
            type="ServiceBusTopic",
            service_bus_topic_message=ServiceBusTopicMessage(
                authentication=_auth(),
                message="the nightly job failed",
                namespace=NAMESPACE,
                topic_path="alerts/eu",
                custom_message_properties={"Collection": name},
            ),
        ),
    )
    # When it runs
    client.jobs.create_or_update(RG, name, "refused", _once_now(action))

    # Then the error action's message reaches the topic
    wait_until(
        lambda: [
            m
            for m in bus.messages(NAMESPACE, "alerts/eu")
            if m.custom_properties.get("collection") == name
        ],
        timeout=30,
        message="the error action's message",
    )

    # And the history holds two failed attempts (401, Azure's words) and the error action
    def settled() -> list[Any]:
        entries = list(client.jobs.list_job_history(RG, name, "refused"))
        return entries if len(entries) >= 3 else []

    entries = wait_until(settled, timeout=15, message="three history entries")
    main = [e.properties for e in entries if e.properties.action_name == "MainAction"]
    error = [e.properties for e in entries if e.properties.action_name == "ErrorAction"]
    assert [e.status for e in main] == ["Failed", "Failed"]
    assert sorted(e.retry_count for e in main) == [0, 1]
    assert all("'401' Unauthorized" in e.message for e in main)
    assert all(wrong not in e.message for e in main)
    assert [e.status for e in error] == ["Completed"]
    assert not [m for m in bus.messages(NAMESPACE, "orders") if m.body == b"never arrives"]
