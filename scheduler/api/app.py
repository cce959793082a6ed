"""The FastAPI application: ARM routes, health, and the error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from scheduler.api.api_docs import install_api_docs
from scheduler.api.arm import router as arm_router
from scheduler.api.boundary import Boundary
from scheduler.api.classic import router as classic_router
from scheduler.api.errors import install_error_handlers
from scheduler.api.metrics import ApiMetrics, RequestMetrics
from scheduler.api.metrics import router as metrics_router
from scheduler.api.principals import router as principals_router
from scheduler.api.templates import router as templates_router
from scheduler.api.tenant import router as tenant_router
from scheduler.clock import utcnow
from scheduler.console import router as console_router
from scheduler.dispatch import ACTION_ROUTES, TaktCelery, publish_occurrence
from scheduler.domain.models import ActionType
from scheduler.domain.redaction import quiet_http_logging
from scheduler.observability import TracingMiddleware, setup_tracing, use_json_logs
from scheduler.service.builtin_jobs import ensure_builtin_jobs
from scheduler.service.job_collections import CollectionService
from scheduler.service.jobs import JobService, ManualRunner
from scheduler.service.outbound import NetworkPolicy
from scheduler.settings import TaktSettings
from scheduler.store.async_jobs import AsyncJobStore
from scheduler.store.jobs import JobStore
from scheduler.store.ledger import Ledger, LedgerEntry
from scheduler.store.principals import (
    ADMIN_PRINCIPAL,
    KeyCache,
    PrincipalBook,
    Role,
    ensure_admin_token,
    ensure_principal_key,
)

__all__ = ["create_api"]


def _celery_runner(settings: TaktSettings, store: JobStore) -> ManualRunner:
    """Manual runs go through the broker like scheduled ones, entered in the execution
    ledger first; published with a Celery app that only publishes (no worker code)."""
    quiet_http_logging()  # httpx quiet and redacted here too, as in every process that publishes
    celery_app = TaktCelery(settings)
    ledger = Ledger(store, int(settings.redelivery_timeout_s * 1000))

    def run(jid: str, action_type: ActionType, occurrence_ms: int, queue: str | None) -> None:
        ledger.expect(LedgerEntry(jid, occurrence_ms, manual=True), occurrence_ms)
        publish_occurrence(
            celery_app,
            settings.key_prefix,
            jid,
            occurrence_ms,
            action_type,
            manual=True,
            queue=queue,
        )

    return run


def create_api(
    settings: TaktSettings, store: JobStore | None = None, runner: ManualRunner | None = None
) -> FastAPI:
    """The API over ``store`` (a new one on the settings' Redis URL if omitted)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout_s = settings.redis_socket_timeout_s
        own_store = store or JobStore.from_url(
            settings.store_url, settings.key_prefix, socket_timeout_s=timeout_s
        )
        token, _ = ensure_admin_token(settings)
        ensure_principal_key(own_store, ADMIN_PRINCIPAL, Role.ADMIN, token)
        ensure_builtin_jobs(own_store, utcnow())
        # After the start's own writes, which the next start redoes: an API still starts
        # while its replicas are away, and refuses to confirm a user's write meanwhile.
        replicas = settings.min_replicas, settings.redis_replica_timeout_ms
        own_store.require_replicas(*replicas)
        keys = KeyCache()
        principals = PrincipalBook(own_store, keys)
        app.state.keys = keys
        async_store = AsyncJobStore.from_url(
            settings.store_url, own_store.keys, socket_timeout_s=timeout_s
        )
        async_store.require_replicas(*replicas)
        jobs = JobService(
            own_store,
            principals,
            runner or _celery_runner(settings, own_store),
            max_timeout=timedelta(seconds=settings.http_timeout_max_s),
            outbound=NetworkPolicy.from_settings(settings),
            async_store=async_store,
            dispatchable=ACTION_ROUTES.keys(),
        )
        app.state.jobs = jobs
        app.state.collections = CollectionService(own_store, jobs)
        app.state.principals = principals
        app.state.settings = settings
        app.state.metrics = ApiMetrics(own_store)
        yield
        await async_store.close()
        if store is None:
            own_store.close()

    app = FastAPI(
        title="Takt",
        summary="A job scheduler that speaks the Azure Scheduler REST API (2016-03-01).",
        version="0.1.0",
        lifespan=lifespan,
        # Starlette answers a trailing slash with a 307 to an absolute URL built on the
        # Host header; without it such a path is a plain 404.
        redirect_slashes=False,
        # /docs and /redoc are scheduler.api.api_docs's: FastAPI's load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    if settings.log_format == "json":
        use_json_logs("api")
    install_error_handlers(app)
    app.add_middleware(
        Boundary,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
    )
    if settings.metrics:
        app.add_middleware(RequestMetrics)  # outside the boundary: its refusals count too
        app.include_router(metrics_router)
    if setup_tracing("api", settings.tracing):
        app.add_middleware(TracingMiddleware)  # outermost: every request is a span
    app.include_router(arm_router)
    app.include_router(classic_router)
    app.include_router(principals_router)
    app.include_router(templates_router)
    app.include_router(tenant_router)
    app.include_router(console_router)
    install_api_docs(app)

    @app.get("/healthz", tags=["Operations"])
    def healthz() -> JSONResponse:
        """Liveness and readiness: whether the job store answers and takes writes (out of
        memory or a read-only replica: a 503 with the reason). No key needed."""
        answers, refusal = app.state.jobs.store.health()
        if refusal is None:
            return JSONResponse({"status": "ok", "redis": True})
        body: dict[str, Any] = {"status": "degraded", "redis": answers, "reason": refusal}
        return JSONResponse(body, status_code=503)

    return app
