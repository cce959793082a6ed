"""Every error leaves the API as an ARM error body: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from scheduler.domain.models import describe_validation_error
from scheduler.errors import (
    AuthenticationFailed,
    CollectionNotFound,
    Conflict,
    Forbidden,
    JobNotFound,
    NotFound,
    QuotaExceeded,
    StoreError,
    TaktError,
    UnreadableJob,
    ValidationFailed,
)
from scheduler.observability.metrics import STORE_ERRORS

__all__ = ["arm_error", "install_error_handlers"]

log = logging.getLogger(__name__)

_STATUS_CODES: Sequence[tuple[type[TaktError], int, str]] = (
    (ValidationFailed, 400, "BadRequest"),
    (CollectionNotFound, 404, "JobCollectionNotFound"),
    (JobNotFound, 404, "JobNotFound"),
    (NotFound, 404, "NotFound"),
    (QuotaExceeded, 409, "QuotaExceeded"),
    (UnreadableJob, 409, "UnreadableJob"),
    (Conflict, 409, "Conflict"),
    (AuthenticationFailed, 401, "AuthenticationFailed"),
    (Forbidden, 403, "AuthorizationFailed"),
    (StoreError, 503, "ServiceUnavailable"),
)


#: ARM's error codes for the HTTP errors FastAPI and the routes raise.
_HTTP_CODES = {404: "NotFound", 405: "MethodNotAllowed", 415: "UnsupportedMediaType"}


def arm_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map Takt's exception tree, validation errors and HTTP errors to ARM bodies."""

    @app.exception_handler(TaktError)
    async def _takt_error(_: Request, exc: TaktError) -> JSONResponse:
        for kind, status, code in _STATUS_CODES:
            if isinstance(exc, kind):
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                if status >= 500:
                    STORE_ERRORS.inc()
                    log.error("store failure: %s", exc)
                return arm_error(status, code, str(exc), headers)
        log.exception("unmapped Takt error", exc_info=exc)
        return arm_error(500, "InternalServerError", "internal error")

    @app.exception_handler(redis.RedisError)
    async def _store_failed(_: Request, exc: redis.RedisError) -> JSONResponse:
        """A redis error that escaped :func:`scheduler.store.jobs.redis_errors`: still a 503."""
        STORE_ERRORS.inc()
        log.error("store failure outside the store boundary: %r", exc)
        return arm_error(503, "ServiceUnavailable", f"job store: {exc}")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return arm_error(400, "BadRequest", describe_validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "Error")
        return arm_error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))
