"""Execute a StorageQueue action: put a message on an Azure Storage queue with its SAS token.

Plain REST (``POST {endpoint}/{queue}/messages?{sas}``), no Azure SDK. The
message goes on the queue the way Azure Scheduler put it there, so receivers written for
Azure Scheduler keep working:

- the job's ``message`` is wrapped in Azure Scheduler's ``StorageQueueMessage`` XML
  envelope (execution tag, client request id, expected execution time, job id, collection
  id, region, message), as Azure Scheduler did (azure-webjobs-sdk issue #85 shows one);
- the envelope is UTF-8 and base64-encoded into ``MessageText``: what the .NET storage
  clients of that time wrote by default, and what Azure Functions' and WebJobs' queue
  triggers expect by default. A reader decodes base64, then parses the XML.

The declaration says ``utf-8`` where Azure's said ``utf-16`` (an artifact of .NET's
``StringWriter``): the bytes are UTF-8, so strict parsers read them, and .NET's
``XmlSerializer`` reading from a string ignores the declaration either way.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

import httpx

from scheduler.domain.models import StorageQueueMessage
from workers.http_action import OccurrenceInfo, Outcome, exchange
from workers.network import PolicyClient

__all__ = ["DEFAULT_ENDPOINT_TEMPLATE", "envelope", "put_message"]

#: Where an account's queue service is; ``{account}`` is replaced by the storage account.
#: Azurite: ``http://127.0.0.1:10001/{account}``.
DEFAULT_ENDPOINT_TEMPLATE = "https://{account}.queue.core.windows.net"

#: The Queue service REST version asked for; Azure and Azurite 3.x both serve it.
_API_VERSION = "2021-12-02"
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_QUEUE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_PREFIX = "StorageQueue Action - "


def envelope(message: str, info: OccurrenceInfo, region: str = "") -> str:
    """Azure Scheduler's ``StorageQueueMessage`` XML around the job's message."""
    expected = info.expected_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fields = {
        "ExecutionTag": info.execution_tag,
        "ClientRequestId": info.execution_tag,
        "ExpectedExecutionTime": expected,
        "SchedulerJobId": info.job_id,
        "SchedulerJobCollectionId": info.collection_id,
        "Region": region,
        "Message": message,
    }
    inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields.items())
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<StorageQueueMessage xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"{inner}</StorageQueueMessage>"
    )


def put_message(
    client: PolicyClient,
    action: StorageQueueMessage,
    info: OccurrenceInfo,
    *,
    endpoint_template: str = DEFAULT_ENDPOINT_TEMPLATE,
    region: str = "",
) -> Outcome:
    """Put the message on the queue; success is a 201 within the client's timeout."""
    account, queue = action.storage_account, action.queue_name
    sas = (action.sas_token or "").removeprefix("?")
    if refused := _refusal(account, queue, sas):
        return Outcome(False, _PREFIX + refused)
    endpoint = endpoint_template.replace("{account}", account).rstrip("/")
    text = base64.b64encode(envelope(action.message, info, region).encode()).decode("ascii")
    body = f"<QueueMessage><MessageText>{text}</MessageText></QueueMessage>"
    where = f"queue '{queue}' of storage account '{account}'"
    outcome = _post(client, f"{endpoint}/{queue}/messages?{sas}", body, info.execution_tag, where)
    return Outcome(outcome.succeeded, _redact(outcome.message, sas))


def _post(client: PolicyClient, url: str, body: str, request_id: str, where: str) -> Outcome:
    headers = {
        "x-ms-version": _API_VERSION,
        "x-ms-client-request-id": request_id,
        "Content-Type": "application/xml; charset=utf-8",
    }
    return exchange(
        client,
        "POST",
        httpx.URL(url),
        headers,
        body.encode(),
        prefix=_PREFIX,
        where=where,
        succeeded=lambda status: status == 201,
    )


def _refusal(account: str, queue: str, sas: str) -> str | None:
    """Why the action cannot be sent as it stands (names Azure's rule), or None."""
    if not _ACCOUNT.fullmatch(account):
        return f"storageAccount '{account}' must be 3 to 24 lowercase letters and digits"
    if not _QUEUE.fullmatch(queue):
        return (
            f"queueName '{queue}' must be 3 to 63 lowercase letters, digits and single "
            "hyphens, starting and ending with a letter or digit"
        )
    if not sas:
        return "sasToken is required"
    return None


def _redact(text: str, sas: str) -> str:
    """The signature of the SAS token never reaches the history, in any encoding."""
    for name, value in parse_qsl(sas, keep_blank_values=True):
        if name == "sig" and value:
            for form in {value, quote(value, safe=""), quote(value, safe="/")}:
                text = text.replace(form, "***")
    return text
