"""Azure Scheduler's size limits on a job definition; over a limit is a 400 naming it."""

from __future__ import annotations

import json

from scheduler.domain.models import HttpRequest, JobProperties
from scheduler.errors import LimitExceeded

__all__ = [
    "MAX_BODY_CHARS",
    "MAX_HEADERS",
    "MAX_JOB_BYTES",
    "MAX_URI_CHARS",
    "check_limits",
]

MAX_JOB_BYTES = 16 * 1024
MAX_URI_CHARS = 2048
MAX_HEADERS = 50
MAX_BODY_CHARS = 8192


def _check_request(request: HttpRequest, where: str) -> None:
    if len(request.uri) > MAX_URI_CHARS:
        raise LimitExceeded(
            f"{where}.uri is {len(request.uri):,} characters; the limit is {MAX_URI_CHARS:,}",
            field=f"{where}.uri",
        )
    if request.headers and len(request.headers) > MAX_HEADERS:
        raise LimitExceeded(
            f"{where}.headers has {len(request.headers)} headers; the limit is {MAX_HEADERS}",
            field=f"{where}.headers",
        )
    if request.body and len(request.body) > MAX_BODY_CHARS:
        raise LimitExceeded(
            f"{where}.body is {len(request.body):,} characters; the limit is {MAX_BODY_CHARS:,}",
            field=f"{where}.body",
        )


def check_limits(properties: JobProperties) -> None:
    """Raise :class:`LimitExceeded` naming the first limit the job breaks."""
    action = properties.action
    if action.request is not None:
        _check_request(action.request, "properties.action.request")
    if action.error_action is not None and action.error_action.request is not None:
        _check_request(action.error_action.request, "properties.action.errorAction.request")
    size = len(json.dumps(properties.to_wire(), separators=(",", ":")).encode())
    if size > MAX_JOB_BYTES:
        raise LimitExceeded(
            f"the job definition is {size:,} bytes; the limit is {MAX_JOB_BYTES:,} (16 KB)",
            field="properties",
        )
