"""TAKT_TRACING=true on a real deployment (API, beat and worker processes): each exports its
spans over OTLP/HTTP to a collector this module runs (it decodes the protobuf with
opentelemetry-proto), and an Http action's target receives the ``traceparent`` of the
worker's call span, in the trace of whoever handed the attempt out (the beat's batch, or
the API request of a manual run)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.arm import API_VERSION, http_job, in_seconds, new_collection, put_job
from tests.support.helpers import HttpTarget, Received, wait_until
from tests.support.stack import Stack, start_stack, stop_stack


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                collector.receive(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def receive(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    exported = ExportedSpan(
                        str(resource.get("service.name")),
                        span.name,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        {kv.key: _value(kv.value) for kv in span.attributes},
                    )
                    with self.lock:
                        self.spans.append(exported)

    def find(self, **wanted: str) -> list[ExportedSpan]:
        with self.lock:
            return [s for s in self.spans if all(getattr(s, k) == v for k, v in wanted.items())]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.close()


@pytest.fixture(scope="module")
def traced_stack(
    redis_url: str, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs: Path = tmp_path_factory.mktemp("traced-stack-logs")
    extra = {
        "TAKT_TRACING": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans reach the collector soon
    }
    stack, _ = start_stack(redis_url, logs, extra_env=extra)
    yield stack
    stop_stack(stack)


def _parts(traceparent: str) -> tuple[str, str]:
    """The trace id and the parent span id of a ``traceparent`` header."""
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id


def _one_request(target: HttpTarget, path: str) -> Received:
    wait_until(lambda: target.requests_to(path), timeout=30, message=f"a request to {path}")
    (received,) = target.requests_to(path)
    return received


def _span(collector: Collector, **wanted: str) -> ExportedSpan:
    wait_until(lambda: collector.find(**wanted), timeout=15, message=f"a span {wanted}")
    (found,) = collector.find(**wanted)
    return found


def test_a_scheduled_run_is_one_trace_from_the_beats_batch_to_the_targets_traceparent(
    traced_stack: Stack, collector: Collector, target: HttpTarget
) -> None:
    # Given an Http job due in a second, on a deployment with tracing on
    coll = new_collection(traced_stack.http)
    path = f"/scheduled-{uuid.uuid4().hex[:8]}"
    put_job(traced_stack.http, coll, "due", http_job(f"{target.url}{path}", start=in_seconds(1)))

    # When the beat fires it and a worker runs it
    received = _one_request(target, path)

    # Then the target received a traceparent: the worker's call span's
    assert "traceparent" in received.headers, received.headers
    trace_id, call_id = _parts(received.headers["traceparent"])
    call = _span(collector, span_id=call_id)
    assert (call.service, call.name, call.trace_id) == ("takt-worker", "GET", trace_id)
    # whose parent is the attempt's span, tagged with the execution tag the target saw
    attempt = _span(collector, span_id=call.parent_id)
    assert (attempt.service, attempt.name, attempt.trace_id) == (
        "takt-worker",
        "takt.attempt",
        trace_id,
    )
    tag = received.headers["x-ms-execution-tag"]
    assert attempt.attributes["takt.execution_tag"] == tag
    assert call.attributes["takt.execution_tag"] == tag
    assert attempt.attributes["takt.action_type"] == "Http"
    assert attempt.attributes["takt.outcome"] == "completed"
    # whose parent is the beat's span of the batch that published it
    batch = _span(collector, span_id=attempt.parent_id)
    assert (batch.service, batch.name, batch.trace_id) == ("takt-beat", "takt.dispatch", trace_id)
    assert batch.attributes["takt.occurrences"] >= 1


def test_a_manual_run_is_one_trace_from_the_api_request_to_the_targets_traceparent(
    traced_stack: Stack, collector: Collector, target: HttpTarget
) -> None:
    # Given an Http job not due for a day
    coll = new_collection(traced_stack.http)
    path = f"/manual-{uuid.uuid4().hex[:8]}"
    later = http_job(f"{target.url}{path}", start=in_seconds(86_400))
    put_job(traced_stack.http, coll, "later", later)

    # When a client runs it now through the API
    answer = traced_stack.http.post(f"{coll}/jobs/later/run", params=API_VERSION)
    assert answer.status_code == 200, answer.text
    received = _one_request(target, path)

    # Then the worker's attempt is a child of the API request's span, in one trace with
    # the call whose traceparent the target received
    trace_id, call_id = _parts(received.headers["traceparent"])
    call = _span(collector, span_id=call_id)
    attempt = _span(collector, span_id=call.parent_id)
    assert (attempt.name, attempt.trace_id, attempt.attributes["takt.manual"]) == (
        "takt.attempt",
        trace_id,
        True,
    )
    request = _span(collector, span_id=attempt.parent_id)
    assert request.service == "takt-api"
    assert request.trace_id == trace_id
    assert request.name == (
        "POST /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
        "/providers/Microsoft.Scheduler/jobCollections/{jobCollectionName}/jobs/{jobName}/run"
    )
    assert request.attributes["http.response.status_code"] == 200


def test_no_exported_span_holds_a_credential_of_a_job(
    traced_stack: Stack, collector: Collector, target: HttpTarget
) -> None:
    # Given a job with a basic-auth password, a secret header and a secret in its query,
    # created, run by the API and fired by the beat, whose target echoes the secrets back
    password, header, query = (f"{kind}-{uuid.uuid4().hex}" for kind in ("pw", "hdr", "qs"))
    coll = new_collection(traced_stack.http)
    path = f"/keyed-{uuid.uuid4().hex[:8]}?code={query}"
    job = http_job(f"{target.url}{path}", start=in_seconds(1), method="POST")
    job["properties"]["action"]["request"].update(
        headers={"x-api-key": header},
        authentication={"type": "Basic", "username": "u", "password": password},
    )
    target.answer(path, 500, f"{password} {header}".encode())
    put_job(traced_stack.http, coll, "keyed", job)
    traced_stack.http.post(f"{coll}/jobs/keyed/run", params=API_VERSION)

    # When both attempts have run and their spans are exported
    wait_until(lambda: len(target.requests_to(path)) == 2, timeout=30, message="two calls")
    for received in target.requests_to(path):
        _span(collector, span_id=_parts(received.headers["traceparent"])[1])

    # Then the calls carried the secrets, and no exported span says any of them
    assert target.requests_to(path)[0].headers["x-api-key"] == header
    with collector.lock:
        text = repr(collector.spans)
    for secret in (password, header, query):
        assert secret not in text


def test_tracing_is_off_by_default_and_no_traceparent_is_sent(
    stack: Stack, target: HttpTarget
) -> None:
    # Given the default deployment (TAKT_TRACING unset) and an Http job due in a second
    assert "TAKT_TRACING" not in stack.env
    coll = new_collection(stack.http)
    path = f"/untraced-{uuid.uuid4().hex[:8]}"
    put_job(stack.http, coll, "due", http_job(f"{target.url}{path}", start=in_seconds(1)))

    # When it runs
    received = _one_request(target, path)

    # Then the target received no trace header
    assert {"traceparent", "tracestate"}.isdisjoint(k.lower() for k in received.headers)
