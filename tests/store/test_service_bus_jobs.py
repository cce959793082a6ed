"""Service Bus jobs through the job service, on the session's Valkey: the key is write-only,
kept by a write that sends it back as read (only for the same namespace), and a deployment
whose dispatch has no route for an action kind refuses jobs of that kind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler.domain.models import ActionType, JobCollection, JobProperties, without_secrets
from scheduler.domain.refs import CollectionRef, JobRef
from scheduler.errors import ValidationFailed
from scheduler.service.jobs import JobService
from scheduler.store.jobs import JobStore
from scheduler.store.principals import ADMIN_PRINCIPAL, Principal, PrincipalBook, Role

KEY = "c2VydmljZS1idXMta2V5LXdyaXRlLW9ubHk="
NOW = datetime(2030, 1, 1, tzinfo=UTC)
ADMIN = Principal(ADMIN_PRINCIPAL, Role.ADMIN)


@pytest.fixture
def ref(store: JobStore) -> JobRef:
    collection = CollectionRef("sub", "rg", "bus")
    store.put_collection(collection.cid, JobCollection(location="local"))
    return JobRef(collection, "nightly")


def _service(store: JobStore, **options: Any) -> JobService:
    return JobService(store, PrincipalBook(store), lambda *_: None, **options)


def _job(key: str = KEY, namespace: str = "contoso-bus") -> JobProperties:
    return JobProperties.model_validate(
        {
            "startTime": "2099-01-01T00:00:00Z",
            "action": {
                "type": "ServiceBusTopic",
                "serviceBusTopicMessage": {
                    "namespace": namespace,
                    "topicPath": "alerts",
                    "message": "m",
                    "authentication": {"sasKeyName": "Send", "sasKey": key},
                },
            },
        }
    )


def _key(properties: JobProperties) -> str | None:
    message = properties.action.service_bus_topic_message
    assert message is not None
    assert message.authentication is not None
    return message.authentication.sas_key


def test_the_key_is_stored_never_read_and_kept_when_sent_back_as_read(
    store: JobStore, ref: JobRef
) -> None:
    # Given a Service Bus job put with its key
    service = _service(store)
    record, created = service.put(ref, _job(), ADMIN, NOW)
    # When it is read as every read path shows it
    shown = without_secrets(record.properties.to_wire())
    # Then the key reads as "", and the stored job still has it
    assert created
    message = shown["action"]["serviceBusTopicMessage"]
    assert message["authentication"] == {"sasKey": "", "sasKeyName": "Send"}
    assert _key(store.get_job(ref.jid).properties) == KEY
    # And a write of what was read (less its server-set members) keeps the stored key
    shown.pop("status", None)
    shown.pop("owner", None)  # the writer becomes the owner (no principal in this store)
    service.put(ref, JobProperties.model_validate(shown), ADMIN, NOW)
    assert _key(store.get_job(ref.jid).properties) == KEY


def test_a_key_sent_back_as_read_is_not_carried_to_another_namespace(
    store: JobStore, ref: JobRef
) -> None:
    # Given a stored Service Bus job
    service = _service(store)
    service.put(ref, _job(), ADMIN, NOW)
    # When what was read is written back with another namespace
    with pytest.raises(ValidationFailed) as refused:
        service.put(ref, _job(key="", namespace="elsewhere-bus"), ADMIN, NOW)
    # Then it is refused, naming the key, and the stored job is unchanged
    assert "sasKey" in str(refused.value)
    assert "namespace" in str(refused.value)
    assert _key(store.get_job(ref.jid).properties) == KEY


def test_a_new_job_without_a_key_is_refused_naming_it(store: JobStore, ref: JobRef) -> None:
    # Given a new job whose key is "" (nothing stored to keep); When it is put; Then 400
    with pytest.raises(ValidationFailed, match=r"serviceBusTopicMessage\.authentication\.sasKey"):
        _service(store).put(ref, _job(key=""), ADMIN, NOW)


def test_a_kind_the_dispatch_cannot_route_is_refused(store: JobStore, ref: JobRef) -> None:
    # Given a service whose deployment routes Http actions only
    service = _service(store, dispatchable={ActionType.HTTP, ActionType.HTTPS})
    # When a Service Bus job is put; Then it is refused, and nothing is stored
    with pytest.raises(ValidationFailed, match="ServiceBusTopic actions are not supported"):
        service.put(ref, _job(), ADMIN, NOW)
    with pytest.raises(LookupError):
        store.get_job(ref.jid)
