"""Execute an Http/Https action and describe the answer as Azure did.

Every outbound call of an action (Http/Https, and the StorageQueue and Service Bus REST
calls, which share :func:`exchange`) goes through the worker's
:class:`~workers.network.PolicyClient` (its pool, without httpx's request and response
models), is a client span with tracing on, and carries that span's ``traceparent``
header, which replaces any the job's definition holds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx

from scheduler.domain.models import HttpRequest
from scheduler.domain.redaction import redact_urls
from scheduler.observability import tracing
from workers.network import Answer, PolicyClient, basic_authorization

__all__ = [
    "BODY_EXCERPT_BYTES",
    "OccurrenceInfo",
    "Outcome",
    "call_http",
    "exchange",
    "parsed_url",
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
    return {"Authorization": basic_authorization(auth.username, auth.password or "")}


def _excerpt(body: bytes) -> str:
    return body[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=1024)
def parsed_url(uri: str) -> httpx.URL:
    """``uri`` parsed (12 µs each time); kept for the URIs last called, as a worker calls
    the same few again and again. An ``httpx.URL`` is immutable."""
    return httpx.URL(uri)


def call_http(
    client: PolicyClient,
    request: HttpRequest,
    info: OccurrenceInfo,
    *,
    extra_headers: dict[str, str] | None = None,
    timeout_s: float | None = None,
) -> Outcome:
    """Send the request; success is a 2xx answer within the timeout (``timeout_s``, else
    the client's)."""
    headers = {
        **scheduler_headers(info),
        **(extra_headers or {}),
        **_basic_auth(request),
        **(request.headers or {}),
    }
    url = parsed_url(request.uri)
    return exchange(
        client,
        request.method,
        url,
        headers,
        request.body.encode() if request.body is not None else b"",
        timeout_s=timeout_s,
        prefix="Http Action - ",
        where=f"host '{url.host}'",
        succeeded=lambda status: 200 <= status < 300,
    )


def exchange(
    client: PolicyClient,
    method: str,
    url: httpx.URL,
    headers: Mapping[str, str],
    body: bytes,
    *,
    timeout_s: float | None = None,
    prefix: str,
    where: str,
    succeeded: Callable[[int], bool],
) -> Outcome:
    """Send the request and describe the answer as Azure Scheduler's history did: the
    status code and at most BODY_EXCERPT_BYTES of the body (never read further). With
    tracing on, the call is a client span and the request carries its ``traceparent``."""
    with tracing.span(method, kind="client", attributes=_span_attributes(method, url)) as span:
        sent = _traced(headers) if span is not None else headers
        outcome, status = _outcome(
            lambda: client.fetch(
                method, url, sent, body, timeout_s=timeout_s, read_at_most=BODY_EXCERPT_BYTES
            ),
            prefix,
            where,
            succeeded,
        )
        if span is not None:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if not outcome.succeeded:
                span.set_attribute("error.type", str(status) if status else "request failed")
        return outcome


def _traced(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the current span's trace context instead of any the job's hold
    (whatever the case of their names)."""
    carrier: dict[str, str] = {}
    tracing.inject_headers(carrier)
    if not carrier:
        return dict(headers)
    replaced = {tracing.TRACEPARENT, tracing.TRACESTATE}
    return {
        **{name: value for name, value in headers.items() if name.lower() not in replaced},
        **carrier,
    }


def _span_attributes(method: str, url: httpx.URL) -> dict[str, str | int | bool] | None:
    """The call's method and URL cut down to scheme, host, port and path (no user info, no
    query: either may hold a credential), and the attempt's execution tag."""
    if not tracing.tracing_on():
        return None
    return {
        "http.request.method": method,
        "url.full": redact_urls(str(url)),
        "server.address": url.host,
        "server.port": url.port or (443 if url.scheme == "https" else 80),
        **tracing.attempt_attributes(),
    }


def _outcome(
    send: Callable[[], Answer], prefix: str, where: str, succeeded: Callable[[int], bool]
) -> tuple[Outcome, int | None]:
    """The outcome of ``send``, and the answer's status code if there was an answer."""
    try:
        answer = send()
    except httpx.TimeoutException:
        return Outcome(False, f"{prefix}Request to {where} timed out"), None
    except httpx.HTTPError as exc:
        return Outcome(False, f"{prefix}Request to {where} failed: {exc}"), None
    message = (
        f"{prefix}Response from {where}: '{answer.status}' "
        f"{answer.reason}; Body: {_excerpt(answer.body_start)}"
    )
    return Outcome(succeeded(answer.status), message), answer.status
