"""Execute an Http/Https action with httpx and describe the answer as Azure did.

Every outbound call of an action (Http/Https, and the StorageQueue and Service Bus REST
calls, which share :func:`exchange`) is a client span with tracing on, and carries that
span's ``traceparent`` header, which replaces any the job's definition holds.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from scheduler.domain.models import HttpRequest
from scheduler.domain.redaction import redact_urls
from scheduler.observability import tracing

__all__ = [
    "BODY_EXCERPT_BYTES",
    "OccurrenceInfo",
    "Outcome",
    "call_http",
    "exchange",
    "scheduler_headers",
]

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
    content = request.body.encode() if request.body is not None else None
    timeout = client.timeout if timeout_s is None else httpx.Timeout(timeout_s)
    return exchange(
        client,
        client.build_request(
            request.method, request.uri, headers=headers, content=content, timeout=timeout
        ),
        prefix="Http Action - ",
        where=f"host '{httpx.URL(request.uri).host}'",
        succeeded=lambda status: 200 <= status < 300,
    )


def exchange(
    client: httpx.Client,
    request: httpx.Request,
    *,
    prefix: str,
    where: str,
    succeeded: Callable[[int], bool],
) -> Outcome:
    """Send ``request`` (made with ``client.build_request``, so the client's timeout
    applies) and describe the answer as Azure Scheduler's history did: the status code and
    at most BODY_EXCERPT_BYTES of the body (never read further). With tracing on, the call
    is a client span and the request carries its ``traceparent``."""
    with tracing.span(request.method, kind="client", attributes=_span_attributes(request)) as span:
        if span is not None:
            tracing.inject_headers(request.headers)
        outcome, status = _exchange(client, request, prefix, where, succeeded)
        if span is not None:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if not outcome.succeeded:
                span.set_attribute("error.type", str(status) if status else "request failed")
        return outcome


def _span_attributes(request: httpx.Request) -> dict[str, str | int | bool] | None:
    """The call's method and URL cut down to scheme, host, port and path (no user info, no
    query: either may hold a credential), and the attempt's execution tag."""
    if not tracing.tracing_on():
        return None
    url = request.url
    return {
        "http.request.method": request.method,
        "url.full": redact_urls(str(url)),
        "server.address": url.host,
        "server.port": url.port or (443 if url.scheme == "https" else 80),
        **tracing.attempt_attributes(),
    }


def _exchange(
    client: httpx.Client,
    request: httpx.Request,
    prefix: str,
    where: str,
    succeeded: Callable[[int], bool],
) -> tuple[Outcome, int | None]:
    """The outcome, and the answer's status code if there was an answer."""
    try:
        response = client.send(request, stream=True)
        try:
            excerpt = _read_excerpt(response)
        finally:
            response.close()
    except httpx.TimeoutException:
        return Outcome(False, f"{prefix}Request to {where} timed out"), None
    except httpx.HTTPError as exc:
        return Outcome(False, f"{prefix}Request to {where} failed: {exc}"), None
    message = (
        f"{prefix}Response from {where}: '{response.status_code}' "
        f"{response.reason_phrase}; Body: {excerpt}"
    )
    return Outcome(succeeded(response.status_code), message), response.status_code


def _read_excerpt(response: httpx.Response) -> str:
    """At most BODY_EXCERPT_BYTES of the body; the rest is never read into memory."""
    kept = bytearray()
    for chunk in response.iter_bytes():
        kept.extend(chunk)
        if len(kept) >= BODY_EXCERPT_BYTES:
            break
    return _excerpt(bytes(kept))
