"""Every error leaves the API as an ARM error body: ``{"error": {"code", "message"}}``.

The one exception is MSDN's classic job collection operations
(:mod:`scheduler.api.classic_collections`), which answer as the Service Management API
does (MSDN, "Service Management Status and Error Codes"): the same status, the error in
XML, ``<Error xmlns="http://schemas.microsoft.com/windowsazure"><Code/><Message/></Error>``,
with Service Management's name for the code where it has one
(:func:`as_service_management_error`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from xml.sax.saxutils import escape

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
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

__all__ = [
    "arm_error",
    "as_service_management_error",
    "install_error_handlers",
    "service_management_error",
]

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


#: Service Management's codes (MSDN ee460801) for the ARM codes that have one; the others
#: (AuthenticationFailed, BadRequest among them, which both APIs share) are kept.
_SERVICE_MANAGEMENT_CODES = {
    "JobCollectionNotFound": "ResourceNotFound",
    "JobNotFound": "ResourceNotFound",
    "NotFound": "ResourceNotFound",
    "Conflict": "ConflictError",
    "ServiceUnavailable": "ServerBusy",
    "InternalServerError": "InternalError",
}

_SERVICE_MANAGEMENT_NAMESPACE = "http://schemas.microsoft.com/windowsazure"

# Characters XML 1.0 cannot carry, even escaped; a message may quote what a client sent.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def service_management_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """An error as the Service Management API answers it: XML ``Error``, ``Code``, ``Message``."""
    text = _NOT_XML.sub("\ufffd", message)
    body = (
        f'<Error xmlns="{_SERVICE_MANAGEMENT_NAMESPACE}">'
        f"<Code>{escape(code)}</Code><Message>{escape(text)}</Message></Error>"
    )
    return Response(body, status, headers=headers, media_type="application/xml")


def as_service_management_error(arm: Response) -> Response:
    """The ARM error answer ``arm`` (one of the handlers' below) as Service Management's:
    the same status, code (renamed where Service Management names it otherwise), message
    and headers (``WWW-Authenticate``)."""
    error = json.loads(bytes(arm.body))["error"]
    code = _SERVICE_MANAGEMENT_CODES.get(error["code"], error["code"])
    kept = {k: v for k, v in arm.headers.items() if not k.startswith("content-")}
    return service_management_error(arm.status_code, code, error["message"], kept)


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
