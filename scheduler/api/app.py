"""The FastAPI application: ARM routes, health, and the error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from scheduler.api.arm import router as arm_router
from scheduler.api.errors import install_error_handlers
from scheduler.principals import ADMIN_PRINCIPAL, Role, ensure_admin_token, ensure_principal_key
from scheduler.service import JobService
from scheduler.settings import TaktSettings
from scheduler.store import JobStore

__all__ = ["create_app"]


def create_app(settings: TaktSettings, store: JobStore | None = None) -> FastAPI:
    """The API over ``store`` (a new one on the settings' Redis URL if omitted)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store or JobStore.from_url(settings.store_url, settings.key_prefix)
        token, _ = ensure_admin_token(settings)
        ensure_principal_key(own_store, ADMIN_PRINCIPAL, Role.ADMIN, token)
        app.state.service = JobService(own_store)
        yield
        if store is None:
            own_store.close()

    app = FastAPI(
        title="Takt",
        summary="A job scheduler that speaks the Azure Scheduler REST API (2016-03-01).",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(arm_router)

    @app.get("/healthz", tags=["Operations"])
    def healthz() -> JSONResponse:
        """Liveness and readiness: whether the job store answers. No key needed."""
        redis_ok = app.state.service.store.ping()
        body: dict[str, Any] = {"status": "ok" if redis_ok else "degraded", "redis": redis_ok}
        return JSONResponse(body, status_code=200 if redis_ok else 503)

    return app
