"""The StorageQueue action against Azurite, Microsoft's storage emulator (a real server)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import httpx
import pytest

from scheduler.domain.models import StorageQueueMessage
from scheduler.service.outbound import NetworkPolicy
from tests.support.azurite import Azurite, account_sas, create_queue, peek_messages, start_azurite
from tests.support.helpers import free_port, start_target
from workers.http_action import BODY_EXCERPT_BYTES, OccurrenceInfo
from workers.network import PolicyClient, policy_client
from workers.storage_queue import envelope, put_message

INFO = OccurrenceInfo(
    job_id="nightly",
    collection_id="reports",
    expected_time=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
    execution_tag="4b6c3a0e-2f1d-5e8a-9b7c-0d1e2f3a4b5c",
)


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    emulator = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def http() -> Iterator[PolicyClient]:
    with policy_client(NetworkPolicy.default(), timeout=10, limits=httpx.Limits()) as client:
        yield client


@pytest.fixture
def sas() -> str:
    return account_sas(datetime.now(UTC) + timedelta(hours=1))


def _queue(name: str, sas: str, message: str) -> StorageQueueMessage:
    return StorageQueueMessage(
        storage_account="devstoreaccount1", queue_name=name, sas_token=sas, message=message
    )


def _unwrap(message_text: str) -> dict[str, str]:
    """What a receiver does: base64-decode, parse Azure Scheduler's XML envelope."""
    root = ElementTree.fromstring(base64.b64decode(message_text))
    assert root.tag == "StorageQueueMessage"
    return {child.tag: child.text or "" for child in root}


def test_a_message_is_put_on_the_queue_in_azure_schedulers_envelope(
    azurite: Azurite, http: PolicyClient, sas: str
) -> None:
    # Given a queue and a message with characters XML must escape
    create_queue(http, azurite, "reports", sas)
    text = "run <nightly> & report: ünïcode ✓"
    # When the action runs (with the SAS as the portal gives it, with a leading '?')
    outcome = put_message(
        http,
        _queue("reports", "?" + sas, text),
        INFO,
        endpoint_template=azurite.endpoint_template,
        region="local",
    )
    # Then it succeeded with a 201, and the queue holds the envelope with the message
    assert outcome.succeeded, outcome.message
    assert "'201' Created" in outcome.message
    assert "reports" in outcome.message
    [stored] = peek_messages(http, azurite, "reports", sas)
    assert _unwrap(stored) == {
        "ExecutionTag": INFO.execution_tag,
        "ClientRequestId": INFO.execution_tag,
        "ExpectedExecutionTime": "2030-01-02T03:04:05",
        "SchedulerJobId": "nightly",
        "SchedulerJobCollectionId": "reports",
        "Region": "local",
        "Message": text,
    }


def test_a_wrong_signature_fails_with_403_and_the_signature_is_not_in_the_message(
    azurite: Azurite, http: PolicyClient, sas: str
) -> None:
    # Given a queue and a SAS signed with another key
    create_queue(http, azurite, "guarded", sas)
    other_key = base64.b64encode(b"not the account key, 32 bytes!!!").decode()
    forged = account_sas(datetime.now(UTC) + timedelta(hours=1), key=other_key)
    signature = dict(part.split("=", 1) for part in forged.split("&"))["sig"]
    # When the action runs with it
    outcome = put_message(
        http, _queue("guarded", forged, "x"), INFO, endpoint_template=azurite.endpoint_template
    )
    # Then it failed with the status code, without the signature, and nothing was queued
    assert not outcome.succeeded
    assert "'403'" in outcome.message
    assert signature not in outcome.message
    assert peek_messages(http, azurite, "guarded", sas) == []


def test_a_missing_queue_fails_with_404(azurite: Azurite, http: PolicyClient, sas: str) -> None:
    outcome = put_message(
        http, _queue("nosuchqueue", sas, "x"), INFO, endpoint_template=azurite.endpoint_template
    )
    assert not outcome.succeeded
    assert "'404'" in outcome.message
    assert "QueueNotFound" in outcome.message


def test_a_connection_failure_is_a_failed_outcome_naming_the_queue(http: PolicyClient) -> None:
    # Given an endpoint where nothing listens
    port = free_port()
    # When the action runs against it
    outcome = put_message(
        http,
        _queue("reports", "sv=x&sig=secret%2Bsig", "x"),
        INFO,
        endpoint_template=f"http://127.0.0.1:{port}/{{account}}",
    )
    # Then it failed, naming queue and account, without the signature
    assert not outcome.succeeded
    assert "queue 'reports' of storage account 'devstoreaccount1'" in outcome.message
    assert "secret" not in outcome.message


@pytest.mark.parametrize(
    ("account", "queue", "sas", "rule"),
    [
        pytest.param("Dev_Account", "reports", "sig=x", "storageAccount", id="account-case"),
        pytest.param("devstoreaccount1", "a--b", "sig=x", "queueName", id="double-hyphen"),
        pytest.param("devstoreaccount1", "Reports", "sig=x", "queueName", id="queue-case"),
        pytest.param("devstoreaccount1", "reports", None, "sasToken", id="no-sas"),
        pytest.param("devstoreaccount1", "reports", "?", "sasToken", id="empty-sas"),
    ],
)
def test_an_action_that_cannot_be_sent_is_refused_naming_the_field(
    http: PolicyClient, account: str, queue: str, sas: str | None, rule: str
) -> None:
    action = StorageQueueMessage(
        storage_account=account, queue_name=queue, sas_token=sas, message="x"
    )
    outcome = put_message(http, action, INFO)
    assert not outcome.succeeded
    assert rule in outcome.message


def test_the_history_message_keeps_at_most_2048_bytes_of_the_answer(http: PolicyClient) -> None:
    # Given an endpoint that answers 201 with a long body
    target = start_target()
    try:
        target.answer("/reports/messages?sv=1&sig=abc", 201, b"x" * 10_000)
        # When the action runs against it
        outcome = put_message(
            http,
            _queue("reports", "sv=1&sig=abc", "x"),
            INFO,
            endpoint_template=target.url,
        )
        # Then it succeeded and the message holds only the first 2,048 bytes of the body
        assert outcome.succeeded
        assert outcome.message.endswith("Body: " + "x" * BODY_EXCERPT_BYTES)
        [request] = target.requests_to("/reports/messages?sv=1&sig=abc")
    finally:
        target.close()
    assert request.headers["x-ms-client-request-id"] == INFO.execution_tag


def test_the_envelope_escapes_the_message_and_is_valid_xml() -> None:
    xml = envelope("</Message><Evil/>", INFO)
    root = ElementTree.fromstring(xml.encode())
    assert root.find("Message") is not None
    assert root.findtext("Message") == "</Message><Evil/>"
    assert root.find("Evil") is None
