"""Execute an Http/Https action with httpx and describe the answer as Azure did."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

import httpx

from scheduler.models import HttpRequest

__all__ = ["BODY_EXCERPT_BYTES", "OccurrenceInfo", "Outcome", "call_http", "scheduler_headers"]

#: The history message keeps at most this much of the response body (DESIGN.md).
BODY_EXCERPT_BYTES = 2048


@dataclass(frozen=True, slots=True)
class Outcome:
    succeeded: bool
    message: str


@dataclass(frozen=True, slots=True)
class OccurrenceInfo:
    """What identifies one occurrence to the receiver, stable across retries."""

    job_id: str
    collection_id: str
    expected_time: datetime
    execution_tag: str


def scheduler_headers(info: OccurrenceInfo) -> dict[str, str]:
    """The headers Azure Scheduler sent with each request, so receivers can deduplicate."""
    return {
        "x-ms-scheduler-jobid": info.job_id,
        "x-ms-scheduler-jobcollectionid": info.collection_id,
        "x-ms-scheduler-expected-execution-time": info.expected_time.isoformat(),
        "x-ms-execution-tag": info.execution_tag,
        "x-ms-client-request-id": info.execution_tag,
    }


def _basic_auth(request: HttpRequest) -> dict[str, str]:
    auth = request.authentication
    if auth is None or auth.username is None:
        return {}
    raw = f"{auth.username}:{auth.password or ''}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def _excerpt(body: bytes) -> str:
    return body[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")


def call_http(
    client: httpx.Client,
    request: HttpRequest,
    info: OccurrenceInfo,
    *,
    extra_headers: dict[str, str] | None = None,
    timeout_s: float | None = None,
) -> Outcome:
    """Send the request; success is a 2xx answer within the client's timeout."""
    headers = {
        **scheduler_headers(info),
        **(extra_headers or {}),
        **_basic_auth(request),
        **(request.headers or {}),
    }
    host = httpx.URL(request.uri).host
    content = request.body.encode() if request.body is not None else None
    try:
        timeout = client.timeout if timeout_s is None else httpx.Timeout(timeout_s)
        with client.stream(
            request.method, request.uri, headers=headers, content=content, timeout=timeout
        ) as resp:
            excerpt = _read_excerpt(resp)
    except httpx.TimeoutException:
        return Outcome(False, f"Http Action - Request to host '{host}' timed out")
    except httpx.HTTPError as exc:
        return Outcome(False, f"Http Action - Request to host '{host}' failed: {exc}")
    message = (
        f"Http Action - Response from host '{host}': '{resp.status_code}' "
        f"{resp.reason_phrase}; Body: {excerpt}"
    )
    return Outcome(resp.is_success, message)


def _read_excerpt(response: httpx.Response) -> str:
    """At most BODY_EXCERPT_BYTES of the body; the rest is never read into memory."""
    kept = bytearray()
    for chunk in response.iter_bytes():
        kept.extend(chunk)
        if len(kept) >= BODY_EXCERPT_BYTES:
            break
    return _excerpt(bytes(kept))
