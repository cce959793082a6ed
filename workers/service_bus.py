"""Execute a ServiceBusQueue or ServiceBusTopic action: send one message through Service
Bus's REST interface, signed with a shared access key.

Plain REST, no Service Bus SDK (Microsoft's "Send Message" operation):

- ``POST {endpoint}/{queueName or topicPath}/messages``, the endpoint being
  ``TAKT_SERVICE_BUS_ENDPOINT`` with ``{namespace}`` replaced
  (``https://{namespace}.servicebus.windows.net``);
- ``Authorization: SharedAccessSignature sr=…&sig=…&se=…&skn=…``, a token signed with the
  action's ``sasKey`` for the entity's URI (:func:`sas_token`, byte for byte what
  Microsoft's ``azure-servicebus`` package makes of the same inputs);
- ``BrokerProperties``: the action's ``brokeredMessageProperties`` as Service Bus's
  JSON names them (``TimeToLive`` in seconds, ``ScheduledEnqueueTimeUtc`` as an HTTP date),
  their ``contentType`` as the ``Content-Type`` header;
- each of ``customMessageProperties`` as a header of its own;
- the body: the job's ``message``, UTF-8.

Success is ``201 Created``; any other answer, a timeout or a connection that fails is this
attempt's failure, described as Azure's history did (the status and the start of the body).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from scheduler.domain.models import (
    ActionType,
    ServiceBusBrokeredMessageProperties,
    ServiceBusMessage,
)
from workers.http_action import OccurrenceInfo, Outcome, exchange
from workers.network import PolicyClient

__all__ = [
    "DEFAULT_ENDPOINT_TEMPLATE",
    "SAS_LIFETIME",
    "broker_properties",
    "entity_uri",
    "sas_token",
    "send_message",
]

#: Where a namespace's entities are; ``{namespace}`` is replaced by the action's namespace.
DEFAULT_ENDPOINT_TEMPLATE = "https://{namespace}.servicebus.windows.net"

#: How long a token signed for one call stays valid (the SDK's default; a call is far shorter).
SAS_LIFETIME = timedelta(hours=1)

_PREFIXES = {
    ActionType.SERVICE_BUS_QUEUE: "ServiceBusQueue Action - ",
    ActionType.SERVICE_BUS_TOPIC: "ServiceBusTopic Action - ",
}

#: Azure Scheduler's member → Service Bus's ``BrokerProperties`` member (contentType is a
#: header of its own).
_BROKER_NAMES = {
    "correlation_id": "CorrelationId",
    "force_persistence": "ForcePersistence",
    "label": "Label",
    "message_id": "MessageId",
    "partition_key": "PartitionKey",
    "reply_to": "ReplyTo",
    "reply_to_session_id": "ReplyToSessionId",
    "scheduled_enqueue_time_utc": "ScheduledEnqueueTimeUtc",
    "session_id": "SessionId",
    "time_to_live": "TimeToLive",
    "to": "To",
    "via_partition_key": "ViaPartitionKey",
}


def sas_token(resource_uri: str, key_name: str, key: str, expiry_s: int) -> str:
    """A Service Bus shared access signature for ``resource_uri``, valid until ``expiry_s``
    (epoch seconds), signed with ``key`` (used as UTF-8 text, as Azure's portal shows it).

    The string to sign is the URL-encoded URI, a newline and the expiry; the token's values
    are URL-encoded once more as a query string. ``skn`` is encoded twice, as Microsoft's
    Python SDK does: the same as once for the names Azure allows (letters, digits, ``.``,
    ``-``, ``_``), so Service Bus reads the name as it is.
    """
    encoded_uri = quote_plus(resource_uri)
    expiry = str(int(expiry_s))
    digest = hmac.new(key.encode(), f"{encoded_uri}\n{expiry}".encode(), hashlib.sha256).digest()
    signature = base64.b64encode(digest).decode("ascii")
    token = f"sr={encoded_uri}&sig={quote_plus(signature)}&se={expiry}"
    if key_name:
        token += f"&skn={quote_plus(quote_plus(key_name))}"
    return f"SharedAccessSignature {token}"


def entity_uri(endpoint_template: str, namespace: str, entity: str) -> str:
    """The URI of a queue or topic: the resource a token is signed for."""
    endpoint = endpoint_template.replace("{namespace}", namespace).rstrip("/")
    return f"{endpoint}/{quote(entity, safe='/')}"


def broker_properties(properties: ServiceBusBrokeredMessageProperties | None) -> dict[str, Any]:
    """The ``BrokerProperties`` JSON members of Azure Scheduler's brokered properties."""
    if properties is None:
        return {}
    wire: dict[str, Any] = {}
    for field, name in _BROKER_NAMES.items():
        value = getattr(properties, field)
        if value is None:
            continue
        if isinstance(value, timedelta):
            value = value.total_seconds()
        elif field == "scheduled_enqueue_time_utc":
            value = format_datetime(value.astimezone(UTC), usegmt=True)
        wire[name] = value
    return wire


def send_message(
    client: PolicyClient,
    action_type: ActionType,
    message: ServiceBusMessage,
    info: OccurrenceInfo,
    *,
    endpoint_template: str = DEFAULT_ENDPOINT_TEMPLATE,
    now_s: float | None = None,
) -> Outcome:
    """Send the message to its queue or topic; success is a 201 within the client's timeout."""
    prefix = _PREFIXES[action_type]
    namespace, entity, auth = message.namespace, message.entity, message.authentication
    if not namespace or not entity or auth is None or not auth.sas_key or not auth.sas_key_name:
        # The service refuses such a job; one stored before that check cannot be sent.
        return Outcome(False, f"{prefix}namespace, entity and authentication are required")
    resource = entity_uri(endpoint_template, namespace, entity)
    expiry = int(time.time() if now_s is None else now_s) + int(SAS_LIFETIME.total_seconds())
    headers = {
        **(message.custom_message_properties or {}),
        "Authorization": sas_token(resource, auth.sas_key_name, auth.sas_key, expiry),
        "BrokerProperties": json.dumps(broker_properties(message.brokered_message_properties)),
        "Content-Type": _content_type(message.brokered_message_properties),
        "x-ms-client-request-id": info.execution_tag,
    }
    kind = "queue" if action_type is ActionType.SERVICE_BUS_QUEUE else "topic"
    outcome = exchange(
        client,
        "POST",
        httpx.URL(f"{resource}/messages"),
        headers,
        _body(message),
        prefix=prefix,
        where=f"{kind} '{entity}' of namespace '{namespace}'",
        succeeded=lambda status: status == 201,
    )
    return Outcome(outcome.succeeded, _redact(outcome.message, auth.sas_key))


def _redact(text: str, key: str) -> str:
    """The key never reaches the history, even if the endpoint echoes it (a key shorter
    than four characters would mask ordinary words instead)."""
    return text.replace(key, "***") if len(key) >= 4 else text


def _body(message: ServiceBusMessage) -> bytes:
    return (message.message or "").encode()


def _content_type(properties: ServiceBusBrokeredMessageProperties | None) -> str:
    if properties is not None and properties.content_type:
        return properties.content_type
    return "text/plain; charset=utf-8"
