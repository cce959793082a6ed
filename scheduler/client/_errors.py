"""The client's one error boundary: ARM error bodies and httpx failures become Takt errors.

=========================  ===============================================
the API answers            the client raises
=========================  ===============================================
400                        :class:`~scheduler.errors.ValidationFailed`
401                        :class:`~scheduler.errors.AuthenticationFailed`
403                        :class:`~scheduler.errors.Forbidden`
404 ``JobNotFound``        :class:`~scheduler.errors.JobNotFound`
404 ``JobCollection...``   :class:`~scheduler.errors.CollectionNotFound`
404 (other codes)          :class:`~scheduler.errors.NotFound`
409 ``QuotaExceeded``      :class:`~scheduler.errors.QuotaExceeded`
409 (other codes)          :class:`~scheduler.errors.Conflict`
any other non-2xx          :class:`~scheduler.errors.ApiError` (``status``, ``code``)
no answer (httpx error)    :class:`~scheduler.errors.ClientError`, chained
=========================  ===============================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from scheduler.errors import (
    ApiError,
    AuthenticationFailed,
    ClientError,
    CollectionNotFound,
    Conflict,
    Forbidden,
    JobNotFound,
    NotFound,
    QuotaExceeded,
    TaktError,
    ValidationFailed,
)

__all__ = ["error_for", "raise_for_error", "transport_errors"]

_BY_STATUS_AND_CODE: dict[tuple[int, str], Callable[[str], TaktError]] = {
    (404, "JobNotFound"): JobNotFound,
    (404, "JobCollectionNotFound"): CollectionNotFound,
    (409, "QuotaExceeded"): QuotaExceeded,
}
_BY_STATUS: dict[int, Callable[[str], TaktError]] = {
    401: AuthenticationFailed,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}
#: The server's 400 messages start with the field they are about ("properties.x: ...").
_NAMED_FIELD = re.compile(r"^([A-Za-z$][\w.\[\]$-]*): ")


def _arm_error(response: httpx.Response) -> tuple[str, str]:
    """The ``(code, message)`` of an ARM error body, or a stand-in when there is none."""
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return "", f"HTTP {response.status_code} from {response.request.url}: {text}"


def error_for(response: httpx.Response) -> TaktError:
    """The exception an error response stands for; the message is the server's."""
    code, message = _arm_error(response)
    status = response.status_code
    if status == 400:
        named = _NAMED_FIELD.match(message)
        return ValidationFailed(message, field=named.group(1) if named else None)
    kind = _BY_STATUS_AND_CODE.get((status, code)) or _BY_STATUS.get(status)
    if kind is not None:
        return kind(message)
    return ApiError(message, status=status, code=code)


def raise_for_error(response: httpx.Response) -> None:
    """Raise the mapped exception unless the response is a success (2xx).

    Raises:
        TaktError: the class the table in this module's docstring names.
    """
    if not response.is_success:
        raise error_for(response)


@contextmanager
def transport_errors() -> Iterator[None]:
    """Turn httpx's exceptions (connection refused, timeouts, bad URLs) into ClientError."""
    try:
        yield
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        detail = str(exc) or "no detail"
        raise ClientError(f"could not reach the Takt API ({type(exc).__name__}: {detail})") from exc
