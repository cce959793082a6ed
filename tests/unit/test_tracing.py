"""TAKT_TRACING: an attempt is a span with a child span per outbound call, whose
``traceparent`` the target receives; off, nothing is sent; no span holds a credential.

Each test runs a real attempt (workers.execution.execute) against the session's Valkey and
a real local HTTP target, with the SDK's in-memory exporter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from scheduler.api import create_api
from scheduler.dispatch import PipelinePublisher, route_for
from scheduler.dispatch.messages import MessageTemplate, protocol2_message
from scheduler.domain.models import ActionType, JobCollection, JobProperties
from scheduler.observability import setup_tracing, stop_tracing, tracing, tracing_on
from scheduler.settings import TaktSettings, load_settings
from scheduler.store.jobs import JobStore
from scheduler.store.ledger import LedgerEntry
from tests.support.helpers import ADMIN_TOKEN, HttpTarget
from workers.attempt import RunRequest
from workers.context import WorkerContext
from workers.execution import VerdictWord, execute

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CID = "s/rg/traced"
PASSWORD = "basic-password-trace-58"
HEADER_SECRET = "header-secret-trace-91"
QUERY_SECRET = "query-secret-trace-23"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert setup_tracing("worker", True, exporter=exporter)
    try:
        yield exporter
    finally:
        stop_tracing()


@pytest.fixture
def ctx(settings: TaktSettings) -> Iterator[WorkerContext]:
    context = WorkerContext(settings, publish=lambda *_: None, send_task=lambda *_: None)
    try:
        yield context
    finally:
        context.close()


def _add(store: JobStore, name: str, action: dict[str, Any]) -> str:
    store.put_collection(CID, JobCollection())
    jid = f"{CID}/{name}"
    action["request"] = {"method": "GET", **action["request"]}
    properties = JobProperties.model_validate({"action": action})
    store.put_job(jid, properties, owner="admin", next_fire_ms=None)
    return jid


def _run(ctx: WorkerContext, jid: str, *, traceparent: str | None = None) -> VerdictWord:
    ctx.ledger.expect(LedgerEntry(jid, 1_000), ctx.store.time_ms())
    return execute(ctx, RunRequest(jid, 1_000), traceparent=traceparent).word


def _one(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in spans.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    return found[0]


def _traceparent_of(span: ReadableSpan) -> str:
    assert span.context is not None
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _headers_named(headers: dict[str, str], name: str) -> list[str]:
    return [value for key, value in headers.items() if key.lower() == name]


def test_an_attempt_is_a_span_whose_http_call_is_a_child_span_the_target_receives(
    spans: InMemorySpanExporter, ctx: WorkerContext, store: JobStore, target: HttpTarget
) -> None:
    # Given an Http job, and a publisher's span the task message names as its parent
    jid = _add(store, "hook", {"type": "Http", "request": {"uri": f"{target.url}/hook"}})
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    # When a worker runs an attempt
    assert _run(ctx, jid, traceparent=parent) is VerdictWord.COMPLETED

    # Then the attempt is a consumer span in the publisher's trace, with its ids
    attempt = _one(spans, "takt.attempt")
    assert attempt.kind is SpanKind.CONSUMER
    assert attempt.parent is not None
    assert attempt.context is not None
    assert f"{attempt.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{attempt.parent.span_id:016x}" == "b7ad6b7169203331"
    run = RunRequest(jid, 1_000)
    assert dict(attempt.attributes or {}) == {
        "takt.job": jid,
        "takt.occurrence": "1970-01-01T00:00:01+00:00",
        "takt.attempt": "m0",
        "takt.execution_tag": run.execution_tag,
        "takt.action_type": "Http",
        "takt.manual": False,
        "takt.outcome": "completed",
    }
    # and the HTTP call is its child client span, tagged with the same execution tag
    call = _one(spans, "GET")
    assert call.kind is SpanKind.CLIENT
    assert call.parent is not None
    assert call.parent.span_id == attempt.context.span_id
    attributes = dict(call.attributes or {})
    assert attributes["takt.execution_tag"] == run.execution_tag
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.full"] == f"{target.url}/hook"
    # and the target received that span's traceparent, once
    (received,) = target.requests_to("/hook")
    assert _headers_named(received.headers, "traceparent") == [_traceparent_of(call)]
    assert received.headers["x-ms-execution-tag"] == run.execution_tag


def test_a_failed_call_is_an_error_span_and_the_attempt_says_it_failed(
    spans: InMemorySpanExporter, ctx: WorkerContext, store: JobStore, target: HttpTarget
) -> None:
    # Given an Http job whose target answers 503
    jid = _add(store, "down", {"type": "Http", "request": {"uri": f"{target.url}/down"}})
    target.answer("/down", 503, b"busy")

    # When a worker runs its only attempt (no parent: a trace of its own)
    assert _run(ctx, jid) is VerdictWord.FAILED

    # Then the call span names the status as the error, and the attempt its outcome
    call = _one(spans, "GET")
    assert dict(call.attributes or {})["error.type"] == "503"
    attempt = _one(spans, "takt.attempt")
    assert attempt.parent is None
    assert dict(attempt.attributes or {})["takt.outcome"] == "failed"


def test_with_tracing_off_no_traceparent_is_sent_and_no_span_is_made(
    ctx: WorkerContext, store: JobStore, target: HttpTarget
) -> None:
    # Given tracing off (the default) and an Http job
    assert not load_settings({}).tracing
    assert not tracing_on()
    jid = _add(store, "plain", {"type": "Http", "request": {"uri": f"{target.url}/plain"}})

    # When a worker runs an attempt whose message carried a traceparent all the same
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert _run(ctx, jid, traceparent=parent) is VerdictWord.COMPLETED

    # Then the target received no trace header, and the helpers make nothing
    (received,) = target.requests_to("/plain")
    assert not _headers_named(received.headers, "traceparent")
    assert not _headers_named(received.headers, "tracestate")
    with tracing.span("nothing") as span:
        assert span is None
    assert tracing.traceparent() is None


def test_a_jobs_own_traceparent_header_is_replaced_by_takts_with_tracing_on(
    spans: InMemorySpanExporter, ctx: WorkerContext, store: JobStore, target: HttpTarget
) -> None:
    # Given a job whose definition holds trace headers of its own, in another case
    stale = "00-11111111111111111111111111111111-2222222222222222-01"
    request = {
        "uri": f"{target.url}/own",
        "headers": {"TraceParent": stale, "TraceState": "vendor=stale"},
    }
    jid = _add(store, "own", {"type": "Http", "request": request})

    # When it runs with tracing on
    assert _run(ctx, jid) is VerdictWord.COMPLETED

    # Then the target received one traceparent, Takt's, and no stale tracestate
    (received,) = target.requests_to("/own")
    assert _headers_named(received.headers, "traceparent") == [_traceparent_of(_one(spans, "GET"))]
    assert not _headers_named(received.headers, "tracestate")


def test_no_span_attribute_or_name_holds_a_credential_of_the_job(
    spans: InMemorySpanExporter, ctx: WorkerContext, store: JobStore, target: HttpTarget
) -> None:
    # Given jobs with a basic-auth password, a secret header and a secret in the query,
    # one answered, one whose call fails with its URI in the error
    request = {
        "uri": f"{target.url}/keyed?code={QUERY_SECRET}",
        "method": "POST",
        "headers": {"x-api-key": HEADER_SECRET},
        "authentication": {"type": "Basic", "username": "u", "password": PASSWORD},
    }
    answered = _add(store, "keyed", {"type": "Http", "request": request})
    refused = _add(
        store,
        "refused",
        {
            "type": "Http",
            "request": {**request, "uri": f"http://127.0.0.1:9/x?code={QUERY_SECRET}"},
        },
    )

    # When both run, and the target echoes the secrets in its answer
    target.answer(f"/keyed?code={QUERY_SECRET}", 500, f"{PASSWORD} {HEADER_SECRET}".encode())
    _run(ctx, answered)
    _run(ctx, refused)

    # Then the request did carry the secrets, but no span says any of them anywhere
    assert target.requests_to(f"/keyed?code={QUERY_SECRET}")
    finished = spans.get_finished_spans()
    assert len(finished) == 4
    text = json.dumps(
        [
            {
                "name": s.name,
                "attributes": dict(s.attributes or {}),
                "events": [(e.name, dict(e.attributes or {})) for e in s.events],
                "status": s.status.description,
                "resource": dict(s.resource.attributes),
            }
            for s in finished
        ]
    )
    for secret in (PASSWORD, HEADER_SECRET, QUERY_SECRET):
        assert secret not in text


def test_a_traced_batch_message_carries_the_batch_traceparent_and_is_otherwise_the_same() -> None:
    # Given the template the beat renders messages from, traced and not
    args: dict[str, Any] = {"origin": "gen1@host", "reply_to": "r"}
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    # When a message is rendered from each
    plain = MessageTemplate("takt.action.http", {}, "q", **args).render("a/b", 5, "id", "t")
    traced = MessageTemplate("takt.action.http", {}, "q", traced=True, **args).render(
        "a/b", 5, "id", "t", parent
    )

    # Then each is exactly protocol2_message's, the traced one with the header only
    expected = protocol2_message(
        "takt.action.http", "id", ["a/b", 5], {}, "q", delivery_tag="t", **args
    )
    assert plain == expected
    assert traced == protocol2_message(
        "takt.action.http",
        "id",
        ["a/b", 5],
        {},
        "q",
        delivery_tag="t",
        traceparent=parent,
        **args,
    )
    assert "traceparent" not in json.loads(plain)["headers"]
    assert json.loads(traced)["headers"]["traceparent"] == parent


def test_a_beats_batch_in_a_span_gives_every_message_that_spans_traceparent(
    spans: InMemorySpanExporter, settings: TaktSettings
) -> None:
    # Given a beat's publisher on the Redis broker
    publisher = PipelinePublisher(settings.celery_broker_url, settings.key_prefix)
    queue = route_for(ActionType.HTTP).queue(settings.key_prefix)
    try:
        # When it publishes a batch (an occurrence and a retry) inside a dispatch span
        with tracing.span("takt.dispatch", kind="producer") as batch:
            assert batch is not None
            from scheduler.dispatch import Outgoing

            publisher.publish(
                [
                    Outgoing("s/rg/c/a", 1, ActionType.HTTP),
                    Outgoing("s/rg/c/b", 2, ActionType.HTTP, attempt=1),
                ]
            )
        # Then both messages carry the batch span's traceparent
        raw = publisher.redis.lrange(queue, 0, -1)
    finally:
        publisher.redis.delete(queue)
        publisher.close()
    headers = [json.loads(message)["headers"] for message in raw]
    expected = _traceparent_of(_one(spans, "takt.dispatch"))
    assert [h["traceparent"] for h in headers] == [expected, expected]


def test_an_api_request_is_a_server_span_named_by_its_route_template_without_secrets(
    spans: InMemorySpanExporter, settings: TaktSettings, store: JobStore
) -> None:
    # Given the API, tracing on in this process
    app = create_api(settings, store, runner=lambda *_: None)

    # When a client sends a request with its key and a query
    with TestClient(app) as client:
        answer = client.get(
            f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Scheduler/jobCollections/"
            f"c?api-version=2016-03-01&code={QUERY_SECRET}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    # Then it is one server span named by method and route template, with no secret
    assert answer.status_code == 404
    (request,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert request.name.startswith("GET /subscriptions/{")
    attributes = dict(request.attributes or {})
    assert attributes["http.response.status_code"] == 404
    assert attributes["http.route"] == request.name.removeprefix("GET ")
    assert ADMIN_TOKEN not in json.dumps(attributes)
    assert QUERY_SECRET not in json.dumps(attributes)


def test_without_the_otel_extra_takt_imports_and_tracing_stays_off(tmp_path: Path) -> None:
    # Given a Python in which OpenTelemetry's SDK and exporter cannot be imported
    script = textwrap.dedent(
        """
        import logging, sys
        for name in ("opentelemetry.sdk", "opentelemetry.exporter"):
            sys.modules[name] = None  # import raises ImportError
        import beat.scheduler, scheduler.api, workers.app
        from scheduler.observability import setup_tracing, tracing
        logging.basicConfig(level=logging.WARNING)
        print("on" if setup_tracing("worker", True) else "off")
        with tracing.span("x") as span:
            print(span, tracing.traceparent())
        """
    )

    # When every service's module is imported and tracing is asked for
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        check=False,
    )

    # Then it runs untraced and says why
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["off", "None", "None"]
    assert "OpenTelemetry is not installed" in done.stderr
