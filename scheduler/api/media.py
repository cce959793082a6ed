"""Which bodies are JSON: one rule for every route that takes one.

``application/json``, ``text/json`` (which Microsoft's Scheduler spec declares for every
PUT and PATCH) and any ``application/*+json`` (``application/merge-patch+json`` for a
PATCH) are JSON, whatever their parameters. A body under any other media type, or under
none, is refused with a 415 ``UnsupportedMediaType`` that names what was sent, once the
key has been checked (an unknown caller learns nothing about the route).

FastAPI reads ``application/json`` and ``application/*+json`` itself; :class:`JsonRoute`
(every API router's route class) adds ``text/json`` and turns FastAPI's "not a
dictionary" about a non-JSON body into that 415. The hand-solved PUT job route
(:mod:`scheduler.api.hand_solved`) asks :func:`is_json` and :func:`refusal` directly.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Scope

__all__ = ["JSON_MEDIA_TYPES", "JsonRoute", "is_json", "refusal"]

#: What the 415's message offers instead.
JSON_MEDIA_TYPES = "application/json, text/json or application/*+json"


def _media_type(content_type: str) -> tuple[str, str]:
    """The (type, subtype) of a Content-Type header value, lower case, parameters dropped."""
    message = email.message.Message()
    message["content-type"] = content_type
    return message.get_content_maintype(), message.get_content_subtype()


def is_json(content_type: str | None) -> bool:
    """Whether a body sent with this Content-Type is read as JSON."""
    if not content_type:
        return False
    if content_type == "application/json":  # the common case, without parsing
        return True
    kind, subtype = _media_type(content_type)
    if kind == "text":
        return subtype == "json"
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def refusal(content_type: str | None) -> HTTPException:
    """The 415 for a body that is not under a JSON media type."""
    sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
    return HTTPException(415, f"body: sent with {sent}; this route takes {JSON_MEDIA_TYPES}")


class JsonRoute(APIRoute):
    """An API route whose JSON body may come under any JSON media type (see the module)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle

        async def json_body_route(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if is_json(content_type) and _media_type(content_type or "")[0] == "text":
                request = Request(_as_application_json(request.scope), request.receive)
            try:
                return await handle(request)
            except RequestValidationError as exc:
                if not is_json(content_type) and await request.body():
                    raise refusal(content_type) from exc
                raise

        return json_body_route


def _as_application_json(scope: Scope) -> Scope:
    """The scope with ``text/json`` named ``application/json``, which FastAPI reads as JSON
    (its parameters, a charset, kept)."""
    headers = []
    for name, value in scope["headers"]:
        if name == b"content-type":
            _, _, parameters = value.partition(b";")
            value = b"application/json" + (b";" + parameters if parameters else b"")
        headers.append((name, value))
    return {**scope, "headers": headers}
