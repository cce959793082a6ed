"""What a Service Bus action needs before it is stored: a namespace, the queue or topic its
type names, and a shared access key to sign with.

The model (:class:`~scheduler.domain.models.ServiceBusMessage`) checks each value's form;
what a message must *have* is checked here, once stored credentials are put back, because
a key sent back as read (``""``) is only complete after the secret rule kept it.
"""

from __future__ import annotations

from typing import NoReturn

from scheduler.domain.models import ActionType, JobErrorAction, JobProperties, ServiceBusMessage
from scheduler.errors import ValidationFailed

__all__ = ["check_service_bus"]

_PAYLOAD = {
    ActionType.SERVICE_BUS_QUEUE: ("serviceBusQueueMessage", "queueName", "topicPath"),
    ActionType.SERVICE_BUS_TOPIC: ("serviceBusTopicMessage", "topicPath", "queueName"),
}


def check_service_bus(properties: JobProperties) -> None:
    """Raise :class:`ValidationFailed`, naming the field, for a Service Bus action (main or
    error action) that could not be sent."""
    actions = (
        (properties.action, "properties.action"),
        (properties.action.error_action, "properties.action.errorAction"),
    )
    for action, where in actions:
        if action is not None and action.type in _PAYLOAD:
            _check(action, where)


def _check(action: JobErrorAction, where: str) -> None:
    member, entity, other = _PAYLOAD[action.type]
    message: ServiceBusMessage | None = (
        action.service_bus_queue_message
        if action.type is ActionType.SERVICE_BUS_QUEUE
        else action.service_bus_topic_message
    )
    assert message is not None  # the model requires the member of its type
    path = f"{where}.{member}"
    wire = message.to_wire()
    if not message.namespace:
        _refuse(f"{path}.namespace", "is required")
    if not wire.get(entity):
        _refuse(f"{path}.{entity}", f"is required for an action of type {action.type.value}")
    if wire.get(other):
        _refuse(f"{path}.{other}", f"is not used by an action of type {action.type.value}")
    auth = message.authentication
    if auth is None:
        _refuse(f"{path}.authentication", "is required (sasKeyName and sasKey)")
    if not auth.sas_key_name:
        _refuse(f"{path}.authentication.sasKeyName", "is required")
    if not auth.sas_key:
        _refuse(f"{path}.authentication.sasKey", "is required")


def _refuse(field: str, rule: str) -> NoReturn:
    raise ValidationFailed(f"{field}: {rule}", field=field)
