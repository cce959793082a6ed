"""The API's metrics: requests counted by route template, and ``GET /metrics``.

``/metrics`` serves the whole deployment in Prometheus's text format: this API's own
registry and every snapshot the beats and workers pushed into the store
(:mod:`scheduler.observability.exposition`). It takes the administrator's key, or
``TAKT_METRICS_TOKEN`` for a Prometheus that should read nothing else (compared in
constant time). When the store does not answer, the API's own metrics are still served,
with ``takt_store_up 0``: the scrape that says the store is away must not fail with it.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

from scheduler.api.deps import bearer, principal
from scheduler.errors import Forbidden, StoreError
from scheduler.observability import (
    ProcessId,
    StoreGauges,
    process_name,
    process_registry,
    render,
)
from scheduler.observability.asgi import StatusNote
from scheduler.observability.metrics import API_REQUEST_DURATION, API_REQUESTS, STORE_ERRORS
from scheduler.settings import TaktSettings
from scheduler.store.jobs import JobStore
from scheduler.store.metrics import MetricsBoard

__all__ = ["ApiMetrics", "RequestMetrics", "router"]

log = logging.getLogger(__name__)

#: The route label of a request no route matched (a 404, or a 405 at the router).
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

router = APIRouter(tags=["Operations"])


class ApiMetrics:
    """This API's registry, its name in the metrics, and where the others' snapshots are.

    The API itself pushes nothing: it serves its own registry live. (With several APIs,
    each scrape shows the API series of the one that answered; the beats' and workers'
    are the same from any.)"""

    def __init__(self, store: JobStore) -> None:
        self.registry: CollectorRegistry = process_registry("api")
        self.process = ProcessId("api", process_name())
        self.board = MetricsBoard(store)

    def exposition(self) -> bytes:
        try:
            gauges: StoreGauges | None = self.board.gauges()
        except StoreError as exc:
            STORE_ERRORS.inc()
            log.warning("metrics: the store did not answer (%s); serving this API's own", exc)
            gauges = None
        return render(self.registry, self.process, gauges)


class RequestMetrics:
    """ASGI middleware: counts each request by route template (never the raw path, which
    holds job names), method and status, and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # prometheus_client's labels() costs a few µs a call; the children are few.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        noted = StatusNote(send)

        try:
            await self.app(scope, receive, noted)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            counter, histogram = self._child(route, method, noted.status)
            counter.inc()
            histogram.observe(time.perf_counter() - started)

    def _child(self, route: str, method: str, status: int) -> tuple[Counter, Histogram]:
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            child = (
                API_REQUESTS.labels(route, method, str(status)),
                API_REQUEST_DURATION.labels(route, method),
            )
            self._children[key] = child
        return child


async def _metrics_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """The metrics token, or an administrator's key (a reader's is refused: metrics
    describe every tenant's jobs)."""
    settings: TaktSettings = request.app.state.settings
    token = settings.metrics_token
    if credentials is not None and token is not None:
        offered = credentials.credentials.encode()
        if hmac.compare_digest(offered, token.get_secret_value().encode()):
            return
    caller = await principal(request, credentials)
    if not caller.can_write:
        raise Forbidden(f"principal {caller.name!r} may not read the metrics")


@router.get("/metrics", dependencies=[Depends(_metrics_reader)], include_in_schema=False)
def metrics(request: Request) -> Response:
    """The whole deployment's metrics, Prometheus's text format."""
    api_metrics: ApiMetrics = request.app.state.metrics
    return Response(api_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
