"""ServiceBusQueue and ServiceBusTopic actions sent to a local Service Bus (a real HTTPS
server that checks the documented contract and the signature: tests/support/service_bus.py)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from scheduler.domain.models import ActionType, JobAction, ServiceBusMessage
from scheduler.service.outbound import NetworkPolicy
from tests.support.helpers import free_port
from tests.support.service_bus import LocalServiceBus, start_service_bus
from workers.actions import unexpected_failure
from workers.http_action import BODY_EXCERPT_BYTES, OccurrenceInfo
from workers.network import PolicyClient, policy_client
from workers.service_bus import send_message

NAMESPACE = "contoso-tests"
KEY_NAME = "SendOnly"
KEY = "dGFrdC10ZXN0LWtleS1ub3QtYS1yZWFsLW9uZQ=="
INFO = OccurrenceInfo(
    job_id="nightly",
    collection_id="reports",
    expected_time=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
    execution_tag="4b6c3a0e-2f1d-5e8a-9b7c-0d1e2f3a4b5c",
)


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServiceBus]:
    local = start_service_bus(tmp_path_factory.mktemp("service-bus"))
    local.create(NAMESPACE, "orders", KEY_NAME, KEY)
    local.create(NAMESPACE, "events/eu", KEY_NAME, KEY)
    try:
        yield local
    finally:
        local.close()


def _client(bus: LocalServiceBus, timeout: float) -> PolicyClient:
    """A worker's client that trusts the local Service Bus's CA."""
    return policy_client(
        NetworkPolicy.default(),
        verify=ssl.create_default_context(cafile=bus.ca_file),
        timeout=timeout,
        limits=httpx.Limits(),
    )


@pytest.fixture
def http(bus: LocalServiceBus) -> Iterator[PolicyClient]:
    with _client(bus, 5) as c:
        yield c


def _message(**changes: Any) -> ServiceBusMessage:
    wire: dict[str, Any] = {
        "namespace": NAMESPACE,
        "queueName": "orders",
        "message": "run the nightly report",
        "authentication": {"sasKeyName": KEY_NAME, "sasKey": KEY, "type": "SharedAccessKey"},
        "transportType": "NetMessaging",
    }
    wire.update(changes)
    return ServiceBusMessage.model_validate({k: v for k, v in wire.items() if v is not None})


def test_a_queue_message_arrives_signed_with_its_properties(
    bus: LocalServiceBus, http: PolicyClient
) -> None:
    # Given a queue message with brokered and custom properties
    message = _message(
        brokeredMessageProperties={
            "contentType": "application/json",
            "correlationId": "c-1",
            "label": "nightly",
            "messageId": "m-1",
            "timeToLive": "PT10M",
            "scheduledEnqueueTimeUtc": "2030-01-02T03:04:05Z",
            "forcePersistence": True,
            "sessionId": "s-1",
            "partitionKey": "s-1",
        },
        customMessageProperties={"Priority": "High", "Customer": "12345,ABC"},
        message='{"report": "nightly"}',
    )
    before = len(bus.messages(NAMESPACE, "orders"))
    # When it is sent
    outcome = send_message(
        http, ActionType.SERVICE_BUS_QUEUE, message, INFO, endpoint_template=bus.endpoint_template
    )
    # Then Service Bus accepted it (its signature checked) and it arrived as sent
    assert outcome.succeeded, outcome.message
    assert outcome.message.startswith(
        f"ServiceBusQueue Action - Response from queue 'orders' of namespace '{NAMESPACE}': "
        "'201' Created"
    )
    arrived = bus.messages(NAMESPACE, "orders")[before:]
    assert len(arrived) == 1
    delivered = arrived[0]
    assert delivered.body == b'{"report": "nightly"}'
    assert delivered.content_type == "application/json"
    assert delivered.broker_properties == {
        "CorrelationId": "c-1",
        "Label": "nightly",
        "MessageId": "m-1",
        "TimeToLive": 600.0,
        "ScheduledEnqueueTimeUtc": "Wed, 02 Jan 2030 03:04:05 GMT",
        "ForcePersistence": True,
        "SessionId": "s-1",
        "PartitionKey": "s-1",
    }
    assert delivered.custom_properties == {"priority": "High", "customer": "12345,ABC"}
    assert delivered.token["skn"] == KEY_NAME
    assert delivered.token["sr"] == f"{bus.base_url}/{NAMESPACE}/orders"
    assert delivered.headers["x-ms-client-request-id"] == INFO.execution_tag


def test_a_topic_message_goes_to_the_topic_path(bus: LocalServiceBus, http: PolicyClient) -> None:
    # Given a topic message whose path has two segments
    message = _message(queueName=None, topicPath="events/eu", message="hello")
    # When it is sent
    outcome = send_message(
        http, ActionType.SERVICE_BUS_TOPIC, message, INFO, endpoint_template=bus.endpoint_template
    )
    # Then it arrives on that topic, with no brokered properties and a text body
    assert outcome.succeeded, outcome.message
    assert "ServiceBusTopic Action - Response from topic 'events/eu'" in outcome.message
    delivered = bus.messages(NAMESPACE, "events/eu")[-1]
    assert (delivered.body, delivered.broker_properties) == (b"hello", {})
    assert delivered.content_type == "text/plain; charset=utf-8"


def test_a_wrong_key_is_a_401_failure_that_never_shows_the_key(
    bus: LocalServiceBus, http: PolicyClient
) -> None:
    # Given a message signed with a key Service Bus does not know
    wrong = "d3Jvbmcta2V5LXRoYXQtaXMtbG9uZy1lbm91Z2g="
    message = _message(authentication={"sasKeyName": KEY_NAME, "sasKey": wrong})
    # When it is sent
    outcome = send_message(
        http, ActionType.SERVICE_BUS_QUEUE, message, INFO, endpoint_template=bus.endpoint_template
    )
    # Then it failed with Service Bus's status, and the key is nowhere in the message
    assert not outcome.succeeded
    assert "'401' Unauthorized; Body: the signature does not match" in outcome.message
    assert wrong not in outcome.message


def test_a_queue_that_does_not_exist_is_a_404_failure(
    bus: LocalServiceBus, http: PolicyClient
) -> None:
    # Given a message for a queue the namespace does not have; When it is sent
    outcome = send_message(
        http,
        ActionType.SERVICE_BUS_QUEUE,
        _message(queueName="missing"),
        INFO,
        endpoint_template=bus.endpoint_template,
    )
    # Then it failed with a 404 that says so
    assert not outcome.succeeded
    assert "'404' Not Found; Body: entity contoso-tests/missing does not exist" in outcome.message


def test_a_message_over_256_kb_is_a_413_failure_with_a_bounded_excerpt(
    bus: LocalServiceBus, http: PolicyClient
) -> None:
    # Given a message larger than Service Bus takes
    message = _message(message="x" * (256 * 1024 + 1))
    # When it is sent
    outcome = send_message(
        http, ActionType.SERVICE_BUS_QUEUE, message, INFO, endpoint_template=bus.endpoint_template
    )
    # Then the 413 is the failure, and the history message stays short
    assert not outcome.succeeded
    assert "'413' Request Entity Too Large" in outcome.message
    assert len(outcome.message) < 200 + BODY_EXCERPT_BYTES


def test_a_service_bus_that_does_not_answer_in_time_is_a_timeout(
    bus: LocalServiceBus, http: PolicyClient
) -> None:
    # Given a Service Bus that holds every request
    release = bus.hold()
    try:
        # When a message is sent with a short timeout
        with _client(bus, 0.3) as hasty:
            outcome = send_message(
                hasty,
                ActionType.SERVICE_BUS_QUEUE,
                _message(),
                INFO,
                endpoint_template=bus.endpoint_template,
            )
    finally:
        release.set()
        bus.held = None
    # Then it failed as timed out
    assert not outcome.succeeded
    assert outcome.message == (
        f"ServiceBusQueue Action - Request to queue 'orders' of namespace '{NAMESPACE}' timed out"
    )


@pytest.mark.parametrize(
    ("endpoint", "words"),
    [
        pytest.param("https://127.0.0.1:{port}/{namespace}", "failed:", id="connection-refused"),
        pytest.param("https://{namespace}.invalid", "failed:", id="unknown-name"),
    ],
)
def test_an_unreachable_service_bus_is_a_failure_that_says_so(
    http: PolicyClient, endpoint: str, words: str
) -> None:
    # Given an endpoint nothing listens on, or a name that does not resolve
    template = endpoint.replace("{port}", str(free_port()))
    # When a message is sent there
    outcome = send_message(
        http, ActionType.SERVICE_BUS_QUEUE, _message(), INFO, endpoint_template=template
    )
    # Then it failed, saying where it went and why, without the key
    assert not outcome.succeeded
    assert outcome.message.startswith(
        f"ServiceBusQueue Action - Request to queue 'orders' of namespace '{NAMESPACE}' {words}"
    )
    assert KEY not in outcome.message


def test_an_error_raised_while_sending_never_shows_the_key() -> None:
    # Given a Service Bus action whose key appears in an exception's text
    action = JobAction.model_validate(
        {"type": "ServiceBusTopic", "serviceBusTopicMessage": _message().to_wire()}
    )
    # When the exception becomes a history message
    text = unexpected_failure(action, RuntimeError(f"could not use {KEY}"))
    # Then the key is masked
    assert text == "ServiceBusTopic Action - RuntimeError: could not use ***"


def test_the_broker_properties_header_is_json_of_documented_names_only(
    bus: LocalServiceBus, http: PolicyClient
) -> None:
    # Given a message with every brokered property Azure Scheduler knows
    every = {
        "contentType": "text/xml",
        "correlationId": "c",
        "forcePersistence": False,
        "label": "l",
        "messageId": "m",
        "partitionKey": "p",
        "replyTo": "r",
        "replyToSessionId": "rs",
        "scheduledEnqueueTimeUtc": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "sessionId": "p",
        "timeToLive": "P1D",
        "to": "t",
        "viaPartitionKey": "v",
    }
    # When it is sent
    outcome = send_message(
        http,
        ActionType.SERVICE_BUS_QUEUE,
        _message(brokeredMessageProperties=every),
        INFO,
        endpoint_template=bus.endpoint_template,
    )
    # Then the strict server accepted every member (unknown ones would be a 400)
    assert outcome.succeeded, outcome.message
    delivered = bus.messages(NAMESPACE, "orders")[-1]
    assert len(delivered.broker_properties) == len(every) - 1  # contentType is a header
    assert json.loads(json.dumps(delivered.broker_properties))["TimeToLive"] == 86400.0
