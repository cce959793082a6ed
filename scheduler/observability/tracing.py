"""Traces: OpenTelemetry spans of an attempt's way through Takt, with ``TAKT_TRACING=true``.

Optional twice over: OpenTelemetry is the ``otel`` extra (``pip install takt[otel]``),
imported only by :func:`setup_tracing`; and tracing is off unless ``TAKT_TRACING`` turns it
on. Off (or without the package), every helper here returns at once: no span object is
made, no header is added, :func:`span` is one shared ``nullcontext``. The only state is
the module's tracer, set once per process by its entry point (the API, a beat, a worker).

The spans (docs/operations.md "Traces"):

- ``<METHOD> <route template>``: a server span per API request (:class:`TracingMiddleware`);
- ``takt.dispatch``: a producer span per batch a beat publishes;
- ``takt.attempt``: a consumer span per attempt a worker runs, the child of whatever
  published it (a ``traceparent`` header in the Celery task message);
- ``<METHOD>``: a client span per outbound HTTP call of an action, whose context the
  target receives as ``traceparent`` (and ``tracestate``).

Where spans go is OpenTelemetry's own configuration, read by its SDK:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) for the OTLP/HTTP
exporter, ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` for the resource,
``OTEL_TRACES_SAMPLER`` and ``OTEL_BSP_*`` for sampling and batching.

No secret reaches an attribute: a URL is cut down to scheme, host, port and path
(:func:`scheduler.domain.redaction.redact_urls`), no header is ever recorded, and an
exception is named by its type only (its message may quote a credential).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Literal

from scheduler.observability.asgi import StatusNote
from scheduler.observability.logs import current_attempt

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "SpanKindName",
    "TracingMiddleware",
    "attempt_attributes",
    "inject_headers",
    "setup_tracing",
    "span",
    "stop_tracing",
    "traceparent",
    "tracing_on",
]

log = logging.getLogger(__name__)

SpanKindName = Literal["internal", "server", "client", "producer", "consumer"]

#: The W3C Trace Context headers (lower case, as HTTP/2 and ASGI write them).
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

#: This process's tracer; None while tracing is off (every hot path checks only this).
_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_NO_SPAN: AbstractContextManager[None] = nullcontext()


def tracing_on() -> bool:
    return _tracer is not None


def setup_tracing(role: str, enabled: bool, *, exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on in this process as ``takt-<role>`` (unless ``OTEL_SERVICE_NAME``
    names it); whether it is on. Spans go to ``exporter`` as each ends (tests), else
    in batches to the OTLP/HTTP exporter. Once on, later calls without an exporter keep
    what is there (a process may build several apps)."""
    global _tracer, _provider
    if not enabled:
        return _tracer is not None
    if _tracer is not None and exporter is None:
        return True
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning("TAKT_TRACING is on but OpenTelemetry is not installed (takt[otel]): off")
        return False
    stop_tracing()
    resource = Resource.create(
        {
            "service.namespace": "takt",
            "service.instance.id": f"{role}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            "takt.role": role,
        }
    )
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"takt-{role}"}))
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
    _provider, _tracer = provider, provider.get_tracer("takt")
    return True


def _otlp_exporter() -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # its endpoint, headers and timeout: OTEL_EXPORTER_OTLP_*


def stop_tracing() -> None:
    """Export what is pending and turn tracing off in this process."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def span(
    name: str,
    *,
    kind: SpanKindName = "internal",
    attributes: Mapping[str, str | int | bool] | None = None,
    parent: str | None = None,
) -> AbstractContextManager[Span | None]:
    """A span, current inside the block (None and nothing made while tracing is off).
    ``parent`` is a ``traceparent`` header's value: the span continues that trace;
    otherwise it is a child of the current span, if any. An exception leaving the block
    marks the span as an error named by the exception's type, and goes on."""
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    return _span(tracer, name, kind, attributes, parent)


@contextmanager
def _span(
    tracer: Tracer,
    name: str,
    kind: SpanKindName,
    attributes: Mapping[str, str | int | bool] | None,
    parent: str | None,
) -> Iterator[Span]:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    context = _extract({TRACEPARENT: parent}) if parent else None
    with tracer.start_as_current_span(
        name,
        context=context,
        kind=SpanKind[kind.upper()],
        attributes=dict(attributes or {}),
        record_exception=False,  # its message may quote a credential
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__qualname__)
            current.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
            raise


def attempt_attributes() -> dict[str, str]:
    """The current attempt's execution tag (which links its spans to its history entry
    and to the receiver's ``x-ms-execution-tag``), if a worker is running one."""
    about = current_attempt()
    return {} if about is None else {"takt.execution_tag": about.execution_tag()}


def traceparent() -> str | None:
    """The current span's ``traceparent`` header, for a task message (None while tracing
    is off or outside any span)."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    return carrier.get(TRACEPARENT)


def inject_headers(headers: MutableMapping[str, str]) -> None:
    """Write the current span's ``traceparent`` (and ``tracestate``, if any) into an
    outbound request's headers. Takt's replace any the job's definition holds: a value
    written into a definition is the same on every call and would join every run to one
    stale trace (docs/operations.md "Traces"). Nothing changes while tracing is off."""
    if _tracer is None:
        return
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    if TRACEPARENT not in carrier:
        return
    for name in (TRACEPARENT, TRACESTATE):
        if name in headers:
            del headers[name]
    headers.update(carrier)


def _propagator() -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def _extract(carrier: Mapping[str, str]) -> Context:
    context: Context = _propagator().extract(carrier)
    return context


class TracingMiddleware:
    """ASGI middleware: a server span per HTTP request, named by method and route template
    (never the raw path, which holds job names, nor the query), continuing the caller's
    trace if its request has a valid ``traceparent``. Its only attributes are the method,
    the route and the status: no header, no URL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = _tracer
        if tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry.trace import SpanKind, Status, StatusCode

        noted = StatusNote(send)

        method = str(scope["method"])
        with tracer.start_as_current_span(
            method,
            context=_extract(_trace_headers(scope)),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as current:
            try:
                await self.app(scope, receive, noted)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    current.update_name(f"{method} {route}")
                    current.set_attribute("http.route", route)
                current.set_attribute("http.response.status_code", noted.status)
                if noted.status >= 500:
                    current.set_status(Status(StatusCode.ERROR))


def _trace_headers(scope: Scope) -> dict[str, str]:
    wanted = (TRACEPARENT.encode(), TRACESTATE.encode())
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name in wanted
    }
